// SqliteStore::watch_leases: polling the file for other connections' commits.
//
// Each watch borrows a connection of its own (so a blocked watch never holds the mutex that
// create/renew/list need) and polls PRAGMA data_version every kWatchPoll, sleeping on the stop
// token in between. When the version moved, or a known lease expiration passed (then it sweeps
// first), it reads the events after its revision in one snapshot.
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <utility>

#include "stores/sqlite/db.h"
#include "stores/sqlite/rows.h"
#include "stores/sqlite/schema.h"
#include "stores/sqlite/sqlite_store.h"

namespace flannel {

using sqlite::Db;
using sqlite::DbError;

namespace {

constexpr auto kWatchPoll = std::chrono::milliseconds(20);
// Watch connections wait only briefly for locks: a writer that holds the lock sweeps expired
// leases itself, and the watcher simply tries again on its next poll.
constexpr auto kWatchBusyTimeout = std::chrono::milliseconds(50);
constexpr size_t kMaxPooledWatchDbs = 4;
// How often a quiet watch checks that the file at the path is still its store (a stat and a
// small read on the shared connection); it also checks whenever another connection committed.
constexpr auto kFileCheckEvery = std::chrono::milliseconds(250);

}  // namespace

std::unique_ptr<Db> SqliteStore::take_watch_db() {
  {
    MutexLock lock(&pool_mu_);
    if (!watch_pool_.empty()) {
      auto db = std::move(watch_pool_.back());
      watch_pool_.pop_back();
      return db;
    }
  }
  auto db = std::make_unique<Db>(options_.path, kWatchBusyTimeout);
  sqlite::configure_connection(*db);
  return db;
}

void SqliteStore::return_watch_db(std::unique_ptr<Db> db, uint64_t generation) {
  MutexLock lock(&pool_mu_);
  if (generation != generation_.load()) {
    db->keep_wal_on_close();  // on the file before the reset
    return;
  }
  if (watch_pool_.size() < kMaxPooledWatchDbs) watch_pool_.push_back(std::move(db));
}

WatchResult SqliteStore::watch_leases(uint64_t after_revision, std::chrono::milliseconds timeout,
                                      std::stop_token stop) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  WatchResult result;
  result.revision = after_revision;

  const uint64_t generation = generation_.load();
  std::unique_ptr<Db> db;
  try {
    db = take_watch_db();
  } catch (const DbError& e) {
    result.status = error_status(e.code(), e.what());
    return result;
  }
  struct Return {
    SqliteStore* self;
    std::unique_ptr<Db>& db;
    uint64_t generation;
    ~Return() {
      if (db) self->return_watch_db(std::move(db), generation);
    }
  } give_back{this, db, generation};

  std::optional<int64_t> seen_version, next_expiration;
  std::optional<Status> last_error;
  auto last_file_check = std::chrono::steady_clock::time_point{};  // check on the first poll
  std::mutex sleep_mu;
  std::condition_variable_any sleep_cv;
  for (;;) {
    if (stop.stop_requested()) {
      result.status = Status::Error(StoreCode::kCancelled, "watch cancelled");
      return result;
    }
    try {
      int64_t version = db->data_version();
      const auto now = std::chrono::steady_clock::now();
      if (!seen_version || version != *seen_version || now - last_file_check >= kFileCheckEvery) {
        last_file_check = now;
        Status s = watch_check(generation);
        if (s.code == StoreCode::kUnavailable) {
          last_error = s;  // reported if it lasts until the deadline
        } else if (!s.ok()) {
          result.revision = after_revision;
          result.events.clear();
          result.status = std::move(s);
          return result;
        }
      }
      bool expiry_due = next_expiration && sqlite::now_ms() >= *next_expiration;
      if (!seen_version || version != *seen_version || expiry_due || last_error) {
        if (expiry_due) sqlite::sweep_if_due(*db, options_.history_limit, options_.prefix);
        seen_version = version;
        sqlite::EventBatch batch =
            sqlite::read_events(*db, options_.path, options_.prefix, result.revision);
        last_error.reset();
        if (batch.ahead) {
          result.status = Status::Error(
              StoreCode::kHistoryGone,
              "sqlite " + options_.path + ": revision " + std::to_string(result.revision) +
                  " is ahead of the store's revision " + std::to_string(batch.store_revision) +
                  " (the store was reset); list and resync");
          return result;
        }
        if (batch.gone) {
          result.status = Status::Error(
              StoreCode::kHistoryGone,
              "sqlite " + options_.path + ": revision " + std::to_string(result.revision) +
                  " is older than the kept history of " + std::to_string(options_.history_limit) +
                  " events; list and resync");
          return result;
        }
        next_expiration = batch.next_expiration;
        result.revision = batch.revision;
        for (auto& w : batch.warnings) result.warnings.push_back(std::move(w));
        if (!batch.events.empty()) {
          result.events = std::move(batch.events);
          return result;
        }
      }
    } catch (const DbError& e) {
      // Busy (another process holds a lock) or a transient failure: try again on the next
      // poll, and report it only if it lasts until the deadline.
      last_error = error_status(e.code(), e.what());
      if (e.code() != SQLITE_BUSY && e.code() != SQLITE_LOCKED) {
        result.status = *last_error;
        return result;
      }
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      result.status =
          last_error ? *last_error : Status::Error(StoreCode::kTimeout, "watch timed out");
      return result;
    }
    std::unique_lock lock(sleep_mu);
    sleep_cv.wait_for(lock, stop,
                      std::min<std::chrono::steady_clock::duration>(kWatchPoll, deadline - now),
                      [] { return false; });
  }
}

}  // namespace flannel
