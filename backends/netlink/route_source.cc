#include "backends/netlink/route_source.h"

#include "backends/netlink/internal.h"

namespace flannel {

using namespace nl;

RouteSource route_source(NetlinkSession& nl, IP4 dst) {
  const std::string what = "route get " + dst.str();
  rtnl_route* raw = nullptr;
  if (int err = rtnl_route_lookup(nl.sock(), make_addr4(dst).get(), &raw); err < 0) fail(what, err);
  RoutePtr route(raw);
  if (rtnl_route_get_nnexthops(route.get()) != 1)
    throw NetlinkError("netlink " + what + ": the kernel answered with a multipath route");
  RouteSource out;
  out.oif = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(route.get(), 0));
  out.src = to_ip4(rtnl_route_get_pref_src(route.get())).value_or(IP4{});
  return out;
}

}  // namespace flannel
