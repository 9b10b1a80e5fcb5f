// Agent: the life of one flanneld after its interface and store are chosen: it waits for the
// network config, acquires a lease, sets up the backend, the rules and the subnet file, then
// holds the lease (renewing and checking it) and keeps the backend's peer set equal to the
// store's leases until it is stopped. It never deletes or releases the lease on shutdown, so a
// restart is hitless.
//
// Thread-safety: run() is called once, on the agent's own thread, and every other method runs
// there; ready() and state() may be read from any thread (/readyz, /metrics, tests).
//
// The state machine. run() is `state = step(state)` until kStopping; each step handles one input
// and returns an event (a store answer goes through classify(), agent_states.h), and the next
// state is the table's (transition()). This block is render_agent_states(), checked by a test:
//
// | state | on | next | what is done |
// |---|---|---|---|
// | waiting for config | ok | acquiring | at start: backend, rules; after a reset: grace starts |
// |  | retry | waiting for config | missing or invalid: logged once, read again after a pause |
// |  | outage | waiting for config | counted, logged, read again after a pause |
// |  | store reset | waiting for config | read again at once |
// |  | fatal | stopping | at start: interface or backend unusable: exit 1 |
// |  | stop | stopping | exit 0 |
// | acquiring | ok | holding | lease written (CAS), backend, rules, `subnet.env` |
// |  | failed | lost | after a store reset: a local error, tried again |
// |  | fatal | stopping | at start: a local error: exit 1 |
// |  | stop | stopping | exit 0 |
// | holding | ok | holding | one input handled |
// |  | retry | holding | renewal sooner; lease read back at the next check |
// |  | outage | holding | `store_down`: lease read back, peers listed again |
// |  | lease lost | lost | counted, logged |
// |  | store reset | waiting for config | counted, logged; our subnet re-registered if still free |
// |  | stop | stopping | exit 0; lease, `subnet.env`, devices stay |
// | lost | ok | holding | re-acquired: the same subnet if still free |
// |  | failed | lost | tried again after a pause |
// |  | stop | stopping | exit 0 |
//
// In kHolding a step handles one input, the first of: the peer set of a new lease (READY=1 the
// first time, a full sync), a look at the external interface (woken by the kernel's link and
// address notifications, or a failed rebuild's retry due: agent_iface.cc), renewal due, lease
// check due (every lease_check_interval), backend check due, a failed backend sync to retry,
// peers set aside whose retry is due, `store_down`, the end of `reset_grace_until`, else one
// watch call (peer events, our own lease changed, history gone: list again, store reset). The
// watch call waits at most until the next deadline, or until the interface may have changed.
// Its data is one struct, Holding, whose two conditions are named fields:
//   store_down: a watch or a read-back of our lease failed. Before the next watch our lease is
//     read back (missing means the store was reset) and the peers listed again, every
//     retry_pause until the store answers.
//   reset_grace_until: after a store reset, set when the config is read again. Until then
//     resyncs keep peers the new store does not list yet (their agents re-register meanwhile);
//     then a full resync removes those that never came back.
//
// Peers: the agent alone filters our own subnet out; the backend gets sync(all peers) after the
// lease is established and after every resync, and apply(changes) for the deltas in between.
// A peer the backend fails to add (a PeerFailures naming it, backend.h) is set aside
// (PeerBackoff, peer_backoff.h) and retried alone with apply({kAdded, peer}), after
// peer_retry_first, doubling up to peer_retry_max; the others are not touched again. One warning
// when a peer is set aside, one line when it is programmed; `flannel_peers_set_aside` counts
// them. A peer the store changes or removes leaves the set (a new value starts afresh); a full
// sync passes every peer, set aside or not, and sets aside again those it fails. Any other
// failure (reading the kernel, a stale entry, a removal, an error naming no peer) is repaired by
// a full sync after retry_pause, as before: only a sync's reconciliation removes what no peer
// wants, and the agent does not retry the removal of a peer it no longer has.
// The store and the backend are the only I/O; the backend comes from an injected factory, so
// unit tests drive every branch with an in-memory Store and a recording Backend.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/config.h"
#include "core/peer_cache.h"
#include "daemon/agent/agent_states.h"
#include "daemon/agent/iface_watch.h"
#include "daemon/agent/lease_keeper.h"
#include "daemon/agent/metrics.h"
#include "daemon/agent/net_rules.h"
#include "daemon/agent/peer_backoff.h"
#include "daemon/agent/waker.h"
#include "stores/store.h"

namespace flannel {

struct AgentSettings {
  std::string subnet_file = "/run/flannel/subnet.env";
  bool ip_masq = false;
  bool iptables_forward_rules = true;
  std::chrono::seconds iptables_resync{5};
  bool enable_nftables = false;        // -enable-nftables (or the config's EnableNFTables)
  std::string iptables_mode = "auto";  // -iptables-mode
  bool ip_masq_fully_random_disable = false;
  bool ip_blackhole_route = false;
  std::chrono::seconds renew_margin{3600};  // renew this long before expiry
  std::chrono::seconds lease_ttl{86400};
  // How often our own lease is read back (still there, still ours); 0 = never.
  std::chrono::milliseconds lease_check_interval{60000};
  // Pause before retrying a failed store call or a failed backend sync.
  std::chrono::milliseconds retry_pause{1000};
  // A peer the backend fails to program is set aside and retried alone: first this long after
  // the failure, the wait doubling with each failed retry up to peer_retry_max.
  std::chrono::milliseconds peer_retry_first{1000};
  std::chrono::milliseconds peer_retry_max{300000};
  std::chrono::milliseconds max_watch_wait{30000};  // longest single watch call
  // After a store reset the new store holds only the leases re-registered so far: peers missing
  // from it stay programmed this long (their agents re-register meanwhile), then a full resync
  // removes those that never came back.
  std::chrono::milliseconds reset_grace{120000};
  std::string config_key;  // for logs: "<prefix>/config"
  // The chosen interface's IPv6 address (facts 2.4), asked only when the config enables IPv6
  // and -public-ipv6 is not set; nullopt = it has none. Unset = no lookup (tests).
  std::function<std::optional<IP6>(const ExternalInterface&)> find_iface_v6;
  // Following the external interface (agent_iface.cc): the interface chosen again with the same
  // flags (lookup_usable_interface: throws, saying why, when it is gone, down or has no
  // address), and whether to watch the kernel's link and address notifications (IfaceWatch)
  // that make the agent look again, and which route notifications (the flags' choice depends on
  // the default route or the route to -iface-can-reach). Unset: the interface is never looked
  // at again (unit tests wake the agent with interface_may_have_changed()).
  std::function<ExternalInterface()> find_iface;
  bool watch_iface = false;
  IfaceRoutes iface_routes;
};

// Creates the backend named by the config's Backend.Type; throws BackendError if unknown.
using BackendFactory = std::function<std::unique_ptr<Backend>(const std::string& type)>;

class Agent {
 public:
  // `store` and `metrics` must outlive the Agent. `backends` and settings.find_iface_v6 are
  // called on the agent's thread, inside run().
  Agent(AgentSettings settings, Store& store, ExternalInterface iface, Metrics& metrics,
        BackendFactory backends = make_backend);

  // Runs until `stop` fires (returns 0) or a fatal error (logged; returns 1: unknown backend,
  // backend setup failure, subnet file not writable, the config cannot run on this host). Store
  // and backend errors are logged and retried, not thrown. Call it once. The backend, its
  // devices and the iptables keepers' threads live until the Agent is destroyed.
  int run(std::stop_token stop);

  // Thread-safe readers, for /readyz, /metrics and tests. ready() is the agent's own flag: true
  // exactly in kHolding (the lease held and the subnet file written) while the external
  // interface can carry the overlay (Holding::iface_down unset); nothing else drives it.
  bool ready() const { return ready_.load(); }
  // Thread-safe: makes the agent look at its interface again soon (IfaceWatch calls it).
  void interface_may_have_changed() { waker_.wake(); }
  AgentState state() const { return state_.load(); }

 private:
  // kHolding's data: its clock, its watch cursor, and its two conditions (see the top).
  struct Holding {
    uint64_t cursor = 0;
    std::optional<Clock::time_point> next_renew, next_lease_check, next_backend_check,
        next_sync_retry;
    std::optional<LeaseList> new_peers;  // the list a new lease was chosen from: synced first
    bool store_down = false;
    std::optional<Clock::time_point> reset_grace_until;
    // Why the external interface cannot carry the overlay (gone, down, no address, its backend
    // could not be set up again): not ready meanwhile; next_iface_look retries a failed rebuild.
    std::optional<std::string> iface_down;
    std::optional<Clock::time_point> next_iface_look;
    std::chrono::milliseconds iface_retry{0};  // the last pause before such a retry
  };
  // A re-registration after a store reset, from kHolding through kWaitingForConfig and
  // kAcquiring back to kHolding, where one summary line is logged.
  struct Reregistration {
    LeaseKey old;  // acquired again if it is free
    std::chrono::steady_clock::time_point started;
  };

  // --- the machine ---
  AgentState step(AgentState state, std::stop_token stop);
  AgentEvent handle(AgentState state, std::stop_token stop);
  void set_state(AgentState s);

  // --- kWaitingForConfig (agent_config.cc) ---
  AgentEvent read_config(std::stop_token stop);
  // Logs a problem with the config (each distinct one once at warning level), pauses, and
  // returns `event` (kStop if stopped meanwhile).
  AgentEvent config_problem(const std::string& problem, AgentEvent event, std::stop_token stop);
  // The first valid config: interface, backend, rules. kFatal (logged) if they cannot run.
  AgentEvent start_with(Config config);
  AgentEvent reread(Config config);  // after a store reset
  // Reads subnet.env of the previous run: the PreviousRun for the rules, and previous_key_.
  PreviousRun read_previous_run();
  // After the config is read: the IPv6 side of iface_ (cleared with IPv6 off; looked up with
  // settings_.find_iface_v6 unless -public-ipv6 gave one), and IPv6 + udp refused. False (logged)
  // if the config cannot run on this host.
  bool prepare_interface();
  // The IPv6 side of `e` as prepare_interface() describes (logged when `log`); the problem when
  // the config cannot run on it.
  std::optional<std::string> complete_interface(ExternalInterface& e, bool log) const;
  bool start_backend();  // false (logged) if the backend is unknown or cannot be set up

  // --- kAcquiring and kLost ---
  AgentEvent acquire(std::stop_token stop);
  AgentEvent reacquire(std::stop_token stop);
  // Acquires a lease (the same subnet as `previous` if it is free), then backend, rules, subnet
  // file. kOk, kStop, or kFailed on a local error (logged).
  AgentEvent establish(std::optional<LeaseKey> previous, std::stop_token stop);
  void install_lease();  // backend, rules, subnet file; throws on failure
  AgentEvent try_again_later(std::stop_token stop);

  // --- kHolding: one handler per input (agent_holding.cc) ---
  AgentEvent hold(std::stop_token stop);
  AgentEvent next_input(std::stop_token stop);
  AgentEvent settle_in();  // READY=1 the first time, the full peer sync of a new lease
  AgentEvent renew();
  AgentEvent renew_later(const Status& failure);
  AgentEvent check_lease();
  AgentEvent check_backend();
  AgentEvent store_back(std::stop_token stop);
  AgentEvent end_reset_grace();
  AgentEvent watch(std::stop_token stop);

  // --- following the external interface (agent_iface.cc) ---
  void start_following();  // the IfaceWatch, with settings_.watch_iface
  // An input of kHolding: the interface is looked up again; gone or down: not ready (lease and
  // routes kept); changed or back: reattach().
  AgentEvent follow_interface();
  // settings_.find_iface() with the IPv6 side completed; nullopt and *why_not when unusable.
  std::optional<ExternalInterface> look_again(std::string* why_not) const;
  // The backend rebuilt on iface_ (a new instance: setup, lease_acquired), the lease
  // republished if what it announces changed, admission, subnet.env if changed, a full sync.
  AgentEvent reattach(const ExternalInterface& old);
  void interface_down(const std::string& why);
  AgentEvent rebuild_failed();  // not ready; looked at again after a pause that doubles
  // backend_ exists, or is rebuilt on the interface as it is now; false (logged) if it cannot be.
  bool ensure_backend();
  // `arrived`: when the watch call returned with `w` (the start of the peer-apply latency).
  AgentEvent apply_watch(const WatchResult& w, std::chrono::steady_clock::time_point arrived);
  AgentEvent relist_behind_history();
  AgentEvent watch_failed(const Status& s, std::stop_token stop);
  std::chrono::milliseconds watch_wait() const;  // until the next deadline, at most the max
  // Our lease as read back from the store: adopts a rewrite with our attrs; kLeaseLost if it is
  // another host's; otherwise what classify(call, ...) says.
  AgentEvent verify_own_lease(StoreCall call, const char* when);
  AgentEvent adopt_or_lose(const Lease& mine);
  // Handles an event about our own subnet; returns false if the lease is lost.
  bool check_own_event(const LeaseEvent& ev);
  // Entering kLost / a store reset from kHolding: counted and logged.
  AgentEvent lease_lost(const std::string& why);
  AgentEvent store_reset(const std::string& where);
  void log_reset_handled();

  // --- steps ---
  // `only_if_changed`: left alone when it already holds exactly what would be written.
  void write_subnet_file(bool only_if_changed = false);
  // Lists the leases and hands the backend the full peer set. Returns the store status.
  Status resync();
  // The peer set becomes `list` (the watch continues from its revision); the backend gets it all.
  void sync_peers(LeaseList list);

  // metrics: peers, ipv6_peers, refused leases; one warning per newly refused lease
  void count_peers();
  // What a peer lease may claim (core/admission.h): the config's networks, this host's addresses.
  void set_admission_rules();
  void lease_updated();  // expiration changed: metrics and the renew deadline

  // --- the backend's peers, and the peers set aside (agent_peers.cc) ---
  // Set-aside peers the store changed or removed, with the attempts that had failed: they leave
  // the set before the backend sees the change (a new value starts afresh).
  using Restarted = std::map<LeaseKey, int>;
  Restarted restart_changed(const std::vector<PeerEvent>& changes);
  // sync(all peers). Peers that fail are set aside; any other failure schedules the next sync.
  void sync_backend(const Restarted& restarted = {});
  // apply(changes), the same way; `arrived` starts the peer-apply latency.
  void send_to_backend(const std::vector<PeerEvent>& batch,
                       std::chrono::steady_clock::time_point arrived);
  bool set_aside_due() const;
  AgentEvent retry_set_aside();  // the peers whose retry is due, added again in one apply
  // Runs `call`, a sync (`tried` null: every peer) or an apply that adds the peers in `tried`,
  // then settles the peers set aside. Returns the error when a full sync must follow.
  std::optional<std::string> program(const std::function<void()>& call,
                                     const std::set<LeaseKey>* tried, const Restarted& restarted);
  // After a backend call that failed on `failures` (null: nothing failed): those peers set
  // aside or counted again, the set-aside peers tried and not failed reported as programmed.
  // Returns true if something only a full sync repairs failed too.
  bool settle_set_aside(const PeerFailures* failures, const std::set<LeaseKey>* tried,
                        const Restarted& restarted);

  AgentSettings settings_;
  Store& store_;
  ExternalInterface iface_;
  Metrics& metrics_;
  BackendFactory make_backend_;
  LeaseKeeper keeper_;
  PeerCache peers_;
  std::optional<Config> config_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<NetRules> net_rules_;
  BackendSetup setup_;
  PeerBackoff set_aside_;  // peers the backend failed to program, retried alone
  Lease lease_;
  std::optional<LeaseKey> previous_key_;  // from subnet.env, for the first acquisition
  bool notified_ = false;                 // READY=1 sent to systemd
  int exit_code_ = 0;                     // 1 after kFatal

  std::atomic<AgentState> state_{AgentState::kWaitingForConfig};
  std::atomic<bool> ready_{false};

  std::string config_problem_;  // kWaitingForConfig: the last problem logged
  std::optional<Reregistration> rereg_;
  Holding hold_;
  std::optional<IP6> public_v6_;  // -public-ipv6, for the interface looked up again
  Waker waker_;                   // cuts the store watch short (interface_may_have_changed)
  std::unique_ptr<IfaceWatch> iface_watch_;  // last: its thread calls waker_
};

}  // namespace flannel
