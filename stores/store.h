// Store: where the network config and the subnet leases of a cluster live.
//
// One abstract interface, three real implementations: EtcdV2Store (etcd v2 keys API over HTTP(S),
// byte-compatible with flannel v0.11 agents sharing the same etcd), EtcdV3Store (etcd v3 API
// through its JSON gateway, byte-compatible with current flannel) and SqliteStore (one SQLite
// file shared by many processes on one host). EtcdDetectStore picks one of the two etcd ones. The
// daemon and flannelctl only see this header.
//
// Data model: a config string at `<prefix>/config`, and a flat set of leases keyed by subnet
// (`<prefix>/subnets/A.B.C.D-N`). Every write gets a new, strictly increasing store revision;
// a lease carries the revision of its last write (Lease::revision), which is what the
// compare-and-swap operations compare against.
//
// Thread safety: a Store may be used from several threads at once: in particular one thread may
// block in watch_leases() while others create, renew or list. Several Store objects (in one or in
// many processes) may point at the same cluster; they see each other's writes.
//
// Errors: every operation returns a Status. Nothing throws for store or transport failures;
// Status::message is a sentence an operator can act on ("etcd http://127.0.0.1:2379: connection
// refused"). A dead endpoint never hangs the caller: every request has a timeout. Out-parameters
// are written only on success: on any error they keep what they held (every implementation).
// One programming error is answered differently: lease attrs whose BackendData is not valid JSON
// make the etcd stores throw std::invalid_argument from create_lease/renew_lease (the v3 store
// after granting its v3 lease, which then expires unused), while SqliteStore returns kInvalid.
//
// Malformed data written by someone else (a lease key that does not parse, a value that is not
// lease JSON) is never fatal and never deleted: list and watch skip it and report it in
// `warnings` so the caller can log it.
//
// Store reset: a store can lose its data under running clients (etcd wiped and restarted, a
// disaster-recovery restore, the SQLite file deleted and created anew). Every revision a client
// holds is then meaningless, and a watch would wait for a revision the new store will not reach
// for a long time. Each implementation detects it from what every answer carries:
//   etcd v2  - X-Etcd-Index lower than an index already seen (confirmed by a quorum read, so a
//              lagging member is not mistaken for a reset), or a changed X-Etcd-Cluster-Id;
//   etcd v3  - the response header's revision lower than one already seen, or a changed
//              cluster_id;
//   SQLite   - the file at the path is not the file we opened (device/inode), the store id
//              (random, written at creation) changed, or the revision went backwards.
// The first call that notices returns kStoreReset (from any method, watch included) instead of
// its normal result; a write may or may not have taken effect. The Store has then re-based on
// the new store (SQLite: reopened the file at the path), and later calls work normally and do
// not report the same reset again. The caller treats everything it holds as void: re-read the
// config, re-create or re-check its own lease, list the leases and resync from that list.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "core/lease.h"
#include "core/lease_event.h"

namespace flannel {

enum class StoreCode {
  kOk = 0,
  kNotFound,     // the key does not exist (config missing, lease gone)
  kConflict,     // compare-and-swap failed: key already exists, or was changed/replaced
  kUnavailable,  // transport or server failure after trying every endpoint; retry later
  kHistoryGone,  // watch: the revision is older than the kept history; list again and resync
  kTimeout,      // watch: nothing happened before the timeout (not an error)
  kCancelled,    // watch: the stop token was triggered
  kInvalid,      // bad argument, or a store file/response we cannot use (foreign file, bad JSON)
  kStoreReset,   // the store lost its data or was replaced (see "Store reset" above)
};

struct Status {
  StoreCode code = StoreCode::kOk;
  std::string message;  // empty when ok

  bool ok() const { return code == StoreCode::kOk; }
  static Status Ok() { return {}; }
  static Status Error(StoreCode c, std::string msg) { return {c, std::move(msg)}; }
};

// Printable name of a code ("not found", "conflict", ...), for logs.
const char* to_string(StoreCode code);

// Lease::expiration of a lease that does expire but whose time the store did not read (etcd v3
// lists: see stores/etcd/v3_store.h). Present, so it is never taken for a reservation.
inline constexpr Clock::time_point kUnknownExpiration = Clock::time_point::max();

struct LeaseList {
  std::vector<Lease> leases;          // every well-formed lease, in no particular order
  uint64_t revision = 0;              // store revision the list was read at: watch after this
  std::vector<std::string> warnings;  // one line per skipped malformed entry (key and reason)
};

struct WatchResult {
  // kOk: `events` holds one or more events, in revision order.
  // kTimeout: nothing happened within the timeout. kCancelled: the stop token fired.
  // kHistoryGone: call list_leases() and watch from its revision.
  // kUnavailable: transport trouble; retry from the same `revision` after a pause. (SqliteStore
  //   also answers kUnavailable instead of kTimeout when the file stayed locked by another
  //   process until the deadline.)
  // kStoreReset: see "Store reset" above. kInvalid: an answer or file the store cannot read
  //   (etcd v3: a stream message that is not JSON; SQLite: a damaged file).
  // `events` is empty unless the status is kOk; `warnings` may be non-empty with any status.
  Status status;
  std::vector<LeaseEvent> events;
  // Where the next watch should continue: pass this back as `after_revision`. Advances past
  // skipped malformed events too, so a bad entry never stalls the watch.
  uint64_t revision = 0;
  std::vector<std::string> warnings;  // skipped malformed events
};

// Where a store reports what it decided (the etcd API chosen, the APIs probed); one line each.
// The store keeps it and calls it later from whichever thread makes the deciding call (a watch
// included), so it must be callable from any thread and whatever it captures must outlive the
// Store.
using StoreLog = std::function<void(const std::string& line)>;

class Store {
 public:
  Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  virtual ~Store() = default;

  // A short description for logs: "etcd [http://127.0.0.1:2379] prefix /coreos.com/network" or
  // "sqlite /var/lib/flannel/lab.db".
  virtual std::string describe() const = 0;

  // Reads the raw network config JSON into *json. kNotFound if absent. The text is returned as
  // stored; parsing and validation are core/config's job.
  virtual Status get_config(std::string* json) = 0;
  // Writes the raw config (admin operation; callers validate first).
  virtual Status set_config(const std::string& json) = 0;

  // Lists all leases and the revision they were read at into *out (replacing its contents).
  virtual Status list_leases(LeaseList* out) = 0;
  // Reads one lease. kNotFound if absent (an expired lease counts as absent); kInvalid (with the
  // reason) if its value is malformed.
  virtual Status get_lease(const LeaseKey& subnet, Lease* out) = 0;

  // Creates the lease only if no lease exists for lease.key() (compare-and-swap on absence);
  // lease.expiration and lease.revision are ignored. ttl == 0 means no expiry (a reservation).
  // On success *created (may be nullptr) holds the lease with its expiration and revision; its
  // attrs are `lease.attrs` as passed (etcd stores) or as stored, BackendData compacted
  // (SqliteStore), so they may differ byte-wise between stores. kConflict if the key exists.
  // A negative ttl is kInvalid for the etcd stores but means "no expiry" for SqliteStore.
  // With the etcd stores an error after the request went out (kUnavailable, kInvalid for an
  // unreadable answer, kStoreReset) leaves the outcome unknown: the lease may have been written,
  // and a retry may then answer kConflict. SqliteStore never writes the lease when it fails.
  virtual Status create_lease(const Lease& lease, std::chrono::seconds ttl, Lease* created) = 0;

  // Rewrites a lease we hold, with fresh attrs and TTL, only if the stored lease's revision is
  // still `lease.revision` (nobody replaced, deleted or let it expire since we last wrote it).
  // ttl == 0 keeps no expiry. On success *renewed (may be nullptr) holds the new expiration and
  // revision, attrs as for create_lease. kNotFound if the key is gone, kConflict if it holds
  // another revision. lease.revision == 0 is kInvalid for the etcd stores (etcd v2 would take
  // prevIndex=0 as "no condition") but kConflict (or kNotFound) for SqliteStore; a negative ttl
  // as for create_lease.
  virtual Status renew_lease(const Lease& lease, std::chrono::seconds ttl, Lease* renewed) = 0;

  // Deletes the lease for `subnet`. If expected_revision != 0, only if the stored revision
  // matches (kConflict otherwise). kNotFound if absent.
  virtual Status delete_lease(const LeaseKey& subnet, uint64_t expected_revision = 0) = 0;

  // Waits for lease changes after `after_revision` (exclusive) and returns them, blocking at
  // most `timeout`. Returns early with kCancelled when `stop` is requested (promptly: within
  // tens of milliseconds). Expired leases show up as kRemoved events with expired = true, for
  // every watcher, without anyone else writing. Several watches may run at once, each on its own
  // thread.
  virtual WatchResult watch_leases(uint64_t after_revision, std::chrono::milliseconds timeout,
                                   std::stop_token stop) = 0;
};

}  // namespace flannel
