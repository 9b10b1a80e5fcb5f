#include "backends/netlink/route_source.h"

#include "backends/netlink/internal.h"

namespace flannel {

using namespace nl;

RouteSource route_source(NetlinkSession& nl, IP4 dst) {
  RoutePtr route = route_lookup4(nl.sock(), dst);
  RouteSource out;
  out.oif = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(route.get(), 0));
  out.src = to_ip4(rtnl_route_get_pref_src(route.get())).value_or(IP4{});
  return out;
}

}  // namespace flannel
