#include "daemon/agent/iface6.h"

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
  NetlinkSession nl;
  return nl.addrs6();
}

}  // namespace flannel
