// The IPv6 address of the chosen external interface (current flannel's GetInterfaceIP6Addrs,
// facts 2.4): used only when the network config enables IPv6 and -public-ipv6 is not set.
// The choice is a pure function of the address list (unit tested without a kernel);
// read_ipv6_addrs() reads the list over netlink. Nothing here adds or changes an address.
#pragma once

#include <optional>
#include <vector>

#include "backends/netlink/netlink.h"  // Addr6Info, NetlinkSession::addrs6()
#include "core/ip.h"

namespace flannel {

// The interface's IPv6 address: the first non-deprecated global unicast address (fc00::/7
// included, as Go's IsGlobalUnicast) in dump order, else the first non-deprecated link-local
// (fe80::/10) one; nullopt if it has neither.
std::optional<IP6> preferred_ipv6(int index, const std::vector<Addr6Info>& addrs);

// Every IPv6 address of the current network namespace, in netlink dump order
// (NetlinkSession::addrs6()). Throws NetlinkError when the dump fails.
std::vector<Addr6Info> read_ipv6_addrs();

}  // namespace flannel
