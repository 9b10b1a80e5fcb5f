// host-gw: flannel v0.11's routed backend (backend/hostgw, backend/route_network.go). No tunnel:
// every host is a router for its pods, and each peer's subnet is routed via the peer's PublicIP
// on the external interface, so all hosts must share one L2 network.
//
//   per peer (BackendType "host-gw"):  ip nexthop replace id <ID> via <PublicIP> dev <ext iface>
//                                       ip route replace <subnet> nhid <ID>  (table main,
//                                       protocol boot; `ip route` shows via and dev)
//   peer removed:                       ip route del <subnet>; ip nexthop del id <ID>
//
// Nexthop ids and the fallback to v0.11's inline form (`ip route replace <subnet> via
// <PublicIP> dev <ext iface>`: kernels without nexthop objects, or FLANNEL_NEXTHOP_OBJECTS=off)
// are described in peer_nexthops.h. Requests of one batch are pipelined (netlink/batch.h).
//
// Lease attrs: {"PublicIP":"<ext addr>","BackendType":"host-gw"}; MTU = the ext interface MTU.
// Requires ExtAddr == IfaceAddr (a host behind NAT cannot be a next hop).
//
// Beyond v0.11 (facts §7.11): the first batch after start is taken as the full peer set, and
// routes left behind by leases that vanished while we were down are removed. Only routes that
// look like ours are candidates: protocol boot, a gateway, output on the ext interface, and a
// destination inside the cluster Network. Routes already correct are left untouched, so a restart
// causes no change in the kernel.
//
// The kernel is read only by a full sync (and the 10 s check()): single peer events are applied
// from the backend's own record of the routes it programmed (routes_, routes6_), so an event
// costs its own requests and not a dump of the whole table (10,000 routes: ~40 ms). An added
// peer's nexthop and route are always replaced (idempotent); a removed peer's route is deleted
// as recorded (the kernel matches nexthop id, or gateway and device, so a route someone else put
// in its place stays). A route changed or deleted by hand is put back by check() or the next sync.
//
// Dual stack (current flannel, facts §2.7; hostgw_v6.cc): with EnableIPv6 the lease carries
// PublicIPv6 and every peer with an IPv6Subnet and a PublicIPv6 gets
// `ip -6 route replace <peer v6 subnet> via <peer PublicIPv6> dev <ext iface>` (inline gateway,
// protocol boot), in the same batch as its IPv4 route; sync() reconciles them (stale routes of
// protocol boot via the ext iface inside IPv6Network are removed) and check() re-adds missing
// ones. EnableIPv4 false: no IPv4 routes and no NAT guard.
//
// Thread safety: as Backend (one caller at a time).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/netlink/netlink.h"

namespace flannel {

class HostGwBackend : public Backend {
 public:
  HostGwBackend();
  ~HostGwBackend() override;

  std::string type() const override { return "host-gw"; }
  // Throws BackendError "...probably you're on a NAT..." when ext_addr != iface_addr.
  BackendSetup setup(const Config& config, const ExternalInterface& iface) override;
  void lease_acquired(const Lease& ours) override;
  bool wants_peers() const override { return true; }
  // Routes added / removed in one pass over one route dump. Per-peer failures are collected and
  // thrown together as one BackendError after the whole batch was applied; a refused peer is
  // forgotten, so check() and the next sync program it again. A routing table that cannot be
  // read throws at once, with nothing written and the record of routes already cleared (the
  // next apply() then deletes a removed peer's route in both forms). sync(), apply() and check()
  // require setup() first (no check: a null session).
  void sync(const std::vector<Lease>& peers) override;
  void apply(const std::vector<PeerEvent>& batch) override;
  // Every 10 s (as v0.11's routeCheck): routes of live peers that someone removed are re-added.
  // Throws BackendError naming the routes it could not restore.
  std::chrono::seconds check_interval() const override { return std::chrono::seconds(10); }
  void check() override;

  // Peers ignored because their BackendType is not "host-gw" (since construction).
  size_t skipped_peers() const { return skipped_; }
  // Stale routes and nexthops removed by startup reconciliation.
  size_t reconciled_routes() const { return reconciled_; }
  // True when peer routes point at nexthop objects (false: inline gateways, the fallback).
  bool uses_nexthops() const { return use_nexthops_; }
  // Kernel write requests sent so far (a restart onto a correct kernel sends none).
  size_t kernel_writes() const { return nl_ ? nl_->batched_requests() : 0; }

 private:
  Route4 route_for(const Lease& peer) const;
  // Decides once between nexthop objects and inline gateways (one note either way it falls back).
  void choose_route_form(bool nexthop_dump_ok, const std::string& why);
  // One pass over `batch`. `full` (sync) reads the kernel's routes and our nexthops once,
  // skips what is already right and removes our stale routes and nexthops not in routes_;
  // otherwise (events) nothing is read: the requests follow from the event and routes_.
  void apply_batch(const std::vector<PeerEvent>& batch, bool full);
  // The steps of apply_batch(). read_kernel: the sync's dumps (and the route form, once);
  // queue_peer: the v6 and v4 requests of one event, tagged `tag`; queue_stale: the removals of
  // what looks like ours but no peer holds (sync only); forget_peer: drops a refused peer.
  struct KernelView;
  void read_kernel(bool full, KernelView* kv);
  void queue_peer(const PeerEvent& ev, size_t tag, KernelView* kv, class BatchRunner* run);
  void queue_stale(KernelView* kv, class BatchRunner* run);
  void forget_peer(const PeerEvent& ev);
  // The IPv4 requests of one peer event. kernel / nexthops: the sync's dumps (updated as
  // requests are queued), null for events; wanted_ids collects the nexthop ids in use.
  void queue_add4(const Lease& peer, std::map<IP4Net, Route4>* kernel,
                  const std::map<uint32_t, Nexthop4>* nexthops, std::set<uint32_t>* wanted_ids,
                  class NetlinkBatch* nb, size_t tag);
  void queue_remove4(const Lease& peer, std::map<IP4Net, Route4>* kernel,
                     std::map<uint32_t, Nexthop4>* nexthops, class NetlinkBatch* nb, size_t tag);
  // The IPv6 half (hostgw_v6.cc). kernel6: the main table's v6 routes by dst (first per dst).
  std::map<IP6Net, Route6> load_routes6();
  // Queues the v6 route of one peer event (a note when the peer has no usable v6). kernel6:
  // the sync's dump, null for events (then routes6_ says what to delete).
  void queue_peer6(const PeerEvent& ev, std::map<IP6Net, Route6>* kernel6, class NetlinkBatch* nb,
                   size_t tag);
  void queue_reconcile6(const std::map<IP6Net, Route6>& kernel6, class NetlinkBatch* nb,
                        size_t first_tag, std::vector<std::string>* stale);
  // check() for the v6 routes: queues repairs, names them in *restoring (tags continue it).
  void queue_check6(class NetlinkBatch* nb, std::vector<std::string>* restoring);

  std::unique_ptr<NetlinkSession> nl_;
  Config config_;
  ExternalInterface iface_;
  std::optional<IP4Net> own_;
  std::map<IP4Net, Route4> routes_;  // the routes we maintain, by peer subnet
  std::optional<IP6Net> own6_;
  std::map<IP6Net, Route6> routes6_;  // the IPv6 routes we maintain, by peer v6 subnet
  bool form_chosen_ = false;
  bool use_nexthops_ = false;
  size_t skipped_ = 0;
  size_t reconciled_ = 0;
};

}  // namespace flannel
