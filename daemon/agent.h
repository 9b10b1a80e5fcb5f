// Agent: the life of one flanneld after its interface and store are chosen.
//
//   wait for a valid config -> backend setup -> acquire lease -> backend gets the lease
//   -> write subnet file -> READY -> loop { watch leases -> backend batches; renew before
//   expiry; lease lost -> re-acquire; history gone -> resync from a fresh list }
//
// Each step is a call with plain data between the Store, core's allocator and the Backend; the
// agent owns the order, the retries and the logs. It never deletes or releases the lease on
// shutdown, so a restart is hitless.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include "backends/backend.h"
#include "core/config.h"
#include "daemon/lease_keeper.h"
#include "daemon/metrics.h"
#include "daemon/net_rules.h"
#include "daemon/peer_cache.h"
#include "stores/store.h"

namespace flannel {

struct AgentSettings {
  std::string subnet_file = "/run/flannel/subnet.env";
  bool ip_masq = false;
  bool iptables_forward_rules = true;
  std::chrono::seconds iptables_resync{5};
  std::chrono::seconds renew_margin{3600};  // renew this long before expiry
  std::chrono::seconds lease_ttl{86400};
  std::string config_key;  // for logs: "<prefix>/config"
};

class Agent {
 public:
  Agent(AgentSettings settings, Store& store, ExternalInterface iface, Metrics& metrics);

  // Runs until `stop` fires (returns 0) or a fatal error (logged; returns 1: unknown backend,
  // backend setup failure, subnet file not writable).
  int run(std::stop_token stop);

 private:
  std::optional<Config> wait_for_config(std::stop_token stop);
  // What the previous run left in the subnet file (its subnet is reused if still free).
  PreviousRun read_previous_run();
  // Acquires (or re-acquires) the lease and makes it live: backend, subnet file, readiness.
  bool establish_lease(std::optional<IP4Net> previous, std::stop_token stop);
  void write_subnet_file();
  void watch_loop(std::stop_token stop);
  // A full list: our lease still there? and the peers' difference to the backend.
  bool resync(uint64_t* cursor);
  // Handles events about our own subnet; returns false if the lease is lost.
  bool check_own_event(const LeaseEvent& ev);
  void send_to_backend(const std::vector<PeerEvent>& batch);
  void lease_lost(const std::string& why, std::stop_token stop, uint64_t* cursor);

  AgentSettings settings_;
  Store& store_;
  ExternalInterface iface_;
  Metrics& metrics_;
  LeaseKeeper keeper_;
  PeerCache peers_;
  std::optional<Config> config_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<NetRules> net_rules_;
  BackendSetup setup_;
  Lease lease_;
  bool backend_synced_ = false;  // the backend has had its first (full) batch
};

}  // namespace flannel
