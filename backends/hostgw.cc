#include "backends/hostgw.h"

#include "backends/batch_errors.h"

namespace flannel {

namespace {
constexpr int kRtprotBoot = 3;
}  // namespace

HostGwBackend::HostGwBackend() = default;
HostGwBackend::~HostGwBackend() = default;  // routes stay: restarts must not disturb traffic

BackendSetup HostGwBackend::setup(const Config& config, const ExternalInterface& iface) {
  if (iface.ext_addr != iface.iface_addr) {
    throw BackendError("your PublicIP (" + iface.ext_addr.str() + ") differs from interface IP (" +
                       iface.iface_addr.str() +
                       "), meaning that probably you're on a NAT, which is not supported by "
                       "host-gw backend");
  }
  config_ = config;
  iface_ = iface;
  try {
    nl_ = std::make_unique<NetlinkSession>();
  } catch (const NetlinkError& e) {
    throw BackendError(std::string("host-gw: ") + e.what());
  }
  BackendSetup out;
  out.attrs.public_ip = iface.ext_addr;
  out.attrs.backend_type = "host-gw";
  out.mtu = iface.mtu;
  return out;
}

void HostGwBackend::lease_acquired(const Lease& ours) {
  own_ = ours.subnet;
  routes_.erase(ours.subnet);
}

Route4 HostGwBackend::route_for(const Lease& peer) const {
  return Route4{peer.subnet, peer.attrs.public_ip, iface_.index, false};
}

void HostGwBackend::sync(const std::vector<Lease>& peers) {
  routes_.clear();
  std::vector<PeerEvent> batch;
  batch.reserve(peers.size());
  for (const auto& p : peers) batch.push_back({PeerEvent::Type::kAdded, p});
  apply_batch(batch, true);
}

void HostGwBackend::apply(const std::vector<PeerEvent>& batch) { apply_batch(batch, false); }

void HostGwBackend::apply_batch(const std::vector<PeerEvent>& batch, bool full) {
  BatchErrors errors;
  // One dump per batch: lets a restart skip every route that is already right, and gives the
  // startup reconciliation its view of the table.
  std::map<IP4Net, Route4> kernel;
  try {
    for (auto& r : nl_->routes4()) kernel.emplace(r.dst, r);  // first route per dst, as flannel
  } catch (const NetlinkError& e) {
    throw BackendError(std::string("host-gw: cannot read the routing table: ") + e.what());
  }

  for (const PeerEvent& ev : batch) {
    const Lease& peer = ev.lease;
    if (peer.attrs.backend_type != "host-gw") {
      ++skipped_;
      note("host-gw: ignoring peer " + peer.subnet.str() + " (" + peer.attrs.public_ip.str() +
           ") with BackendType \"" + peer.attrs.backend_type + "\"; every host must use host-gw");
      continue;
    }
    Route4 want = route_for(peer);
    try {
      if (ev.type == PeerEvent::Type::kAdded) {
        auto it = kernel.find(want.dst);
        bool same = it != kernel.end() && it->second.gw == want.gw && it->second.oif == want.oif &&
                    !it->second.onlink;
        if (!same) {
          nl_->route_replace(want);
          want.protocol = kRtprotBoot;
          kernel[want.dst] = want;
        }
        routes_[want.dst] = want;
      } else {
        routes_.erase(peer.subnet);
        auto it = kernel.find(want.dst);
        if (it != kernel.end() && it->second.gw == want.gw && it->second.oif == want.oif) {
          try {
            nl_->route_delete(want);
          } catch (const NetlinkError& e) {
            if (!is_not_found(e)) throw;
          }
          kernel.erase(it);
        }
      }
    } catch (const std::exception& e) {
      errors.add(ev, e.what());
    }
  }

  if (full) {
    for (const auto& [dst, r] : kernel) {
      bool ours_looking = r.protocol == kRtprotBoot && r.oif == iface_.index && !r.gw.is_zero() &&
                          config_.network.contains(dst) && dst != config_.network;
      if (!ours_looking || routes_.count(dst) || (own_ && dst == *own_)) continue;
      try {
        nl_->route_delete(r);
        ++reconciled_;
        note("host-gw: removed stale route " + dst.str() + " via " + r.gw.str() +
             " (no lease holds it any more)");
      } catch (const NetlinkError& e) {
        if (!is_not_found(e)) errors.add(std::string("removing stale route: ") + e.what());
      }
    }
  }
  errors.throw_if_any(batch.size());
}

void HostGwBackend::check() {
  std::map<IP4Net, Route4> kernel;
  try {
    for (auto& r : nl_->routes4()) kernel.emplace(r.dst, r);
  } catch (const NetlinkError& e) {
    throw BackendError(std::string("host-gw: cannot read the routing table: ") + e.what());
  }
  BatchErrors errors;
  for (const auto& [dst, want] : routes_) {
    auto it = kernel.find(dst);
    if (it != kernel.end() && it->second.gw == want.gw && it->second.oif == want.oif) continue;
    try {
      nl_->route_replace(want);
      note("host-gw: restored route " + dst.str() + " via " + want.gw.str() +
           " (it was missing or changed)");
    } catch (const std::exception& e) {
      errors.add(std::string("restoring route ") + dst.str() + ": " + e.what());
    }
  }
  errors.throw_if_any(routes_.size());
}

}  // namespace flannel
