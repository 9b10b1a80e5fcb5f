#include "daemon/iface6.h"

#include <linux/if_addr.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

#include "backends/netlink.h"

namespace flannel {
namespace {

bool is_link_local(const IP6& a) { return a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80; }

bool is_global_unicast(const IP6& a) {
  if (a.bytes[0] == 0xff) return false;  // multicast
  if (is_link_local(a)) return false;
  bool zero_prefix = true;
  for (size_t i = 0; i < 15; ++i) zero_prefix = zero_prefix && a.bytes[i] == 0;
  return !(zero_prefix && a.bytes[15] <= 1);  // :: and ::1
}

struct SockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};

[[noreturn]] void fail(const char* what, int err) {
  throw NetlinkError(std::string("netlink ") + what + ": " + nl_geterror(err), -err);
}

}  // namespace

std::optional<IP6> preferred_ipv6(int index, const std::vector<Addr6Info>& addrs) {
  std::optional<IP6> link_local;
  for (const auto& a : addrs) {
    if (a.index != index || a.deprecated) continue;
    if (is_global_unicast(a.addr)) return a.addr;
    if (!link_local && is_link_local(a.addr)) link_local = a.addr;
  }
  return link_local;
}

std::vector<Addr6Info> read_ipv6_addrs() {
  std::unique_ptr<nl_sock, SockDeleter> sock(nl_socket_alloc());
  if (!sock) throw NetlinkError("netlink addr show: out of memory", 0);
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) fail("connect", err);
  nl_cache* raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(sock.get(), &raw); err < 0) fail("addr show", err);
  std::unique_ptr<nl_cache, CacheDeleter> cache(raw);
  std::vector<Addr6Info> out;
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_family(a) != AF_INET6) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    if (!local || nl_addr_get_len(local) != 16) continue;
    Addr6Info info;
    info.index = rtnl_addr_get_ifindex(a);
    std::memcpy(info.addr.bytes.data(), nl_addr_get_binary_addr(local), 16);
    info.prefix = rtnl_addr_get_prefixlen(a);
    info.deprecated = (rtnl_addr_get_flags(a) & IFA_F_DEPRECATED) != 0;
    out.push_back(info);
  }
  return out;
}

}  // namespace flannel
