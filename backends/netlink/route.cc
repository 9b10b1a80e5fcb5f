// `ip route` (IPv4, main table) over libnl-route-3, with flannel's message defaults (facts §3.0):
// table main, protocol boot, scope universe, type unicast, no metric.
#include <arpa/inet.h>
#include <linux/rtnetlink.h>

#include <cstring>

#include "backends/netlink/internal.h"
#include "backends/netlink/netlink.h"

namespace flannel {

using namespace nl;

namespace {

// Reads a single-next-hop IPv4 route; nullopt for multipath or next-hop-less routes.
std::optional<Route4> to_route4(rtnl_route* r) {
  if (rtnl_route_get_nnexthops(r) != 1) return std::nullopt;
  Route4 out;
  nl_addr* dst = rtnl_route_get_dst(r);
  if (dst) {
    out.dst.ip = to_ip4(dst).value_or(IP4{});
    out.dst.prefix = static_cast<int>(nl_addr_get_prefixlen(dst));
  }
  rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
  out.gw = to_ip4(rtnl_route_nh_get_gateway(nh)).value_or(IP4{});
  out.oif = rtnl_route_nh_get_ifindex(nh);
  out.onlink = ((rtnl_route_nh_get_flags(nh) | rtnl_route_get_flags(r)) & RTNH_F_ONLINK) != 0;
  out.protocol = rtnl_route_get_protocol(r);
  return out;
}

// A main-table unicast route with flannel's defaults and one inline next hop (gw may be null).
RoutePtr build_route(int family, nl_addr* dst, nl_addr* gw, int oif, bool onlink, bool inline_nh,
                     const std::string& what) {
  RoutePtr r = main_route(family, RTN_UNICAST, dst, what);
  if (!inline_nh) return r;  // the nexthop object says where; RTA_NH_ID is added to the message
  NexthopPtr nh(rtnl_route_nh_alloc());
  if (!nh) fail_alloc(what);
  if (oif) rtnl_route_nh_set_ifindex(nh.get(), oif);
  if (gw) rtnl_route_nh_set_gateway(nh.get(), gw);
  if (onlink) rtnl_route_nh_set_flags(nh.get(), RTNH_F_ONLINK);
  rtnl_route_add_nexthop(r.get(), nh.release());  // the route owns it now
  return r;
}

RoutePtr build_route(const Route4& in, const std::string& what) {
  AddrPtr gw = in.gw.is_zero() ? nullptr : make_addr4(in.gw);
  return build_route(AF_INET, make_addr4(in.dst.ip, in.dst.prefix).get(), gw.get(), in.oif,
                     in.onlink, in.nhid == 0, what);
}

RoutePtr build_route(const Route6& in, const std::string& what) {
  AddrPtr gw = in.gw == IP6{} ? nullptr : make_addr6(in.gw);
  return build_route(AF_INET6, make_addr6(in.dst.ip, in.dst.prefix).get(), gw.get(), in.oif,
                     in.onlink, true, what);
}

// The delete/add/replace message for a built route.
MsgPtr route_message(rtnl_route* route, Op op, const std::string& what) {
  nl_msg* raw = nullptr;
  int err = 0;
  if (op == Op::kDelete) {
    // As flannel's delete message: any protocol, scope NOWHERE (= any scope) in table main.
    rtnl_route_set_protocol(route, 0);
    rtnl_route_set_scope(route, RT_SCOPE_NOWHERE);
    err = rtnl_route_build_del_request(route, 0, &raw);
  } else {
    err = rtnl_route_build_add_request(route, op == Op::kAdd ? NLM_F_EXCL : NLM_F_REPLACE, &raw);
  }
  if (err < 0) fail(what, err);
  return MsgPtr(raw);
}

// One RTM_NEWROUTE answer of a dump -> Route4, keeping what libnl-route-3 3.7 drops (RTA_NH_ID).
int on_route(nl_msg* msg, void* arg) {
  auto* out = static_cast<std::vector<Route4>*>(arg);
  nlmsghdr* h = nlmsg_hdr(msg);
  if (h->nlmsg_type != RTM_NEWROUTE || !nlmsg_valid_hdr(h, sizeof(rtmsg))) return NL_OK;
  const auto* rtm = static_cast<const rtmsg*>(nlmsg_data(h));
  if (rtm->rtm_family != AF_INET || rtm->rtm_type != RTN_UNICAST) return NL_OK;
  nlattr* tb[RTA_MAX + 1];
  if (nlmsg_parse(h, sizeof(rtmsg), tb, RTA_MAX, nullptr) < 0) return NL_OK;
  uint32_t table = tb[RTA_TABLE] ? nla_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
  if (table != RT_TABLE_MAIN || tb[RTA_MULTIPATH]) return NL_OK;
  auto ip_of = [](nlattr* a) {
    uint32_t be = 0;
    if (a && nla_len(a) == 4) std::memcpy(&be, nla_data(a), 4);
    return IP4{ntohl(be)};
  };
  Route4 r;
  r.dst.ip = ip_of(tb[RTA_DST]);
  r.dst.prefix = rtm->rtm_dst_len;
  r.gw = ip_of(tb[RTA_GATEWAY]);
  r.oif = tb[RTA_OIF] ? static_cast<int>(nla_get_u32(tb[RTA_OIF])) : 0;
  r.onlink = (rtm->rtm_flags & RTNH_F_ONLINK) != 0;
  r.protocol = rtm->rtm_protocol;
  r.nhid = tb[RTA_NH_ID] ? nla_get_u32(tb[RTA_NH_ID]) : 0;
  out->push_back(r);
  return NL_OK;
}

// One RTM_NEWROUTE answer of an IPv6 dump -> Route6 (main table, unicast, single next hop).
int on_route6(nl_msg* msg, void* arg) {
  auto* out = static_cast<std::vector<Route6>*>(arg);
  nlmsghdr* h = nlmsg_hdr(msg);
  if (h->nlmsg_type != RTM_NEWROUTE || !nlmsg_valid_hdr(h, sizeof(rtmsg))) return NL_OK;
  const auto* rtm = static_cast<const rtmsg*>(nlmsg_data(h));
  if (rtm->rtm_family != AF_INET6 || rtm->rtm_type != RTN_UNICAST) return NL_OK;
  nlattr* tb[RTA_MAX + 1];
  if (nlmsg_parse(h, sizeof(rtmsg), tb, RTA_MAX, nullptr) < 0) return NL_OK;
  uint32_t table = tb[RTA_TABLE] ? nla_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
  if (table != RT_TABLE_MAIN || tb[RTA_MULTIPATH]) return NL_OK;
  auto ip_of = [](nlattr* a) {
    IP6 ip;
    if (a && nla_len(a) == 16) std::memcpy(ip.bytes.data(), nla_data(a), 16);
    return ip;
  };
  Route6 r;
  r.dst.ip = ip_of(tb[RTA_DST]);
  r.dst.prefix = rtm->rtm_dst_len;
  r.gw = ip_of(tb[RTA_GATEWAY]);
  r.oif = tb[RTA_OIF] ? static_cast<int>(nla_get_u32(tb[RTA_OIF])) : 0;
  r.onlink = (rtm->rtm_flags & RTNH_F_ONLINK) != 0;
  r.protocol = rtm->rtm_protocol;
  out->push_back(r);
  return NL_OK;
}

}  // namespace

namespace nl {

RoutePtr main_route(int family, int type, nl_addr* dst, const std::string& what) {
  RoutePtr r(rtnl_route_alloc());
  if (!r) fail_alloc(what);
  rtnl_route_set_family(r.get(), static_cast<uint8_t>(family));
  rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
  rtnl_route_set_protocol(r.get(), RTPROT_BOOT);
  rtnl_route_set_scope(r.get(), RT_SCOPE_UNIVERSE);
  rtnl_route_set_type(r.get(), static_cast<uint8_t>(type));
  if (int err = rtnl_route_set_dst(r.get(), dst); err < 0) fail(what, err);
  return r;
}

MsgPtr route_request(const Route4& r, Op op, const std::string& what) {
  RoutePtr route = build_route(r, what);
  MsgPtr msg = route_message(route.get(), op, what);
  if (r.nhid && nla_put_u32(msg.get(), RTA_NH_ID, r.nhid) < 0) fail_alloc(what);
  return msg;
}

MsgPtr route6_request(const Route6& r, Op op, const std::string& what) {
  RoutePtr route = build_route(r, what);
  return route_message(route.get(), op, what);
}

}  // namespace nl

namespace {

// One route request of either family, answered by one ack ("route add 10.5.1.0/24 via ...").
MsgPtr request_for(const Route4& r, Op op, const std::string& what) {
  return route_request(r, op, what);
}
MsgPtr request_for(const Route6& r, Op op, const std::string& what) {
  return route6_request(r, op, what);
}

template <class R>
void send_route(nl_sock* sock, const R& r, Op op, const char* verb) {
  std::string what = "route ";
  what += verb;
  what += ' ';
  what += r.str();
  send_and_ack(sock, request_for(r, op, what).get(), what);
}

}  // namespace

std::vector<Route4> NetlinkSession::routes4() {
  std::vector<Route4> out;
  rtmsg hdr{};
  hdr.rtm_family = AF_INET;
  dump(sock_, RTM_GETROUTE, &hdr, sizeof(hdr), "route show", on_route, &out);
  return out;
}

void NetlinkSession::route_add(const Route4& r) { send_route(sock_, r, Op::kAdd, "add"); }

void NetlinkSession::route_replace(const Route4& r) {
  send_route(sock_, r, Op::kReplace, "replace");
}

void NetlinkSession::route_delete(const Route4& r) { send_route(sock_, r, Op::kDelete, "del"); }

RoutePtr nl::route_lookup4(nl_sock* sock, IP4 dst) {
  const std::string what = "route get " + dst.str();
  rtnl_route* raw = nullptr;
  if (int err = rtnl_route_lookup(sock, make_addr4(dst).get(), &raw); err < 0) fail(what, err);
  RoutePtr route(raw);
  if (rtnl_route_get_nnexthops(route.get()) != 1)
    throw NetlinkError("netlink " + what + ": the kernel answered with a multipath route");
  return route;
}

Route4 NetlinkSession::route_get(IP4 dst) {
  RoutePtr route = route_lookup4(sock_, dst);
  auto r4 = to_route4(route.get());
  if (!r4)
    throw NetlinkError("netlink route get " + dst.str() +
                       ": the kernel answered with a multipath route");
  return *r4;
}

std::vector<Route6> NetlinkSession::routes6() {
  std::vector<Route6> out;
  rtmsg hdr{};
  hdr.rtm_family = AF_INET6;
  dump(sock_, RTM_GETROUTE, &hdr, sizeof(hdr), "route -6 show", on_route6, &out);
  return out;
}

void NetlinkSession::route_add(const Route6& r) { send_route(sock_, r, Op::kAdd, "add"); }

void NetlinkSession::route_replace(const Route6& r) {
  send_route(sock_, r, Op::kReplace, "replace");
}

void NetlinkSession::route_delete(const Route6& r) { send_route(sock_, r, Op::kDelete, "del"); }

Route6 NetlinkSession::route_get(const IP6& dst) {
  std::string what = "route get " + dst.str();
  rtnl_route* raw = nullptr;
  if (int err = rtnl_route_lookup(sock_, make_addr6(dst).get(), &raw); err < 0) fail(what, err);
  RoutePtr route(raw);
  if (rtnl_route_get_nnexthops(route.get()) != 1)
    throw NetlinkError("netlink " + what + ": the kernel answered with a multipath route");
  Route6 out;
  if (nl_addr* d = rtnl_route_get_dst(route.get())) {
    out.dst.ip = to_ip6(d).value_or(IP6{});
    out.dst.prefix = static_cast<int>(nl_addr_get_prefixlen(d));
  }
  rtnl_nexthop* nh = rtnl_route_nexthop_n(route.get(), 0);
  out.gw = to_ip6(rtnl_route_nh_get_gateway(nh)).value_or(IP6{});
  out.oif = rtnl_route_nh_get_ifindex(nh);
  out.protocol = rtnl_route_get_protocol(route.get());
  return out;
}

}  // namespace flannel
