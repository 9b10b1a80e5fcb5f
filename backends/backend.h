// Backend: the data plane behind one lease. Given the network config, the chosen external
// interface and (later) our lease, a backend sets up whatever local device it needs, says what
// to publish in the lease (BackendType, BackendData) and which MTU pods should use, and then
// applies batches of remote lease events (routes, neighbours, FDB entries, peer tables).
//
// A backend never talks to the store and the store never touches the kernel: the daemon moves
// plain data (core/ structs) between them. Backends receive events in batches, so the initial
// sync of thousands of peers is one call.
//
// Thread safety: the daemon calls a Backend from one thread at a time (WireguardBackend's
// peer_stats() is the one method meant for another thread). Call order: setup(), then
// lease_acquired(), then sync()/apply()/check(). A call before setup() is not checked alike:
// vxlan throws BackendError, udp queues the peers, host-gw and wireguard dereference a null
// handle (undefined behaviour).
//
// Errors are thrown as BackendError with a message an operator can act on. A failure on one peer
// does not stop the others: sync() and apply() carry on and then throw one BackendError naming
// every failed peer (batch_errors.h); with host-gw and vxlan the peers that did not fail are in
// place, and the error is a PeerFailures that lists the failed peers, so the daemon retries
// those alone (wireguard sends the whole change as one device request: a plain BackendError). Not
// every path wraps its errors: NetlinkError (a std::runtime_error, not a BackendError) can escape
// UdpBackend::lease_acquired() when the lease moves to another subnet, and WireguardBackend's
// setup() and check() when they open a netlink session or delete an old device; the daemon
// catches std::exception.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/ip.h"
#include "core/lease.h"
#include "core/lease_event.h"

namespace flannel {

class BackendError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One peer change that sync() or apply() could not program, and why.
struct PeerFailure {
  LeaseKey key;
  PeerEvent::Type type = PeerEvent::Type::kAdded;  // sync() reports its peers as kAdded
  std::string reason;
};

// The BackendError of a batch in which some failures belong to peers (batch_errors.h): what()
// is the same summary, and peers() names every failed peer once (its first reason), in the order
// they failed, not capped like the message. only_peers() is true when every failure belongs to a
// peer; false when something else failed too (reading the kernel, removing a stale entry), which
// only a full sync repairs. The peers not named were programmed. Copying shares the list.
class PeerFailures : public BackendError {
 public:
  PeerFailures(const std::string& what, std::vector<PeerFailure> peers, bool only_peers)
      : BackendError(what),
        peers_(std::make_shared<const std::vector<PeerFailure>>(std::move(peers))),
        only_peers_(only_peers) {}
  const std::vector<PeerFailure>& peers() const { return *peers_; }
  bool only_peers() const { return only_peers_; }

 private:
  std::shared_ptr<const std::vector<PeerFailure>> peers_;  // shared: copies never throw
  bool only_peers_;
};

// The host's side of the overlay (flannel's ExternalInterface).
struct ExternalInterface {
  std::string name;  // e.g. "eth0"
  int index = 0;     // kernel ifindex
  int mtu = 0;
  IP4 iface_addr;  // the address tunnels bind to / source from
  IP4 ext_addr;    // the address advertised in the lease (-public-ip, else iface_addr)
  // Dual stack: the interface's IPv6 address and the one advertised (-public-ipv6, else the
  // interface's); nullopt when IPv6 is off or the interface has none.
  std::optional<IP6> iface_v6_addr;
  std::optional<IP6> ext_v6_addr;
};

// What setup() reports: the attrs to publish in our lease and the MTU for subnet.env.
struct BackendSetup {
  LeaseAttrs attrs;
  int mtu = 0;
};

class Backend {
 public:
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;
  virtual ~Backend() = default;

  // The registered backend name ("alloc", "udp", "vxlan", ...).
  virtual std::string type() const = 0;

  // Prepares local devices that must exist before the lease (e.g. the VXLAN device whose MAC is
  // published) and returns the attrs to publish and the MTU. Throws BackendError. Not atomic: a
  // failure can leave a device deleted or half set up (vxlan deletes an incompatible device
  // before creating its own; wireguard deletes an existing flannel-wg first).
  virtual BackendSetup setup(const Config& config, const ExternalInterface& iface) = 0;

  // Called once our lease is held (and again if it is re-acquired with another subnet): assign
  // the local device address, bring it up. Throws BackendError. `ours` is copied, not kept.
  // Moving the address is delete-then-add (NetlinkSession::ensure_v4_address): a failure may
  // leave the device without one until the next call.
  virtual void lease_acquired(const Lease& ours) = 0;

  // True if the backend needs remote lease events at all (alloc does not).
  virtual bool wants_peers() const = 0;

  // The peer-sync protocol. The daemon keeps the peer set (every other host's lease; it alone
  // filters out our own subnet) and tells the backend in two ways:
  //  - sync(all peers): after lease_acquired() and after every resync of the daemon (lost watch
  //    history, store reset). The backend reconciles the data plane to exactly this set: entries
  //    already right are left untouched (a restart changes nothing), peers it knew that are not
  //    in the set are removed, and state left by leases that vanished while the agent was down
  //    is removed. Called with an empty set too.
  //  - apply(changes): the deltas between syncs, in order.
  // Both try every peer and then throw one BackendError naming the failures (a PeerFailures
  // when the backend lists them per peer). Neither keeps a reference to its argument. The
  // daemon retries a peer that failed with apply({kAdded, peer}) alone, so an add of a peer the
  // backend already holds, in full or in part, programs it again (replace, not "exists"). A sync
  // that cannot read the kernel answers differently per backend: host-gw throws before writing
  // anything (having already forgotten its record of routes), vxlan counts it as one failure and
  // still writes every peer (without comparing, removing nothing stale).
  virtual void sync(const std::vector<Lease>& peers) = 0;
  virtual void apply(const std::vector<PeerEvent>& batch) = 0;

  // Admission of a peer's BackendData (the daemon asks before the peer reaches sync/apply):
  // nullopt when this backend can program `peer`, else why not, naming the bad value (vxlan: no
  // VtepMAC, or one that is not a unicast MAC). Peers of another BackendType are not judged here
  // (sync/apply skip them with a note). The default accepts everything.
  virtual std::optional<std::string> refuse_peer_data(const Lease& peer) const {
    (void)peer;
    return std::nullopt;
  }

  // Why a device this backend made is gone (someone deleted it; the kernel deletes a vxlan
  // device with its underlay): the daemon then sets up a new instance on the interface and syncs
  // every peer, as when the interface returns. nullopt: intact, or nothing to lose (the
  // default). Asked after the kernel reports a deleted link; reads the kernel, throws nothing.
  virtual std::optional<std::string> device_gone() const { return std::nullopt; }

  // How often the daemon should call check(); 0 = never (the default).
  virtual std::chrono::seconds check_interval() const { return std::chrono::seconds(0); }
  // Re-verifies the kernel against what apply() set up and repairs what someone else removed
  // (host-gw: missing routes re-added, as v0.11's 10 s route check). Throws BackendError.
  virtual void check() {}

  // Where the backend reports what an operator should know but is not an error: peers skipped
  // for another BackendType, a device re-created, stale entries removed at start. One line each;
  // the daemon logs them. Unset: dropped. Called synchronously, on the thread that is inside a
  // Backend method (wireguard also notes from its destructor), so whatever it captures must
  // outlive the Backend.
  using Notify = std::function<void(const std::string& line)>;
  void set_notify(Notify notify) { notify_ = std::move(notify); }

 protected:
  void note(const std::string& line) const {
    if (notify_) notify_(line);
  }

 private:
  Notify notify_;
};

// Creates the backend registered under `type` (compared lowercase). Throws BackendError
// "unknown backend type: X (valid: alloc, ...)" for anything else ("... is not implemented yet"
// for ipip). Touches no kernel state.
std::unique_ptr<Backend> make_backend(const std::string& type);

}  // namespace flannel
