// EtcdDetectStore: `-store=etcd` (the default): picks the etcd API that holds the network config.
//
// Rule: if the v2 keys API answers and holds `<prefix>/config`, use v2 (the seeds' `etcdctl set`
// workflow and v0.11 neighbours keep working); else if v3 holds `<prefix>/config`, use v3
// (current flannel's `ETCDCTL_API=3 etcdctl put`, and etcd 3.5/3.6 without --enable-v2). While
// neither holds it, get_config() answers kNotFound (the agent retries every second), having
// logged once which APIs were probed and what each said; the first probe that finds the config
// decides, for good, and is logged ("Using etcd v3 API at ... (config found in v3)").
//
// Before a choice, other calls go to a provisional store that is not remembered: v2 if its keys
// API answers (even without the config), else v3. set_config() writes there and then chooses it,
// so `flannelctl config set` on a fresh cluster writes v2 on an etcd that serves v2 (3.4 with
// --enable-v2: old and new agents both find it) and v3 on one that does not (3.5/3.6 default).
// Use -store=etcdv3 to write v3 whatever the server offers.
//
// Until the choice, every call (a watch included) first probes both APIs for the config (up to
// three requests) and is then sent to the provisional store; a store reset either API reports
// during a probe is not passed on (a v3 one becomes kUnavailable), and revisions read from the
// provisional store mean nothing to the store chosen later. The agent reads the config first,
// so it only ever talks to the chosen store.
//
// Thread-safe; the two stores below are, and the choice is guarded by a mutex. `log` is called
// from whichever thread's call decides or first probes in vain.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/thread_annotations.h"
#include "stores/etcd/v2_store.h"
#include "stores/etcd/v3_store.h"
#include "stores/store.h"

namespace flannel {

class EtcdDetectStore : public Store {
 public:
  // Opens both clients (no contact with etcd; bad options throw std::invalid_argument, a missing
  // libcurl std::runtime_error). `log` receives the probe summary and the choice; may be empty;
  // kept for the life of the store.
  static std::unique_ptr<EtcdDetectStore> open(const EtcdOptions& options, StoreLog log);

  std::string describe() const override;
  Status get_config(std::string* json) override;
  Status set_config(const std::string& json) override;
  Status list_leases(LeaseList* out) override;
  Status get_lease(const LeaseKey& subnet, Lease* out) override;
  Status create_lease(const Lease& lease, std::chrono::seconds ttl, Lease* created) override;
  Status renew_lease(const Lease& lease, std::chrono::seconds ttl, Lease* renewed) override;
  Status delete_lease(const LeaseKey& subnet, uint64_t expected_revision = 0) override;
  WatchResult watch_leases(uint64_t after_revision, std::chrono::milliseconds timeout,
                           std::stop_token stop) override;

  // The chosen store, or nullptr while detecting. Owned by this object: valid as long as it is;
  // once set it never changes.
  Store* chosen() const EXCLUDES(mu_);

 private:
  EtcdDetectStore(const EtcdOptions& options, StoreLog log);
  // Probes for the config (choosing on success); *json gets it when found.
  Status probe(std::string* json) EXCLUDES(mu_);
  // The chosen store, else the provisional one (see the top).
  Store& target();
  void choose(Store* store, const char* api, const char* why) EXCLUDES(mu_);

  std::unique_ptr<EtcdV2Store> v2_;
  std::unique_ptr<EtcdV3Store> v3_;
  StoreLog log_;
  std::string endpoints_;
  mutable Mutex mu_;
  Store* chosen_ GUARDED_BY(mu_) = nullptr;
  bool probe_logged_ GUARDED_BY(mu_) = false;
};

}  // namespace flannel
