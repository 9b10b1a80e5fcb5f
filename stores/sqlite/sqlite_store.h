// SqliteStore: the Store contract on one SQLite file shared by many processes on one host.
//
// This is what lets a single machine run a whole multi-host lab (one flanneld per network
// namespace) without etcd. Every process opens the same file; SQLite's file locking makes the
// compare-and-swap operations atomic across them.
//
// Layout of the file (schema version 1, recorded in flannel_meta and checked on open):
//   flannel_meta(key, value)       'schema_version' -> 1, 'revision' -> the store revision,
//                                  'store_id' -> 32 random hex digits, written at creation
//                                  (or by the first open of an older file; no version change)
//   flannel_config(prefix, value, revision)
//   flannel_leases(prefix, subnet, value, expiration, revision, created)
//       subnet "10.5.34.0-24"; value = encode_lease_attrs JSON, exactly what etcd would hold;
//       expiration in unix milliseconds, NULL for no TTL; created = the revision of the write
//       that created the key (kept by renewals; NULL in rows of builds before the column,
//       which the first open of such a file adds, with no version change)
//   flannel_events(revision, prefix, subnet, action, value, expiration, created)
//       action create/update/delete/expire (leases) or config; the last `history_limit`
//       events of the whole file are kept, as etcd keeps its last 1000
// Every write bumps the revision by one and records exactly one event, in one BEGIN IMMEDIATE
// transaction, so revisions are dense and "is the history still there" is a range check.
//
// TTL: nobody runs a timer. Whoever touches the prefix next (any operation, or a watcher's
// poll) deletes leases past their expiration and records an `expire` event for each, so every
// watcher sees the removal. Reads also filter on the expiration, so an expired lease is never
// returned even before it is swept.
//
// Watch: a watcher sleeps until the file changes (inotify, one instance per process; every write
// transaction touches the file after its commit, so the notification comes once the commit is
// visible), a lease expires, or a second passes (the safety check, for file systems without
// notifications); a cancel wakes it at once. Awake, it reads PRAGMA data_version on its own
// connection and the events after its revision when another connection committed. A blocked
// watch never holds a lock writers need. FLANNEL_SQLITE_NOTIFY=off turns notifications off.
//
// Store reset (store.h): the file at the path must stay the file we opened (device and inode),
// with the store id we read (flannel_meta 'store_id', random, written at creation) and a revision
// that never goes back. Every operation checks that first (one stat and one small read); a watch
// checks when the file changed and at least every second. On a mismatch the store
// reopens the path (creating the file if it is gone, as open() does) and the call that noticed
// returns kStoreReset; a watch running on the old file at that moment returns kHistoryGone. The
// connections to the old file are closed without touching "<path>-wal"/"-shm", which by then may
// belong to the new file. Replace a store file under running agents with rename(2), and remove
// the old "<path>-wal" and "<path>-shm" at the same moment (a new file must not start with the
// old file's WAL).
//
// Prefix: normalize_key_prefix() (stores/key_prefix.h), so "coreos.com/network" and
// "/coreos.com/network/" are one namespace as in etcd. Rows are keyed by the spelling; a file
// written by an older build under another spelling of the same prefix keeps that spelling (see
// sqlite::resolve_prefix), so its rows are found and older agents on it keep working.
//
// Thread safety: as Store. Ordinary operations share one connection under a mutex; each
// concurrent watch borrows its own connection from a small pool.
//
// Where it answers unlike the etcd stores (store.h): a negative TTL means no expiry, a renewal
// with revision 0 is kConflict rather than kInvalid, BackendData that is not JSON is kInvalid
// rather than an exception, and no error leaves a write half-done (one transaction each).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_annotations.h"
#include "stores/sqlite/file_notifier.h"
#include "stores/sqlite/options.h"
#include "stores/store.h"

namespace flannel {

namespace sqlite {
class Db;
}

class SqliteStore : public Store {
 public:
  // The schema version this build writes and the newest it can read.
  static constexpr int kSchemaVersion = 1;

  // Opens options.path, creating the file and the schema if missing. Throws std::runtime_error
  // naming the file and what to do when it cannot be opened, is not an SQLite database, is an
  // SQLite database of something else, or was written by a newer schema. Such a file is left
  // untouched.
  static std::unique_ptr<SqliteStore> open(const SqliteOptions& options);
  ~SqliteStore() override;

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

  // Looks at the file by this store's watches so far (PRAGMA data_version reads): what an idle
  // watch costs (tests).
  uint64_t watch_reads() const { return watch_reads_.load(); }
  // Whether its watches wake on file change notifications (else on the safety interval).
  bool watch_notified() const { return notify_ != nullptr; }

 private:
  // What a connection was opened on: the file (device/inode of the path right after opening)
  // and the store in it.
  struct FileId {
    uint64_t dev = 0, ino = 0;
    bool operator==(const FileId&) const = default;
  };
  struct Opened {
    std::unique_ptr<sqlite::Db> db;
    FileId file;
    std::string store_id;
    uint64_t revision = 0;
    std::string prefix;  // the spelling of the prefix in this file (sqlite::resolve_prefix)
  };
  // Opens (creating if missing) and prepares the file at options.path. Throws
  // std::runtime_error as open() documents.
  static Opened open_file(const SqliteOptions& options);
  SqliteStore(const SqliteOptions& options, Opened opened);

  // Store reset (reset.cc): kStoreReset (after reopening the path) when the path no
  // longer holds the file and store db_ is on; Ok otherwise. Throws DbError.
  Status check_reset_locked() REQUIRES(mu_);
  Status reopen_locked(const std::string& why) REQUIRES(mu_) EXCLUDES(pool_mu_);
  // For a watch that started at `generation`: runs check_reset_locked() when mu_ is free (an
  // operation holding it does the check itself), then kHistoryGone if the store was reset and
  // reopened since (reported by another call of this object).
  Status watch_check(uint64_t generation) EXCLUDES(mu_);
  // kHistoryGone if the store was reset and reopened since `generation`, else Ok.
  Status reopened_since(uint64_t generation) const;

  // Runs `op` on the shared connection under the mutex, turning SQLite failures into a Status.
  template <class Op>
  Status locked(Op&& op) EXCLUDES(mu_);
  Status error_status(int code, const std::string& what) const;
  // The one write path of create_lease and renew_lease: in one BEGIN IMMEDIATE transaction,
  // sweep expired leases, let `precondition` judge the stored revision (nullopt = no row; it
  // returns an error Status to refuse), then record the event and insert (`insert`) or update
  // the row. *out gets the lease as stored.
  using Precondition = std::function<Status(std::optional<uint64_t> stored)>;
  Status write_lease(const Lease& lease, std::chrono::seconds ttl, bool insert,
                     const Precondition& precondition, Lease* out);

  // One watch_leases() call (watch.cc): its connection, what it has seen, and its steps.
  class Watch;
  // Watch connections: borrowed for one watch_leases() call, returned afterwards.
  std::unique_ptr<sqlite::Db> take_watch_db() EXCLUDES(pool_mu_);
  // A connection taken before a reset (generation changed) is closed, not pooled.
  void return_watch_db(std::unique_ptr<sqlite::Db> db, uint64_t generation) EXCLUDES(pool_mu_);

  // prefix: as resolved at open (normalize_key_prefix, or an older spelling the file already
  // uses; kept across a reopen after a reset); history_limit >= 1.
  SqliteOptions options_;
  Mutex mu_;
  std::unique_ptr<sqlite::Db> db_ GUARDED_BY(mu_) PT_GUARDED_BY(mu_);
  FileId file_ GUARDED_BY(mu_);  // the file db_ is on
  std::string store_id_ GUARDED_BY(mu_);
  uint64_t max_revision_ GUARDED_BY(mu_) = 0;  // highest revision seen in this file
  std::atomic<uint64_t> generation_{0};        // bumped by every reopen after a reset
  Mutex pool_mu_;
  std::vector<std::unique_ptr<sqlite::Db>> watch_pool_ GUARDED_BY(pool_mu_);
  // Change notifications for the file (null: none, see FileNotifier), shared by the watches.
  std::shared_ptr<sqlite::FileNotifier::Subscription> notify_;
  std::atomic<uint64_t> watch_reads_{0};
};

}  // namespace flannel
