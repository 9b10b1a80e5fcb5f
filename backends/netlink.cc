#include "backends/netlink.h"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

#include <cstring>
#include <memory>

namespace flannel {
namespace {

struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using CachePtr = std::unique_ptr<nl_cache, CacheDeleter>;

[[noreturn]] void fail(const std::string& what, int err) {
  throw NetlinkError("netlink " + what + ": " + nl_geterror(err));
}

}  // namespace

NetlinkSession::NetlinkSession() {
  sock_ = nl_socket_alloc();
  if (!sock_) throw NetlinkError("netlink: cannot allocate socket");
  if (int err = nl_connect(sock_, NETLINK_ROUTE); err < 0) {
    nl_socket_free(sock_);
    sock_ = nullptr;
    fail("connect", err);
  }
}

NetlinkSession::~NetlinkSession() {
  if (sock_) nl_socket_free(sock_);  // also closes
}

std::vector<LinkInfo> NetlinkSession::links() {
  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sock_, AF_UNSPEC, &raw); err < 0) fail("link dump", err);
  CachePtr cache(raw);
  std::vector<LinkInfo> out;
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
    auto* link = reinterpret_cast<rtnl_link*>(o);
    LinkInfo li;
    li.index = rtnl_link_get_ifindex(link);
    const char* name = rtnl_link_get_name(link);
    li.name = name ? name : "";
    li.mtu = static_cast<int>(rtnl_link_get_mtu(link));
    li.flags = rtnl_link_get_flags(link);
    out.push_back(std::move(li));
  }
  return out;
}

std::vector<Addr4Info> NetlinkSession::addrs4() {
  nl_cache* raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(sock_, &raw); err < 0) fail("address dump", err);
  CachePtr cache(raw);
  std::vector<Addr4Info> out;
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_family(a) != AF_INET) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    if (!local || nl_addr_get_len(local) != 4) continue;
    uint32_t be = 0;
    std::memcpy(&be, nl_addr_get_binary_addr(local), 4);
    out.push_back({rtnl_addr_get_ifindex(a), IP4{ntohl(be)}, rtnl_addr_get_prefixlen(a)});
  }
  return out;
}

std::optional<int> NetlinkSession::default_route_ifindex() {
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(sock_, AF_INET, 0, &raw); err < 0) fail("route dump", err);
  CachePtr cache(raw);
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN) continue;
    nl_addr* dst = rtnl_route_get_dst(r);
    if (dst && nl_addr_get_prefixlen(dst) != 0) continue;
    if (rtnl_route_get_nnexthops(r) != 1) {
      throw NetlinkError("the default route has " + std::to_string(rtnl_route_get_nnexthops(r)) +
                         " next hops; choose the interface with -iface");
    }
    return rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(r, 0));
  }
  return std::nullopt;
}

}  // namespace flannel
