// `ip nexthop` (IPv4 nexthop objects, RTM_NEWNEXTHOP, kernel >= 5.3). libnl-route-3 3.7 has no
// nexthop object, so the messages are built with libnl's message API (nlmsg_alloc_simple,
// nlmsg_append, nla_put_*) and dumps parsed with nlmsg_parse.
#include <arpa/inet.h>
#include <linux/nexthop.h>
#include <linux/rtnetlink.h>

#include <cstring>

#include "backends/netlink/internal.h"
#include "backends/netlink/netlink.h"

namespace flannel {

using namespace nl;

namespace {

// One RTM_NEWNEXTHOP answer of a dump -> Nexthop4; groups, blackholes and non-IPv4 skipped.
int on_nexthop(nl_msg* msg, void* arg) {
  auto* out = static_cast<std::vector<Nexthop4>*>(arg);
  nlmsghdr* h = nlmsg_hdr(msg);
  if (h->nlmsg_type != RTM_NEWNEXTHOP || !nlmsg_valid_hdr(h, sizeof(nhmsg))) return NL_OK;
  const auto* nhm = static_cast<const nhmsg*>(nlmsg_data(h));
  nlattr* tb[NHA_MAX + 1];
  if (nlmsg_parse(h, sizeof(nhmsg), tb, NHA_MAX, nullptr) < 0) return NL_OK;
  if (!tb[NHA_ID] || tb[NHA_GROUP] || tb[NHA_BLACKHOLE]) return NL_OK;
  if (nhm->nh_family != AF_INET) return NL_OK;
  Nexthop4 nh;
  nh.id = nla_get_u32(tb[NHA_ID]);
  if (tb[NHA_GATEWAY] && nla_len(tb[NHA_GATEWAY]) == 4) {
    uint32_t be = 0;
    std::memcpy(&be, nla_data(tb[NHA_GATEWAY]), 4);
    nh.gw = IP4{ntohl(be)};
  }
  nh.oif = tb[NHA_OIF] ? static_cast<int>(nla_get_u32(tb[NHA_OIF])) : 0;
  nh.onlink = (nhm->nh_flags & RTNH_F_ONLINK) != 0;
  nh.protocol = nhm->nh_protocol;
  out->push_back(nh);
  return NL_OK;
}

MsgPtr nexthop_message(int type, int flags, const nhmsg& hdr, const std::string& what) {
  MsgPtr msg(nlmsg_alloc_simple(type, flags));
  if (!msg) fail_alloc(what);
  if (nlmsg_append(msg.get(), const_cast<nhmsg*>(&hdr), sizeof(hdr), NLMSG_ALIGNTO) < 0)
    fail_alloc(what);
  return msg;
}

}  // namespace

namespace nl {

MsgPtr nexthop_request(const Nexthop4& nh, Op op, const std::string& what) {
  if (op == Op::kDelete) return nexthop_delete_request(nh.id, what);
  nhmsg hdr{};
  hdr.nh_family = AF_INET;
  hdr.nh_protocol = RTPROT_BOOT;
  hdr.nh_flags = nh.onlink ? RTNH_F_ONLINK : 0;
  MsgPtr msg = nexthop_message(
      RTM_NEWNEXTHOP, NLM_F_CREATE | (op == Op::kAdd ? NLM_F_EXCL : NLM_F_REPLACE), hdr, what);
  uint32_t be = htonl(nh.gw.value);
  if (nla_put_u32(msg.get(), NHA_ID, nh.id) < 0 ||
      nla_put_u32(msg.get(), NHA_OIF, static_cast<uint32_t>(nh.oif)) < 0 ||
      (!nh.gw.is_zero() && nla_put(msg.get(), NHA_GATEWAY, 4, &be) < 0))
    fail_alloc(what);
  return msg;
}

MsgPtr nexthop_delete_request(uint32_t id, const std::string& what) {
  nhmsg hdr{};
  hdr.nh_family = AF_UNSPEC;
  MsgPtr msg = nexthop_message(RTM_DELNEXTHOP, 0, hdr, what);
  if (nla_put_u32(msg.get(), NHA_ID, id) < 0) fail_alloc(what);
  return msg;
}

}  // namespace nl

std::string Nexthop4::str() const {
  // append(), not `s += " via " + ...`: GCC 12 at -O3 reports a false -Wrestrict for the
  // temporary concatenations (as in Route4::str()).
  std::string s = "id " + std::to_string(id);
  if (!gw.is_zero()) s.append(" via ").append(gw.str());
  if (oif) s.append(" ").append(nl::dev(oif));
  if (onlink) s.append(" onlink");
  return s;
}

std::vector<Nexthop4> NetlinkSession::nexthops4() {
  std::vector<Nexthop4> out;
  nhmsg hdr{};
  hdr.nh_family = AF_INET;
  dump(sock_, RTM_GETNEXTHOP, &hdr, sizeof(hdr), "nexthop show", on_nexthop, &out);
  return out;
}

void NetlinkSession::nexthop_replace(const Nexthop4& nh) {
  std::string what = "nexthop replace " + nh.str();
  send_and_ack(sock_, nexthop_request(nh, Op::kReplace, what).get(), what);
}

void NetlinkSession::nexthop_delete(uint32_t id) {
  std::string what = "nexthop del id " + std::to_string(id);
  send_and_ack(sock_, nexthop_delete_request(id, what).get(), what);
}

}  // namespace flannel
