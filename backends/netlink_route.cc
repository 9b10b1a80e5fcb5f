// `ip route` (IPv4, main table) over libnl-route-3, with flannel's message defaults (facts §3.0):
// table main, protocol boot, scope universe, type unicast, no metric.
#include <linux/rtnetlink.h>

#include "backends/netlink.h"
#include "backends/netlink_internal.h"

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

RoutePtr build_route(const Route4& in, const std::string& what) {
  RoutePtr r(rtnl_route_alloc());
  if (!r) fail_alloc(what);
  rtnl_route_set_family(r.get(), AF_INET);
  rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
  rtnl_route_set_protocol(r.get(), RTPROT_BOOT);
  rtnl_route_set_scope(r.get(), RT_SCOPE_UNIVERSE);
  rtnl_route_set_type(r.get(), RTN_UNICAST);
  if (int err = rtnl_route_set_dst(r.get(), make_addr4(in.dst.ip, in.dst.prefix).get()); err < 0)
    fail(what, err);
  NexthopPtr nh(rtnl_route_nh_alloc());
  if (!nh) fail_alloc(what);
  if (in.oif) rtnl_route_nh_set_ifindex(nh.get(), in.oif);
  if (!in.gw.is_zero()) rtnl_route_nh_set_gateway(nh.get(), make_addr4(in.gw).get());
  if (in.onlink) rtnl_route_nh_set_flags(nh.get(), RTNH_F_ONLINK);
  rtnl_route_add_nexthop(r.get(), nh.release());  // the route owns it now
  return r;
}

}  // namespace

std::vector<Route4> NetlinkSession::routes4() {
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(sock_, AF_INET, 0, &raw); err < 0) fail("route show", err);
  CachePtr cache(raw);
  std::vector<Route4> out;
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_type(r) != RTN_UNICAST) continue;
    if (auto r4 = to_route4(r)) out.push_back(*r4);
  }
  return out;
}

void NetlinkSession::route_add(const Route4& r) {
  std::string what = "route add " + r.str();
  RoutePtr route = build_route(r, what);
  if (int err = rtnl_route_add(sock_, route.get(), NLM_F_EXCL); err < 0) fail(what, err);
}

void NetlinkSession::route_replace(const Route4& r) {
  std::string what = "route replace " + r.str();
  RoutePtr route = build_route(r, what);
  if (int err = rtnl_route_add(sock_, route.get(), NLM_F_REPLACE); err < 0) fail(what, err);
}

void NetlinkSession::route_delete(const Route4& r) {
  std::string what = "route del " + r.str();
  RoutePtr route = build_route(r, what);
  // As flannel's delete message: any protocol, scope NOWHERE (= any scope) in table main.
  rtnl_route_set_protocol(route.get(), 0);
  rtnl_route_set_scope(route.get(), RT_SCOPE_NOWHERE);
  if (int err = rtnl_route_delete(sock_, route.get(), 0); err < 0) fail(what, err);
}

Route4 NetlinkSession::route_get(IP4 dst) {
  std::string what = "route get " + dst.str();
  rtnl_route* raw = nullptr;
  if (int err = rtnl_route_lookup(sock_, make_addr4(dst).get(), &raw); err < 0) fail(what, err);
  RoutePtr route(raw);
  auto r4 = to_route4(route.get());
  if (!r4) throw NetlinkError("netlink " + what + ": the kernel answered with a multipath route");
  return *r4;
}

}  // namespace flannel
