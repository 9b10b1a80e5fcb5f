// The IPv6 half of the host-gw backend (hostgw.h, facts §2.7): one inline route per peer v6
// subnet via the peer's PublicIPv6 on the external interface.
#include "backends/hostgw/hostgw.h"
#include "backends/netlink/batch.h"

namespace flannel {

namespace {
constexpr int kRtprotBoot = 3;

bool same_route(const Route6& have, const Route6& want) {
  return have.gw == want.gw && have.oif == want.oif && !have.onlink;
}
}  // namespace

std::map<IP6Net, Route6> HostGwBackend::load_routes6() {
  std::map<IP6Net, Route6> kernel;
  try {
    for (auto& r : nl_->routes6()) kernel.emplace(r.dst, r);
  } catch (const NetlinkError& e) {
    throw BackendError(std::string("host-gw: cannot read the IPv6 routing table: ") + e.what());
  }
  return kernel;
}

void HostGwBackend::queue_peer6(const PeerEvent& ev, std::map<IP6Net, Route6>* kernel6,
                                NetlinkBatch* nb, size_t tag) {
  const Lease& peer = ev.lease;
  const IP6Net subnet = peer.ipv6_subnet->network();
  if (own6_ && subnet == *own6_) return;
  if (ev.type == PeerEvent::Type::kAdded) {
    if (!peer.attrs.public_ipv6) {
      ++skipped_;
      note("host-gw: no IPv6 route to peer " + peer.subnet.str() + " / " + subnet.str() + " (" +
           peer.attrs.public_ip.str() + "): the lease has no PublicIPv6");
      return;
    }
    Route6 want{subnet, *peer.attrs.public_ipv6, iface_.index, false};
    bool same = false;
    if (kernel6) {
      auto it = kernel6->find(subnet);
      same = it != kernel6->end() && same_route(it->second, want);
    }
    if (!same) {
      nb->route_replace(want, tag);  // events: always (idempotent)
      want.protocol = kRtprotBoot;
      if (kernel6) (*kernel6)[subnet] = want;
    }
    routes6_[subnet] = want;
    return;
  }
  std::optional<Route6> known;
  if (auto it = routes6_.find(subnet); it != routes6_.end()) known = it->second;
  routes6_.erase(subnet);
  std::optional<IP6> gw = known ? std::optional<IP6>(known->gw) : peer.attrs.public_ipv6;
  if (!gw) return;
  if (!kernel6) {
    // An event: the kernel deletes only a route with this gateway and device (absent: no error).
    nb->route_delete(Route6{subnet, *gw, iface_.index, false}, tag);
    return;
  }
  auto it = kernel6->find(subnet);
  if (it != kernel6->end() && it->second.gw == *gw && it->second.oif == iface_.index) {
    nb->route_delete(it->second, tag);
    kernel6->erase(it);
  }
}

void HostGwBackend::queue_reconcile6(const std::map<IP6Net, Route6>& kernel6, NetlinkBatch* nb,
                                     size_t first_tag, std::vector<std::string>* stale) {
  for (const auto& [dst, r] : kernel6) {
    bool ours_looking = r.protocol == kRtprotBoot && r.oif == iface_.index && r.gw != IP6{} &&
                        config_.ipv6_network.contains(dst) && dst != config_.ipv6_network;
    if (!ours_looking || routes6_.count(dst) || (own6_ && dst == *own6_)) continue;
    nb->route_delete(r, first_tag + stale->size());
    stale->push_back("route " + dst.str() + " via " + r.gw.str());
  }
}

void HostGwBackend::queue_check6(NetlinkBatch* nb, std::vector<std::string>* restoring) {
  std::map<IP6Net, Route6> kernel = load_routes6();
  for (const auto& [dst, want] : routes6_) {
    auto it = kernel.find(dst);
    if (it != kernel.end() && it->second.gw == want.gw && it->second.oif == want.oif) continue;
    nb->route_replace(want, restoring->size());
    restoring->push_back(want.str());
  }
}

}  // namespace flannel
