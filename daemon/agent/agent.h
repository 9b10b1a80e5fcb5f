// Agent: the life of one flanneld after its interface and store are chosen, as a state machine.
//
//   kWaitingForConfig --config valid--> kAcquiring --lease written, backend and subnet file
//   ready--> kHolding --lease deleted / taken over / renewal refused--> kLost --re-acquired-->
//   kHolding;  kHolding --store reset--> kWaitingForConfig (re-read) -> kAcquiring (same subnet
//   if free) -> kHolding;  any state --stop--> kStopping.
//
// In kHolding one handler runs per input: a watch result (peer events, our own lease changed,
// history gone, store reset), renewal due, lease check due (our lease still there and still
// ours, every lease_check_interval), backend check due, a failed backend sync to retry, stop.
// The store and the backend are the only I/O; the backend comes from an injected factory, so
// unit tests drive every branch with an in-memory Store and a recording Backend.
//
// Peers: the agent alone filters our own subnet out; the backend gets sync(all peers) after the
// lease is established and after every resync, and apply(changes) for the deltas in between.
//
// Readiness is the agent's own flag (ready()): true while the lease is held and the subnet file
// written. /readyz and /metrics read it; nothing else drives it. The agent never deletes or
// releases the lease on shutdown, so a restart is hitless.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include "backends/backend.h"
#include "core/config.h"
#include "core/peer_cache.h"
#include "daemon/agent/lease_keeper.h"
#include "daemon/agent/metrics.h"
#include "daemon/agent/net_rules.h"
#include "stores/store.h"

namespace flannel {

struct AgentSettings {
  std::string subnet_file = "/run/flannel/subnet.env";
  bool ip_masq = false;
  bool iptables_forward_rules = true;
  std::chrono::seconds iptables_resync{5};
  std::chrono::seconds renew_margin{3600};  // renew this long before expiry
  std::chrono::seconds lease_ttl{86400};
  // How often our own lease is read back (still there, still ours); 0 = never.
  std::chrono::milliseconds lease_check_interval{60000};
  // Pause before retrying a failed store call or a failed backend sync.
  std::chrono::milliseconds retry_pause{1000};
  std::chrono::milliseconds max_watch_wait{30000};  // longest single watch call
  // After a store reset the new store holds only the leases re-registered so far: peers missing
  // from it stay programmed this long (their agents re-register meanwhile), then a full resync
  // removes those that never came back.
  std::chrono::milliseconds reset_grace{120000};
  std::string config_key;  // for logs: "<prefix>/config"
  // The chosen interface's IPv6 address (facts 2.4), asked only when the config enables IPv6
  // and -public-ipv6 is not set; nullopt = it has none. Unset = no lookup (tests).
  std::function<std::optional<IP6>(const ExternalInterface&)> find_iface_v6;
};

enum class AgentState { kWaitingForConfig, kAcquiring, kHolding, kLost, kStopping };
const char* to_string(AgentState state);

// Creates the backend named by the config's Backend.Type; throws BackendError if unknown.
using BackendFactory = std::function<std::unique_ptr<Backend>(const std::string& type)>;

class Agent {
 public:
  Agent(AgentSettings settings, Store& store, ExternalInterface iface, Metrics& metrics,
        BackendFactory backends = make_backend);

  // Runs until `stop` fires (returns 0) or a fatal error (logged; returns 1: unknown backend,
  // backend setup failure, subnet file not writable).
  int run(std::stop_token stop);

  // Thread-safe readers, for /readyz, /metrics and tests.
  bool ready() const { return ready_.load(); }
  AgentState state() const { return state_.load(); }

 private:
  // --- states ---
  std::optional<Config> wait_for_config(std::stop_token stop);
  // Reads subnet.env of the previous run: the PreviousRun for the rules, and previous_key_.
  PreviousRun read_previous_run();
  // After the config is read: the IPv6 side of iface_ (cleared with IPv6 off; looked up with
  // settings_.find_iface_v6 unless -public-ipv6 gave one), and IPv6 + udp refused. False (logged)
  // if the config cannot run on this host.
  bool prepare_interface();
  // kAcquiring: acquire (same subnet as `previous` if it is free), backend, rules, subnet file,
  // then a full peer sync. False if stopped or a fatal local error (logged).
  bool establish(std::optional<LeaseKey> previous, std::stop_token stop);
  void holding(std::stop_token stop);

  // --- one handler per input (kHolding) ---
  // `arrived`: when the watch call returned with `w` (the start of the peer-apply latency).
  void on_watch(const WatchResult& w, std::chrono::steady_clock::time_point arrived,
                std::stop_token stop);
  void on_renew_due(std::stop_token stop);
  void on_lease_check_due(std::stop_token stop);
  void on_backend_check_due();
  // Our lease is gone or no longer ours: kLost, then re-acquire.
  void on_lease_lost(const std::string& why, std::stop_token stop);
  // The store lost its data: re-read the config, re-register, resync; one summary line.
  void on_store_reset(const std::string& where, std::stop_token stop);
  // The first turn after a failed watch: the store may have been replaced in a way its answers
  // cannot show (a wiped etcd that already wrote past our index). Our lease gone means exactly
  // that: handled as a store reset. Otherwise the peers are listed again.
  void on_store_back(std::stop_token stop);

  // --- steps ---
  void set_state(AgentState s);
  void write_subnet_file();
  // Lists the leases and hands the backend the full peer set. Returns the store status.
  Status resync();
  // The peer set becomes `list` (the watch continues from its revision); the backend gets it all.
  void sync_peers(LeaseList list);
  void sync_backend();
  void count_peers();  // metrics: peers, ipv6_peers
  void send_to_backend(const std::vector<PeerEvent>& batch,
                       std::chrono::steady_clock::time_point arrived);
  // Our lease as read back from the store (lease check, after lost history): adopts a rewrite
  // with our attrs, reports loss otherwise. Returns false if the lease was lost or the store reset.
  // `missing_is_reset`: a missing lease is handled as a store reset rather than a lost lease.
  bool verify_own_lease(std::stop_token stop, const char* when, bool missing_is_reset = false);
  // Handles an event about our own subnet; returns false if the lease is lost.
  bool check_own_event(const LeaseEvent& ev);
  void lease_updated();  // expiration changed: metrics and the renew deadline

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
  Lease lease_;
  std::optional<LeaseKey> previous_key_;  // from subnet.env, for the first acquisition
  bool notified_ = false;  // READY=1 sent to systemd

  std::atomic<AgentState> state_{AgentState::kWaitingForConfig};
  std::atomic<bool> ready_{false};

  // kHolding's clock and cursor.
  uint64_t cursor_ = 0;
  std::optional<Clock::time_point> next_renew_, next_lease_check_, next_backend_check_,
      next_sync_retry_;
  // While set (after a store reset): resyncs keep peers the new store does not list yet.
  std::optional<Clock::time_point> reset_grace_until_;
  bool after_outage_ = false;  // a watch failed: on_store_back() before the next watch
};

}  // namespace flannel
