// Choosing the external interface (current flannel's LookupExtIface, facts-2 §4): -iface by name
// or address, then -iface-regex, then -iface-can-reach (the link and source address of the route
// the kernel would use to reach that address); with none of them, the interface of the default
// route. -public-ip overrides the advertised address. The choice itself is a pure function of the
// links, addresses and routes, so it is unit tested without a kernel; lookup_external_interface()
// reads them over netlink.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/netlink/netlink.h"
#include "backends/netlink/route_source.h"

namespace flannel {

struct IfaceRequest {
  std::vector<std::string> ifaces;   // -iface values, in order (name or IPv4 address)
  std::vector<std::string> regexes;  // -iface-regex values, tried after all -iface values
  std::optional<IP4> public_ip;      // -public-ip
  std::optional<IP4> can_reach;      // -iface-can-reach, tried after every regex
};

// The interface's preferred IPv4: the first global unicast address in dump order, else the last
// link-local (169.254/16) one; nullopt if it has neither.
std::optional<IP4> preferred_ipv4(int index, const std::vector<Addr4Info>& addrs);

// Picks the interface. `reach` is the kernel's route to req.can_reach (nullopt: none, or not
// asked; the caller notes why). The route's source address is the interface address; a route
// without one falls back to the link's preferred_ipv4(). `notes` (may be nullptr) receives one
// line per rejected candidate (logged by the caller). Throws std::runtime_error naming what was
// asked for and what exists when nothing matches.
ExternalInterface select_external_interface(const std::vector<LinkInfo>& links,
                                            const std::vector<Addr4Info>& addrs,
                                            std::optional<int> default_route_index,
                                            const IfaceRequest& req,
                                            std::vector<std::string>* notes,
                                            std::optional<RouteSource> reach = std::nullopt);

// Reads links, addresses, the default route (no flag given) and the route to req.can_reach (when
// set) of the current network namespace and selects. No route to req.can_reach is a note, not an
// error. Throws NetlinkError when a dump fails (or the default route is multipath), else as
// select_external_interface. `notes` (may be nullptr) is appended to, never cleared.
ExternalInterface lookup_external_interface(const IfaceRequest& req,
                                            std::vector<std::string>* notes);

// The interface chosen again with the same request while the agent runs (it follows address and
// link changes): as lookup_external_interface, and throws std::runtime_error saying why when the
// choice fails (with the notes) or the chosen link is down or has no carrier.
ExternalInterface lookup_usable_interface(const IfaceRequest& req);

}  // namespace flannel
