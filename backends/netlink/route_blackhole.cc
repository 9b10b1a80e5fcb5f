// `ip route ... blackhole` (main table): current flannel's -ip-blackhole-route keeps one for the
// host's own pod subnet, so traffic to an unused pod address is dropped here instead of going
// out the default route.
#include <arpa/inet.h>
#include <linux/rtnetlink.h>

#include <cstring>

#include "backends/netlink/internal.h"
#include "backends/netlink/netlink.h"

namespace flannel {

using namespace nl;

namespace {

// Collects the destination (address bytes, prefix) of each main-table blackhole route of the
// dumped family.
struct BlackholeDump {
  int family = AF_INET;
  std::vector<std::pair<std::vector<uint8_t>, int>> dsts;
};

int on_blackhole(nl_msg* msg, void* arg) {
  auto* out = static_cast<BlackholeDump*>(arg);
  nlmsghdr* h = nlmsg_hdr(msg);
  if (h->nlmsg_type != RTM_NEWROUTE || !nlmsg_valid_hdr(h, sizeof(rtmsg))) return NL_OK;
  const auto* rtm = static_cast<const rtmsg*>(nlmsg_data(h));
  if (rtm->rtm_family != out->family || rtm->rtm_type != RTN_BLACKHOLE) return NL_OK;
  nlattr* tb[RTA_MAX + 1];
  if (nlmsg_parse(h, sizeof(rtmsg), tb, RTA_MAX, nullptr) < 0) return NL_OK;
  uint32_t table = tb[RTA_TABLE] ? nla_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
  if (table != RT_TABLE_MAIN) return NL_OK;
  size_t len = out->family == AF_INET ? 4 : 16;
  std::vector<uint8_t> bytes(len, 0);
  if (tb[RTA_DST] && static_cast<size_t>(nla_len(tb[RTA_DST])) == len)
    std::memcpy(bytes.data(), nla_data(tb[RTA_DST]), len);
  out->dsts.emplace_back(std::move(bytes), rtm->rtm_dst_len);
  return NL_OK;
}

BlackholeDump dump_blackholes(nl_sock* sock, int family) {
  BlackholeDump d;
  d.family = family;
  rtmsg hdr{};
  hdr.rtm_family = static_cast<unsigned char>(family);
  dump(sock, RTM_GETROUTE, &hdr, sizeof(hdr), "route show type blackhole", on_blackhole, &d);
  return d;
}

void add_blackhole(nl_sock* sock, int family, AddrPtr dst, const std::string& what) {
  RoutePtr r = main_route(family, RTN_BLACKHOLE, dst.get(), what);
  nl_msg* raw = nullptr;
  if (int err = rtnl_route_build_add_request(r.get(), NLM_F_EXCL, &raw); err < 0) fail(what, err);
  MsgPtr msg(raw);
  send_and_ack(sock, msg.get(), what);
}

}  // namespace

std::vector<IP4Net> NetlinkSession::blackholes4() {
  std::vector<IP4Net> out;
  for (const auto& [bytes, prefix] : dump_blackholes(sock_, AF_INET).dsts) {
    uint32_t be = 0;
    std::memcpy(&be, bytes.data(), 4);
    out.push_back(IP4Net{IP4{ntohl(be)}, prefix});
  }
  return out;
}

std::vector<IP6Net> NetlinkSession::blackholes6() {
  std::vector<IP6Net> out;
  for (const auto& [bytes, prefix] : dump_blackholes(sock_, AF_INET6).dsts) {
    IP6 ip;
    std::memcpy(ip.bytes.data(), bytes.data(), 16);
    out.push_back(IP6Net{ip, prefix});
  }
  return out;
}

void NetlinkSession::blackhole_add(const IP4Net& dst) {
  add_blackhole(sock_, AF_INET, make_addr4(dst.ip, dst.prefix), "route add blackhole " + dst.str());
}

void NetlinkSession::blackhole_add(const IP6Net& dst) {
  add_blackhole(sock_, AF_INET6, make_addr6(dst.ip, dst.prefix),
                "route add blackhole " + dst.str());
}

}  // namespace flannel
