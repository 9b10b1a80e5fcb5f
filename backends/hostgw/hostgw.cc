#include "backends/hostgw/hostgw.h"

#include <optional>
#include <set>

#include "backends/batch_errors.h"
#include "backends/batch_runner.h"
#include "backends/netlink/batch.h"
#include "backends/peer_nexthops.h"

namespace flannel {

namespace {
constexpr int kRtprotBoot = 3;
}  // namespace

HostGwBackend::HostGwBackend() = default;
HostGwBackend::~HostGwBackend() = default;  // routes stay: restarts must not disturb traffic

BackendSetup HostGwBackend::setup(const Config& config, const ExternalInterface& iface) {
  if (!config.enable_ipv4 && !config.enable_ipv6)
    throw BackendError("host-gw: neither EnableIPv4 nor EnableIPv6 is set; enable at least one");
  if (config.enable_ipv6 && !iface.ext_v6_addr) {
    throw BackendError("host-gw: EnableIPv6 is set but " + iface.name +
                       " has no IPv6 address for peers to route to; give it one or set "
                       "-public-ipv6");
  }
  if (config.enable_ipv4 && iface.ext_addr != iface.iface_addr) {
    throw BackendError("your PublicIP (" + iface.ext_addr.str() + ") differs from interface IP (" +
                       iface.iface_addr.str() +
                       "), meaning that probably you're on a NAT, which is not supported by "
                       "host-gw backend");
  }
  config_ = config;
  iface_ = iface;
  try {
    nl_ = std::make_unique<NetlinkSession>();
  } catch (const NetlinkError& e) { throw BackendError(std::string("host-gw: ") + e.what()); }
  BackendSetup out;
  out.attrs.public_ip = iface.ext_addr;
  out.attrs.backend_type = "host-gw";
  if (config.enable_ipv6) out.attrs.public_ipv6 = iface.ext_v6_addr;
  out.mtu = iface.mtu;
  return out;
}

void HostGwBackend::lease_acquired(const Lease& ours) {
  own_ = ours.subnet;
  routes_.erase(ours.subnet);
  if (config_.enable_ipv6) {
    if (!ours.ipv6_subnet)
      throw BackendError("host-gw: IPv6 is enabled but the lease " + ours.subnet.str() +
                         " has no IPv6");
    own6_ = ours.ipv6_subnet->network();
    routes6_.erase(*own6_);
  }
}

Route4 HostGwBackend::route_for(const Lease& peer) const {
  Route4 r{peer.subnet, peer.attrs.public_ip, iface_.index, false};
  if (use_nexthops_) r.nhid = kHostGwNexthops.id_for(config_.network, peer.subnet).value_or(0);
  return r;
}

void HostGwBackend::sync(const std::vector<Lease>& peers) {
  routes_.clear();
  routes6_.clear();
  std::vector<PeerEvent> batch;
  batch.reserve(peers.size());
  for (const auto& p : peers) batch.push_back({PeerEvent::Type::kAdded, p});
  apply_batch(batch, true);
}

void HostGwBackend::apply(const std::vector<PeerEvent>& batch) { apply_batch(batch, false); }

void HostGwBackend::choose_route_form(bool nexthop_dump_ok, const std::string& why) {
  if (form_chosen_) return;
  form_chosen_ = true;
  if (!nexthop_objects_enabled_by_env()) {
    use_nexthops_ = false;
    note(
        "host-gw: nexthop objects disabled by FLANNEL_NEXTHOP_OBJECTS; routes use inline "
        "gateways");
  } else if (!nexthop_dump_ok) {
    use_nexthops_ = false;
    note("host-gw: the kernel refuses nexthop objects (" + why + "); routes use inline gateways");
  } else {
    use_nexthops_ = true;
  }
}

// What one pass reads of the kernel. A full sync reads it once: routes already right are skipped
// (a restart changes nothing) and the reconciliation sees the table. Single events do not read it
// (one dump of 10,000 routes costs tens of ms): they write from routes_ / routes6_, the record of
// what we programmed, as vxlan does; check() and the next sync catch what someone else changed.
struct HostGwBackend::KernelView {
  std::optional<std::map<IP4Net, Route4>> routes;   // sync only: the main table, first per dst
  std::optional<std::map<IP6Net, Route6>> routes6;  // sync only
  std::map<uint32_t, Nexthop4> nexthops;            // our nexthop objects, when have_nexthops
  bool have_nexthops = false;                       // sync only: events write without comparing
  std::set<uint32_t> wanted_ids;                    // nexthop ids the batch's peers use
};

void HostGwBackend::apply_batch(const std::vector<PeerEvent>& batch, bool full) {
  KernelView kv;
  read_kernel(full, &kv);
  BatchRunner run(*nl_, batch, "host-gw", [this](const std::string& line) { note(line); });
  skipped_ += run.queue_peers([&](size_t i) { queue_peer(batch[i], i, &kv, &run); });
  queue_stale(&kv, &run);
  run.commit([&](size_t i) { forget_peer(batch[i]); });
  for (const auto& what : run.stale_removed()) {
    ++reconciled_;
    note("host-gw: removed stale " + what + " (no lease holds it any more)");
  }
  run.finish();
}

void HostGwBackend::read_kernel(bool full, KernelView* kv) {
  const bool v4 = config_.enable_ipv4, v6 = config_.enable_ipv6;
  if (full && v4) {
    try {
      kv->routes.emplace();
      for (auto& r : nl_->routes4()) kv->routes->emplace(r.dst, r);  // first per dst, as flannel
    } catch (const NetlinkError& e) {
      throw BackendError(std::string("host-gw: cannot read the routing table: ") + e.what());
    }
  }
  if (full && v6) kv->routes6 = load_routes6();
  // Our nexthops. The first dump also decides between nexthop objects and inline gateways.
  if (v4 && (full || !form_chosen_)) {
    try {
      kv->nexthops = owned_nexthops(*nl_, kHostGwNexthops);
      kv->have_nexthops = full;
      choose_route_form(true, "");
    } catch (const NetlinkError& e) { choose_route_form(false, e.what()); }
  }
}

void HostGwBackend::queue_peer(const PeerEvent& ev, size_t tag, KernelView* kv, BatchRunner* run) {
  const Lease& peer = ev.lease;
  if (config_.enable_ipv6 && peer.ipv6_subnet) {
    try {
      queue_peer6(ev, kv->routes6 ? &*kv->routes6 : nullptr, &run->requests(), tag);
    } catch (const std::exception& e) {
      run->fail(tag, "IPv6 subnet " + peer.ipv6_subnet->str() + ": " + e.what());
    }
  }
  if (!config_.enable_ipv4) return;
  auto* kernel = kv->routes ? &*kv->routes : nullptr;
  auto* nexthops = kv->have_nexthops ? &kv->nexthops : nullptr;
  try {
    if (ev.type == PeerEvent::Type::kAdded) {
      queue_add4(peer, kernel, nexthops, &kv->wanted_ids, &run->requests(), tag);
    } else {
      queue_remove4(peer, kernel, nexthops, &run->requests(), tag);
    }
  } catch (const std::exception& e) { run->fail(tag, e.what()); }
}

// Startup reconciliation: routes and nexthops that look like ours but no lease holds.
void HostGwBackend::queue_stale(KernelView* kv, BatchRunner* run) {
  NetlinkBatch& nb = run->requests();
  std::vector<std::string>* stale = run->stale();
  if (kv->routes6) queue_reconcile6(*kv->routes6, &nb, run->first_stale_tag(), stale);
  if (kv->routes) {
    for (const auto& [dst, r] : *kv->routes) {
      bool ours_looking = r.protocol == kRtprotBoot && r.oif == iface_.index && !r.gw.is_zero() &&
                          config_.network.contains(dst) && dst != config_.network;
      if (!ours_looking || routes_.count(dst) || (own_ && dst == *own_)) continue;
      nb.route_delete(r, run->first_stale_tag() + stale->size());
      stale->push_back("route " + dst.str() + " via " + r.gw.str());
    }
  }
  if (kv->have_nexthops) {
    for (const auto& [id, nh] : kv->nexthops) {
      if (kv->wanted_ids.count(id)) continue;
      nb.nexthop_delete(id, run->first_stale_tag() + stale->size());
      stale->push_back("nexthop " + nh.str());
    }
  }
}

// A peer the kernel refused is forgotten, so check() and the next sync program it again.
void HostGwBackend::forget_peer(const PeerEvent& ev) {
  if (ev.type != PeerEvent::Type::kAdded) return;
  routes_.erase(ev.lease.subnet);
  if (ev.lease.ipv6_subnet) routes6_.erase(ev.lease.ipv6_subnet->network());
}

void HostGwBackend::queue_add4(const Lease& peer, std::map<IP4Net, Route4>* kernel,
                               const std::map<uint32_t, Nexthop4>* nexthops,
                               std::set<uint32_t>* wanted_ids, NetlinkBatch* nb, size_t tag) {
  Route4 want = route_for(peer);
  if (want.nhid) {
    Nexthop4 nh{want.nhid, want.gw, want.oif, false};
    wanted_ids->insert(nh.id);
    bool same = false;
    if (nexthops) {
      auto it = nexthops->find(nh.id);
      same = it != nexthops->end() && same_nexthop(it->second, nh);
    }
    if (!same) nb->nexthop_replace(nh, tag);
  }
  if (kernel) {
    auto it = kernel->find(want.dst);
    bool same = it != kernel->end() && it->second.nhid == want.nhid && it->second.gw == want.gw &&
                it->second.oif == want.oif && !it->second.onlink &&
                (!want.nhid || it->second.protocol == kRtprotBoot);
    if (!same) {
      nb->route_replace(want, tag);
      want.protocol = kRtprotBoot;
      (*kernel)[want.dst] = want;
    }
  } else {
    // An event: a replace is idempotent and O(1) with a nexthop object, so it is always sent;
    // a new PublicIP thus replaces the route (and its nexthop) in place.
    nb->route_replace(want, tag);
    want.protocol = kRtprotBoot;
  }
  routes_[want.dst] = want;
}

void HostGwBackend::queue_remove4(const Lease& peer, std::map<IP4Net, Route4>* kernel,
                                  std::map<uint32_t, Nexthop4>* nexthops, NetlinkBatch* nb,
                                  size_t tag) {
  Route4 want = route_for(peer);
  std::optional<Route4> known;
  if (auto it = routes_.find(peer.subnet); it != routes_.end()) known = it->second;
  routes_.erase(peer.subnet);
  if (kernel) {
    auto it = kernel->find(want.dst);
    if (it != kernel->end() && it->second.gw == want.gw && it->second.oif == want.oif) {
      nb->route_delete(it->second, tag);
      kernel->erase(it);
    }
  } else if (known) {
    // What we programmed: the kernel matches the delete on its nexthop id (or its gateway and
    // device), so a route someone else put there since is left alone.
    nb->route_delete(*known, tag);
  } else {
    // Not in our record (added before a failure, or never): the lease's route in either form.
    Route4 inline_route = want;
    inline_route.nhid = 0;
    nb->route_delete(inline_route, tag);
  }
  uint32_t nhid = known && known->nhid ? known->nhid : want.nhid;
  if (nhid && (!nexthops || nexthops->count(nhid))) {
    nb->nexthop_delete(nhid, tag);
    if (nexthops) nexthops->erase(nhid);
  }
}

void HostGwBackend::check() {
  std::map<IP4Net, Route4> kernel;
  try {
    for (auto& r : nl_->routes4()) kernel.emplace(r.dst, r);
  } catch (const NetlinkError& e) {
    throw BackendError(std::string("host-gw: cannot read the routing table: ") + e.what());
  }
  NetlinkBatch nb(*nl_);
  std::vector<std::string> restoring;  // "10.5.3.0/24 via 10.250.0.3", by tag
  for (const auto& [dst, want] : routes_) {
    auto it = kernel.find(dst);
    if (it != kernel.end() && it->second.gw == want.gw && it->second.oif == want.oif &&
        it->second.nhid == want.nhid)
      continue;
    if (want.nhid)
      nb.nexthop_replace(Nexthop4{want.nhid, want.gw, want.oif, false}, restoring.size());
    nb.route_replace(want, restoring.size());
    restoring.push_back(dst.str() + " via " + want.gw.str());
  }
  if (config_.enable_ipv6) queue_check6(&nb, &restoring);
  BatchErrors errors;
  std::vector<bool> failed(restoring.size(), false);
  for (const auto& f : nb.commit()) {
    if (failed[f.tag]) continue;
    failed[f.tag] = true;
    errors.add(std::string("restoring route ") + restoring[f.tag] + ": " + f.message());
  }
  for (size_t k = 0; k < restoring.size(); ++k) {
    if (failed[k]) continue;
    note("host-gw: restored route " + restoring[k] + " (it was missing or changed)");
  }
  errors.throw_if_any(routes_.size() + routes6_.size());
}

}  // namespace flannel
