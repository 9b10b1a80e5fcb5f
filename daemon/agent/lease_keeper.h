// LeaseKeeper: acquiring, renewing and noticing the loss of this host's lease.
//
// Acquisition lists the leases, asks core's allocator what to hold, and performs the writes it
// asks for with compare-and-swap, so racing agents never end with the same subnet and no agent
// ever takes over another host's lease (the v0.11 bugs in facts §7.1-3 are not reproduced).
// A key with an IPv6 part is checked after its create (a store compares whole keys only, and two
// hosts can create "A&B" and "A&C" at once): the later of two holders of a subnet yields.
// Renewal is a CAS on the revision we last wrote: if someone replaced, deleted or let the lease
// expire, the renewal fails and the caller re-acquires instead of resurrecting it.
//
// Used from the agent thread only.
#pragma once

#include <chrono>
#include <optional>
#include <random>
#include <stop_token>

#include "core/allocator.h"
#include "core/config.h"
#include "daemon/agent/metrics.h"
#include "stores/store.h"

namespace flannel {

class LeaseKeeper {
 public:
  // `store` and `metrics` are kept by reference and must outlive the keeper.
  LeaseKeeper(Store& store, Metrics& metrics, std::chrono::seconds ttl);

  // Blocks until a lease is held, or `stop` fires (nullopt). Store outages and a full network
  // are retried with backoff and logged; they never make the agent exit. With `seen`, it gets
  // the list the lease was chosen from (read before our write: a watch from its revision
  // brings everything since, our own write included), so a caller need not list again. *seen is
  // written only when a lease is returned (its warnings already logged and cleared); on a stop it
  // keeps what it held.
  std::optional<Lease> acquire(const Config& config, const LeaseAttrs& attrs,
                               std::optional<LeaseKey> previous, std::stop_token stop,
                               LeaseList* seen = nullptr);

  // Renews `lease` (CAS on its revision) with a fresh TTL (none for a lease without expiration,
  // a reservation). On success *lease is updated; on failure it is unchanged and the Status is the
  // store's. kNotFound / kConflict mean the lease is no longer ours.
  Status renew(Lease* lease);

  std::chrono::seconds ttl() const { return ttl_; }

 private:
  // One attempt: list, decide, write. Returns the lease, or nullopt with *retry_after set.
  std::optional<Lease> try_acquire(const Config& config, const LeaseAttrs& attrs,
                                   std::optional<LeaseKey> previous,
                                   std::chrono::milliseconds* retry_after, LeaseList* seen);
  // The steps of one attempt. Each failing step logs, counts a store error where it is one,
  // sets *retry_after (a lost race: a little jitter so N racers spread out; a store error: 1 s)
  // and returns nullopt.
  std::optional<LeaseList> list_leases(std::chrono::milliseconds* retry_after);
  void delete_stale(const Allocation& a);  // our incompatible and duplicate leases
  std::optional<Lease> write_lease(const Allocation& a, const LeaseAttrs& attrs,
                                   std::chrono::milliseconds* retry_after);
  // `list` without our stale leases: the peers as listed before the write.
  static LeaseList peers_seen(LeaseList list, const Allocation& a);
  std::chrono::milliseconds jitter();  // 1..20 ms

  // After creating a key with an IPv6 part: true if another host created one holding the same
  // IPv4 or IPv6 subnet just before (core earlier_rival); ours is then deleted (logged).
  bool lost_race(const Lease& created);

  Store& store_;
  Metrics& metrics_;
  std::chrono::seconds ttl_;
  std::mt19937_64 rng_;
};

// Sleeps for `d` unless `stop` fires first. Returns false if stopped.
bool sleep_unless_stopped(std::stop_token stop, std::chrono::milliseconds d);

}  // namespace flannel
