// MemoryStore: the Store contract in memory, for unit tests of the agent's logic only (the real
// stores are tested against real etcd and SQLite by the contract suite). It keeps the config,
// the leases with dense revisions and the event history, and lets a test act as the other hosts
// and as the disasters: write or delete leases behind the agent's back, drop the history, wipe
// everything (the next call of the agent's connection reports kStoreReset once), or make the next
// call of one kind fail. Thread-safe: the agent's thread and the test's thread use it at once.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "stores/store.h"

namespace flannel::testing {

class MemoryStore : public Store {
 public:
  enum class Op { kGetConfig, kList, kGetLease, kCreate, kRenew, kDelete, kWatch };

  std::string describe() const override { return "memory"; }
  Status get_config(std::string* json) override;
  Status set_config(const std::string& json) override;
  Status list_leases(LeaseList* out) override;
  Status get_lease(const LeaseKey& subnet, Lease* out) override;
  Status create_lease(const Lease& lease, std::chrono::seconds ttl, Lease* created) override;
  Status renew_lease(const Lease& lease, std::chrono::seconds ttl, Lease* renewed) override;
  Status delete_lease(const LeaseKey& subnet, uint64_t expected_revision = 0) override;
  WatchResult watch_leases(uint64_t after_revision, std::chrono::milliseconds timeout,
                           std::stop_token stop) override;

  // --- what a test does as the rest of the world ---
  void remove_config();
  // Writes `lease` unconditionally (another host, an admin tool); returns the stored lease.
  // Unseen: no watch event is recorded (a change the watcher missed; pair with drop_history,
  // or a loss only a read-back can notice).
  Lease put_lease(Lease lease, std::chrono::seconds ttl = std::chrono::seconds(3600),
                  bool seen = true);
  void remove_lease(const LeaseKey& subnet, bool seen = true);
  // Forgets the event history: a watch from before now answers kHistoryGone.
  void drop_history();
  // Loses every lease (and the config unless keep_config), restarts revisions from 1, and makes
  // the next call report kStoreReset once, as a wiped and restarted etcd would.
  void wipe(bool keep_config = true);
  // The next call of kind `op` returns `status` instead of running.
  void fail_next(Op op, Status status);
  // Wipes the store (keeping the config) just before the (skip+1)-th call of kind `op` from now,
  // which then reports kStoreReset: a reset at an exact step of the agent.
  void wipe_at(Op op, size_t skip);

  std::optional<Lease> lease(const LeaseKey& subnet) const;
  size_t calls(Op op) const;
  // True while a watch_leases(after_revision, ...) call is blocked waiting for an event: the
  // agent has handled every event up to `after_revision` and waits for more. What a test awaits
  // before it checks that something did not happen, instead of sleeping.
  bool watching_from(uint64_t after_revision) const;

 private:
  // Under mu_: a pending injected failure or reset for `op`, counted as a call.
  std::optional<Status> intercept(Op op);
  uint64_t write(const Lease& lease, std::chrono::seconds ttl, Lease* stored, bool seen = true);
  void record(LeaseEvent ev);

  mutable std::mutex mu_;
  std::condition_variable_any changed_;
  std::optional<std::string> config_;
  std::map<LeaseKey, Lease> leases_;  // by the whole key, as the real stores
  uint64_t revision_ = 10;
  uint64_t oldest_kept_ = 0;  // watch from below this -> kHistoryGone
  std::deque<LeaseEvent> history_;
  bool reset_pending_ = false;
  void wipe_locked(bool keep_config);

  std::multimap<Op, Status> failures_;
  std::map<Op, size_t> wipe_at_;  // op -> its calls_ count at which to wipe
  std::map<Op, size_t> calls_;
  std::multiset<uint64_t> blocked_watches_;  // after_revision of each blocked watch_leases()
};

}  // namespace flannel::testing
