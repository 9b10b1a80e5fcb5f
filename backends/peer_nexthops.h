// Nexthop objects for peer routes, shared by host-gw and vxlan.
//
// On kernels with nexthop objects (>= 5.3) each peer gets one nexthop (host-gw: via PublicIP dev
// <ext iface>; vxlan: via <subnet>.0 dev flannel.N onlink) and its route points at it by id. The
// kernel inserts such routes in O(1) where routes with their own gateway cost O(n) each.
//
// Ids: a fixed range per backend, owned by the agent (host-gw 0xF1000000.., vxlan 0xF2000000..,
// 2^24 ids each). Inside the range a subnet's id is its number in a binary heap over the cluster
// Network: 2^d + i, where d is how much longer its prefix is than the Network's and i its index
// among the Network's subnets of that length. Every (address, prefix) pair has its own id, so
// leases of different lengths side by side (10.5.2.128/25 and 10.5.5.0/24) never share a
// nexthop. A restart computes the same id for the same subnet, so it finds and reuses its own
// nexthops; the sync reconcile removes ids of the range that no peer wants. A subnet whose id
// does not fit (24 or more bits longer than the Network) uses an inline gateway.
//
// Fallback: set FLANNEL_NEXTHOP_OBJECTS=off (or 0/no/false) in the agent's environment to use
// inline gateways (the v0.11 route form) even where the kernel has nexthop objects; the agent
// also falls back, with one log line, when the kernel refuses the nexthop dump.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include <map>
#include <vector>

#include "backends/netlink/netlink.h"
#include "core/ip.h"

namespace flannel {

struct NexthopRange {
  uint32_t base = 0;
  static constexpr uint32_t kSize = 1u << 24;
  bool owns(uint32_t id) const { return id >= base && id - base < kSize; }
  // The id for `subnet` inside `network` (see above); nullopt when the subnet is not inside the
  // network or its id does not fit the range.
  std::optional<uint32_t> id_for(const IP4Net& network, const IP4Net& subnet) const {
    if (!network.contains(subnet) || subnet.prefix > 32 || subnet.prefix < network.prefix)
      return std::nullopt;
    const int depth = subnet.prefix - network.prefix;
    if (depth >= 24) return std::nullopt;  // 2^depth + index < 2^24 needs depth <= 23
    const uint64_t offset = static_cast<uint64_t>(subnet.ip.value - network.ip.value);
    const uint64_t index = subnet.prefix == 0 ? 0 : offset >> (32 - subnet.prefix);
    return base + static_cast<uint32_t>((uint64_t{1} << depth) + index);
  }
};

inline constexpr NexthopRange kHostGwNexthops{0xF1000000u};
inline constexpr NexthopRange kVxlanNexthops{0xF2000000u};

// False when FLANNEL_NEXTHOP_OBJECTS asks for inline gateways.
inline bool nexthop_objects_enabled_by_env() {
  const char* v = std::getenv("FLANNEL_NEXTHOP_OBJECTS");
  if (!v) return true;
  std::string s(v);
  return !(s == "off" || s == "0" || s == "no" || s == "false");
}

// The nexthops of `range` the kernel holds, by id. Throws NetlinkError when the kernel refuses
// the dump (no nexthop objects).
inline std::map<uint32_t, Nexthop4> owned_nexthops(NetlinkSession& nl, const NexthopRange& range) {
  std::map<uint32_t, Nexthop4> out;
  for (const auto& nh : nl.nexthops4())
    if (range.owns(nh.id)) out.emplace(nh.id, nh);
  return out;
}

// Same object, ignoring the protocol field (writes always send boot).
inline bool same_nexthop(const Nexthop4& a, const Nexthop4& b) {
  return a.id == b.id && a.gw == b.gw && a.oif == b.oif && a.onlink == b.onlink;
}

}  // namespace flannel
