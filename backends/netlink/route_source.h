// `ip route get DST` for choosing an interface (-iface-can-reach): the output link and the
// source address the kernel would use to reach DST (all tables, policy routing applied).
#pragma once

#include "backends/netlink/netlink.h"
#include "core/ip.h"

namespace flannel {

struct RouteSource {
  int oif = 0;  // the output link
  IP4 src;      // RTA_PREFSRC; 0.0.0.0 when the kernel named none
  bool operator==(const RouteSource&) const = default;
};

// Asks the kernel through `nl` (its namespace). Throws NetlinkError when there is no route to
// `dst` (e.g. "Network is unreachable"), or the route is multipath (no single output link).
RouteSource route_source(NetlinkSession& nl, IP4 dst);

}  // namespace flannel
