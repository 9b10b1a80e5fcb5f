// `ip neigh` (IPv4 ARP entries) and `bridge fdb` (VXLAN forwarding entries) over libnl-route-3:
// the request builders (shared with NetlinkBatch), the one-shot operations and the dumps.
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include "backends/netlink/internal.h"
#include "backends/netlink/netlink.h"

namespace flannel {

using namespace nl;

namespace {

NeighPtr alloc_neigh(const std::string& what) {
  NeighPtr n(rtnl_neigh_alloc());
  if (!n) fail_alloc(what);
  return n;
}

// Dumps the neighbours and calls `fn` on those of link `index`. An AF_UNSPEC dump holds only the
// neighbour tables (ARP, ND); with_fdb also iterates AF_BRIDGE, which holds the FDB entries.
template <typename Fn>
void for_each_neigh(nl_sock* sock, int index, bool with_fdb, const std::string& what, Fn fn) {
  nl_cache* raw = nullptr;
  int err = with_fdb ? rtnl_neigh_alloc_cache_flags(sock, &raw, NL_CACHE_AF_ITER)
                     : rtnl_neigh_alloc_cache(sock, &raw);
  if (err < 0) fail(what, err);
  CachePtr cache(raw);
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
    auto* n = reinterpret_cast<rtnl_neigh*>(o);
    if (rtnl_neigh_get_ifindex(n) == index) fn(n);
  }
}

// A neighbour object for an FDB entry: family AF_BRIDGE, NTF_SELF, lladdr MAC, NDA_DST dst
// (an IPv4 or IPv6 nl_addr).
NeighPtr make_fdb(int index, const MacAddr& mac, nl_addr* dst, const std::string& what) {
  NeighPtr n = alloc_neigh(what);
  rtnl_neigh_set_ifindex(n.get(), index);
  // set_dst adopts the address family; switch to AF_BRIDGE only afterwards.
  if (int err = rtnl_neigh_set_dst(n.get(), dst); err < 0) fail(what, err);
  rtnl_neigh_set_family(n.get(), AF_BRIDGE);
  rtnl_neigh_set_lladdr(n.get(), make_mac(mac).get());
  rtnl_neigh_set_flags(n.get(), NTF_SELF);
  return n;
}

MsgPtr neigh_message(rtnl_neigh* n, Op op, const std::string& what) {
  nl_msg* raw = nullptr;
  int err =
      op == Op::kDelete
          ? rtnl_neigh_build_delete_request(n, 0, &raw)
          : rtnl_neigh_build_add_request(
                n, op == Op::kAdd ? NLM_F_CREATE | NLM_F_EXCL : NLM_F_CREATE | NLM_F_REPLACE, &raw);
  if (err < 0) fail(what, err);
  return MsgPtr(raw);
}

}  // namespace

namespace nl {

MsgPtr neigh_request(int index, nl_addr* dst, const MacAddr* mac, Op op, const std::string& what) {
  NeighPtr n = alloc_neigh(what);
  if (op != Op::kDelete) {
    // First: some libnl releases' rtnl_neigh_set_type() overwrites the attribute mask.
    rtnl_neigh_set_type(n.get(), RTN_UNICAST);
  }
  rtnl_neigh_set_ifindex(n.get(), index);
  if (int err = rtnl_neigh_set_dst(n.get(), dst); err < 0) fail(what, err);
  if (op != Op::kDelete) {
    if (mac) rtnl_neigh_set_lladdr(n.get(), make_mac(*mac).get());
    rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
  }
  return neigh_message(n.get(), op, what);
}

MsgPtr neigh_request(int index, IP4 dst, const MacAddr* mac, Op op, const std::string& what) {
  return neigh_request(index, make_addr4(dst).get(), mac, op, what);
}

MsgPtr neigh6_request(int index, const IP6& dst, const MacAddr* mac, Op op,
                      const std::string& what) {
  return neigh_request(index, make_addr6(dst).get(), mac, op, what);
}

MsgPtr fdb_request(int index, const MacAddr& mac, IP4 dst, Op op, const std::string& what) {
  NeighPtr n = make_fdb(index, mac, make_addr4(dst).get(), what);
  if (op != Op::kDelete) rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
  return neigh_message(n.get(), op, what);
}

MsgPtr fdb6_request(int index, const MacAddr& mac, const IP6& dst, Op op, const std::string& what) {
  NeighPtr n = make_fdb(index, mac, make_addr6(dst).get(), what);
  if (op != Op::kDelete) rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
  return neigh_message(n.get(), op, what);
}

}  // namespace nl

std::vector<Neigh4> NetlinkSession::neighs4(int index) {
  std::vector<Neigh4> out;
  for_each_neigh(sock_, index, false, "neigh show " + dev(index), [&](rtnl_neigh* n) {
    if (rtnl_neigh_get_family(n) != AF_INET) return;
    auto dst = to_ip4(rtnl_neigh_get_dst(n));
    if (!dst) return;
    out.push_back({index, *dst, to_mac(rtnl_neigh_get_lladdr(n)), rtnl_neigh_get_state(n)});
  });
  return out;
}

void NetlinkSession::neigh_replace(int index, IP4 dst, const MacAddr& mac) {
  std::string what =
      "neigh replace " + dst.str() + " lladdr " + mac.str() + " " + dev(index) + " nud permanent";
  send_and_ack(sock_, neigh_request(index, dst, &mac, Op::kReplace, what).get(), what);
}

void NetlinkSession::neigh_delete(int index, IP4 dst) {
  std::string what = "neigh del " + dst.str() + " " + dev(index);
  send_and_ack(sock_, neigh_request(index, dst, nullptr, Op::kDelete, what).get(), what);
}

std::vector<FdbEntry> NetlinkSession::fdbs(int index) {
  std::vector<FdbEntry> out;
  for_each_neigh(sock_, index, true, "fdb show " + dev(index), [&](rtnl_neigh* n) {
    if (rtnl_neigh_get_family(n) != AF_BRIDGE) return;
    FdbEntry e;
    e.index = index;
    e.mac = to_mac(rtnl_neigh_get_lladdr(n));
    e.dst = to_ip4(rtnl_neigh_get_dst(n)).value_or(IP4{});
    e.dst6 = to_ip6(rtnl_neigh_get_dst(n));
    e.state = rtnl_neigh_get_state(n);
    e.flags = rtnl_neigh_get_flags(n);
    out.push_back(e);
  });
  return out;
}

void NetlinkSession::fdb_replace(int index, const MacAddr& mac, IP4 dst) {
  std::string what =
      "fdb replace " + mac.str() + " " + dev(index) + " dst " + dst.str() + " self permanent";
  send_and_ack(sock_, fdb_request(index, mac, dst, Op::kReplace, what).get(), what);
}

void NetlinkSession::fdb_delete(int index, const MacAddr& mac, IP4 dst) {
  std::string what = "fdb del " + mac.str() + " " + dev(index) + " dst " + dst.str() + " self";
  send_and_ack(sock_, fdb_request(index, mac, dst, Op::kDelete, what).get(), what);
}

std::vector<Neigh6> NetlinkSession::neighs6(int index) {
  std::vector<Neigh6> out;
  for_each_neigh(sock_, index, false, "neigh -6 show " + dev(index), [&](rtnl_neigh* n) {
    if (rtnl_neigh_get_family(n) != AF_INET6) return;
    auto dst = to_ip6(rtnl_neigh_get_dst(n));
    if (!dst) return;
    out.push_back({index, *dst, to_mac(rtnl_neigh_get_lladdr(n)), rtnl_neigh_get_state(n)});
  });
  return out;
}

void NetlinkSession::neigh_replace(int index, const IP6& dst, const MacAddr& mac) {
  std::string what =
      "neigh replace " + dst.str() + " lladdr " + mac.str() + " " + dev(index) + " nud permanent";
  send_and_ack(sock_, neigh6_request(index, dst, &mac, Op::kReplace, what).get(), what);
}

void NetlinkSession::neigh_delete(int index, const IP6& dst) {
  std::string what = "neigh del " + dst.str() + " " + dev(index);
  send_and_ack(sock_, neigh6_request(index, dst, nullptr, Op::kDelete, what).get(), what);
}

void NetlinkSession::fdb_replace(int index, const MacAddr& mac, const IP6& dst) {
  std::string what =
      "fdb replace " + mac.str() + " " + dev(index) + " dst " + dst.str() + " self permanent";
  send_and_ack(sock_, fdb6_request(index, mac, dst, Op::kReplace, what).get(), what);
}

void NetlinkSession::fdb_delete(int index, const MacAddr& mac, const IP6& dst) {
  std::string what = "fdb del " + mac.str() + " " + dev(index) + " dst " + dst.str() + " self";
  send_and_ack(sock_, fdb6_request(index, mac, dst, Op::kDelete, what).get(), what);
}

}  // namespace flannel
