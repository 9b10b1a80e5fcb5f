// Private helpers shared by the backends/netlink/*.cc files: smart pointers for libnl objects,
// address conversions and error construction. Not part of the backend API.
#pragma once

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>

#include <netlink/attr.h>
#include <netlink/msg.h>

#include <memory>
#include <string>

#include "backends/netlink/netlink.h"

namespace flannel::nl {

struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
struct AddrDeleter {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct LinkDeleter {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct RtAddrDeleter {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct RouteDeleter {
  void operator()(rtnl_route* r) const { rtnl_route_put(r); }
};
struct NexthopDeleter {
  void operator()(rtnl_nexthop* n) const { rtnl_route_nh_free(n); }
};
struct NeighDeleter {
  void operator()(rtnl_neigh* n) const { rtnl_neigh_put(n); }
};
using CachePtr = std::unique_ptr<nl_cache, CacheDeleter>;
using AddrPtr = std::unique_ptr<nl_addr, AddrDeleter>;
using LinkPtr = std::unique_ptr<rtnl_link, LinkDeleter>;
using RtAddrPtr = std::unique_ptr<rtnl_addr, RtAddrDeleter>;
using RoutePtr = std::unique_ptr<rtnl_route, RouteDeleter>;
using NexthopPtr = std::unique_ptr<rtnl_nexthop, NexthopDeleter>;
using NeighPtr = std::unique_ptr<rtnl_neigh, NeighDeleter>;
struct MsgDeleter {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};
using MsgPtr = std::unique_ptr<nl_msg, MsgDeleter>;
struct CbDeleter {
  void operator()(nl_cb* c) const { nl_cb_put(c); }
};
using CbPtr = std::unique_ptr<nl_cb, CbDeleter>;

// ---- request builders: one place per object, shared by the session (one request, one ack) and
// NetlinkBatch (many requests, acks collected afterwards). Each returns a complete request
// message (no sequence number yet); `what` names it in errors ("route replace 10.5.3.0/24 ...").
enum class Op { kAdd, kReplace, kDelete };
// A main-table route of `type` (RTN_UNICAST, RTN_BLACKHOLE) to dst with flannel's defaults
// (protocol boot, scope universe), no next hop yet. Throws NetlinkError.
RoutePtr main_route(int family, int type, nl_addr* dst, const std::string& what);
MsgPtr route_request(const Route4& r, Op op, const std::string& what);
MsgPtr neigh_request(int index, IP4 dst, const MacAddr* mac, Op op, const std::string& what);
MsgPtr fdb_request(int index, const MacAddr& mac, IP4 dst, Op op, const std::string& what);
MsgPtr route6_request(const Route6& r, Op op, const std::string& what);
MsgPtr neigh6_request(int index, const IP6& dst, const MacAddr* mac, Op op,
                      const std::string& what);
MsgPtr fdb6_request(int index, const MacAddr& mac, const IP6& dst, Op op, const std::string& what);
MsgPtr nexthop_request(const Nexthop4& nh, Op op, const std::string& what);
MsgPtr nexthop_delete_request(uint32_t id, const std::string& what);
// Sends one request on `sock` and waits for its ack; throws NetlinkError "netlink <what>: ...".
void send_and_ack(nl_sock* sock, nl_msg* msg, const std::string& what);
// `ip route get DST` on `sock`: the kernel's answer (all tables, policy routing applied), with a
// single next hop. Throws NetlinkError "netlink route get DST: ..." when there is no route or it
// is multipath. Shared by NetlinkSession::route_get and route_source().
RoutePtr route_lookup4(nl_sock* sock, IP4 dst);
// Sends a dump request (type, header struct) and calls `on_msg` for every answer.
void dump(nl_sock* sock, int type, const void* hdr, size_t hdr_len, const std::string& what,
          int (*on_msg)(nl_msg*, void*), void* arg);

// Throws NetlinkError "netlink <what>: <libnl reason>" keeping the (positive) libnl code.
[[noreturn]] void fail(const std::string& what, int err);
// Throws NetlinkError for a failed allocation of `what`.
[[noreturn]] void fail_alloc(const std::string& what);

// An AF_INET nl_addr holding `ip` with prefix length `prefix`.
AddrPtr make_addr4(IP4 ip, int prefix = 32);
// An AF_INET6 nl_addr holding `ip` with prefix length `prefix`.
AddrPtr make_addr6(const IP6& ip, int prefix = 128);
// The IPv6 address in `a`, or nullopt when `a` is null or not 16 bytes.
std::optional<IP6> to_ip6(const nl_addr* a);
// An AF_LLC nl_addr holding `mac`.
AddrPtr make_mac(const MacAddr& mac);
// The IPv4 address in `a`, or nullopt when `a` is null or not 4 bytes.
std::optional<IP4> to_ip4(const nl_addr* a);
// The MAC in `a`, or zero when `a` is null or not 6 bytes.
MacAddr to_mac(const nl_addr* a);
// "dev 7": how messages name a link by index.
std::string dev(int index);

}  // namespace flannel::nl
