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

// One watch_leases() call. Holds the borrowed connection (given back when the call ends), the
// data_version last seen, the next known lease expiration and the error to report if nothing
// better comes before the deadline.
class SqliteStore::Watch {
 public:
  Watch(SqliteStore& store, std::unique_ptr<Db> db, uint64_t generation, uint64_t after_revision,
        std::stop_token stop)
      : store_(store),
        db_(std::move(db)),
        generation_(generation),
        after_(after_revision),
        stop_(std::move(stop)) {
    result_.revision = after_revision;
  }
  ~Watch() { store_.return_watch_db(std::move(db_), generation_); }

  WatchResult run(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      if (stop_.stop_requested())
        return finish(Status::Error(StoreCode::kCancelled, "watch cancelled"));
      if (poll()) return std::move(result_);
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        return finish(last_error_ ? *last_error_
                                  : Status::Error(StoreCode::kTimeout, "watch timed out"));
      }
      sleep(std::min<std::chrono::steady_clock::duration>(kWatchPoll, deadline - now));
    }
  }

 private:
  // One look at the file. True when result_ is the answer.
  bool poll() {
    try {
      const int64_t version = db_->data_version();
      const bool moved = !seen_version_ || version != *seen_version_;
      if (store_replaced(moved)) return true;
      const bool expiry_due = next_expiration_ && sqlite::now_ms() >= *next_expiration_;
      if (!moved && !expiry_due && !last_error_) return false;
      if (expiry_due) sqlite::sweep_if_due(*db_, options().history_limit, options().prefix);
      seen_version_ = version;
      return read_new_events();
    } catch (const DbError& e) {
      // Busy (another process holds a lock) or a transient failure: try again on the next
      // poll, and report it only if it lasts until the deadline.
      last_error_ = store_.error_status(e.code(), e.what());
      if (e.code() == SQLITE_BUSY || e.code() == SQLITE_LOCKED) return false;
      result_.status = *last_error_;
      return true;
    }
  }

  // Whenever another connection committed, and every kFileCheckEvery: is the file at the path
  // still the store this watch started on? True (result_ says why) when it is not.
  bool store_replaced(bool moved) {
    const auto now = std::chrono::steady_clock::now();
    if (!moved && now - last_file_check_ < kFileCheckEvery) return false;
    last_file_check_ = now;
    Status s = store_.watch_check(generation_);
    if (s.code == StoreCode::kUnavailable) {
      last_error_ = s;  // reported if it lasts until the deadline
      return false;
    }
    if (s.ok()) return false;
    result_.revision = after_;
    result_.events.clear();
    result_.status = std::move(s);
    return true;
  }

  // The events after result_.revision, in one snapshot. True when there are some, or when the
  // history this watch needs is gone.
  bool read_new_events() {
    sqlite::EventBatch batch =
        sqlite::read_events(*db_, options().path, options().prefix, result_.revision);
    last_error_.reset();
    if (batch.ahead) {
      return history_gone("is ahead of the store's revision " +
                          std::to_string(batch.store_revision) + " (the store was reset)");
    }
    if (batch.gone) {
      return history_gone("is older than the kept history of " +
                          std::to_string(options().history_limit) + " events");
    }
    next_expiration_ = batch.next_expiration;
    result_.revision = batch.revision;
    for (auto& w : batch.warnings) result_.warnings.push_back(std::move(w));
    if (batch.events.empty()) return false;
    result_.events = std::move(batch.events);
    return true;
  }

  bool history_gone(const std::string& why) {
    result_.status =
        Status::Error(StoreCode::kHistoryGone, "sqlite " + options().path + ": revision " +
                                                   std::to_string(result_.revision) + " " + why +
                                                   "; list and resync");
    return true;
  }

  WatchResult finish(Status status) {
    result_.status = std::move(status);
    return std::move(result_);
  }

  // Sleeps on the stop token: a cancel wakes the watch at once.
  void sleep(std::chrono::steady_clock::duration d) {
    std::unique_lock lock(sleep_mu_);
    sleep_cv_.wait_for(lock, stop_, d, [] { return false; });
  }

  const SqliteOptions& options() const { return store_.options_; }

  SqliteStore& store_;
  std::unique_ptr<Db> db_;
  const uint64_t generation_;
  const uint64_t after_;
  std::stop_token stop_;
  WatchResult result_;
  std::optional<int64_t> seen_version_, next_expiration_;
  std::optional<Status> last_error_;
  std::chrono::steady_clock::time_point last_file_check_{};  // epoch: check on the first poll
  std::mutex sleep_mu_;
  std::condition_variable_any sleep_cv_;
};

WatchResult SqliteStore::watch_leases(uint64_t after_revision, std::chrono::milliseconds timeout,
                                      std::stop_token stop) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const uint64_t generation = generation_.load();
  std::unique_ptr<Db> db;
  try {
    db = take_watch_db();
  } catch (const DbError& e) {
    WatchResult result;
    result.revision = after_revision;
    result.status = error_status(e.code(), e.what());
    return result;
  }
  Watch watch(*this, std::move(db), generation, after_revision, std::move(stop));
  return watch.run(deadline);
}

}  // namespace flannel
