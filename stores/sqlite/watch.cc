// SqliteStore::watch_leases: waking on other connections' commits.
//
// Each watch borrows a connection of its own (so a blocked watch never holds the mutex that
// create/renew/list need) and sleeps until the file changes (FileNotifier: inotify, shared by the
// process), the next known lease expiration, or the safety check (kSafetyCheck, for file
// systems without notifications), whichever comes first; a cancel wakes it at once. Awake, it
// reads PRAGMA data_version (a quiet safety check first compares two stats of the files, see
// FileStamp, and reads only if they moved); when the version moved, or a known lease expiration
// passed (then it sweeps first), it reads the events after its revision in one snapshot.
#include <sys/stat.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <utility>

#include "stores/sqlite/db.h"
#include "stores/sqlite/file_notifier.h"
#include "stores/sqlite/rows.h"
#include "stores/sqlite/schema.h"
#include "stores/sqlite/sqlite_store.h"

namespace flannel {

using sqlite::Db;
using sqlite::DbError;

namespace {

// The longest a quiet watch sleeps: a file system without notifications still delivers every
// event within this, and the file is checked for a replacement at least this often.
constexpr auto kSafetyCheck = std::chrono::seconds(1);
// After a notification that showed no new commit yet (a writer of another build that does not
// touch the file after committing: the notification may come before the commit is visible), a
// few quick looks before the long sleep.
constexpr std::chrono::milliseconds kSettle[] = {
    std::chrono::milliseconds(2), std::chrono::milliseconds(10), std::chrono::milliseconds(50)};
// A busy or failing read is retried this soon.
constexpr auto kRetry = std::chrono::milliseconds(20);
// Watch connections wait only briefly for locks: a writer that holds the lock sweeps expired
// leases itself, and the watcher simply tries again on its next poll.
constexpr auto kWatchBusyTimeout = std::chrono::milliseconds(50);
constexpr size_t kMaxPooledWatchDbs = 4;
// How often a quiet watch checks that the file at the path is still its store (a stat and a
// small read on the shared connection); it also checks whenever the file changed.
constexpr auto kFileCheckEvery = kSafetyCheck;
// A quiet safety check first compares the files' stamps (below) with the last look's, and reads
// the file only if they moved; still, every this many quiet checks it reads it regardless.
constexpr int kFullLookEvery = 10;

// What a stat(2) of the database and of its -wal shows: any commit (the -wal grows or is
// rewritten; our writers also touch the database), a checkpoint, a replaced or removed file
// changes it. The cheap half of a safety check: two stats instead of reads under SQLite's locks.
struct FileStamp {
  struct One {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const One&) const = default;
  };
  One db, wal;
  bool operator==(const FileStamp&) const = default;

  static One of(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};
    return {true,
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
            st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec};
  }
  static FileStamp of_store(const std::string& path) { return {of(path), of(path + "-wal")}; }
};

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
    size_t settle = std::size(kSettle);  // quick looks left after a notification
    bool first = true, notified = false;
    for (;;) {
      if (stop_.stop_requested())
        return finish(Status::Error(StoreCode::kCancelled, "watch cancelled"));
      const uint64_t seen = notify_ ? notify_->changes() : 0;  // before the look: none is missed
      const std::optional<int64_t> version_before = seen_version_;
      if (must_look(first || notified) && poll(first || notified)) return std::move(result_);
      first = false;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        return finish(last_error_ ? *last_error_
                                  : Status::Error(StoreCode::kTimeout, "watch timed out"));
      }
      if (notified && seen_version_ == version_before) settle = 0;  // not visible yet?
      auto wake = std::min(deadline, now + next_sleep(&settle));
      notified = notify_ ? notify_->wait(seen, wake, stop_) : sleep_until(wake);
    }
  }

 private:
  // How long to sleep after a look that found nothing: a retry after an error, a quick look
  // while settling after a notification, else until the next expiration or the safety check.
  std::chrono::steady_clock::duration next_sleep(size_t* settle) {
    if (last_error_) return kRetry;
    if (notify_ && *settle < std::size(kSettle)) return kSettle[(*settle)++];
    std::chrono::steady_clock::duration d = kSafetyCheck;
    if (next_expiration_) {
      auto until =
          std::chrono::milliseconds(std::max<int64_t>(0, *next_expiration_ - sqlite::now_ms()));
      d = std::min<std::chrono::steady_clock::duration>(d, until);
    }
    return d;
  }

  // Whether this wake-up reads the file: after a notification, on the first look, while
  // retrying an error, when a known expiration is due, when the files' stamps moved since the
  // last look, and on every kFullLookEvery-th quiet check. A quiet safety check is two stats.
  bool must_look(bool changed) {
    FileStamp now = FileStamp::of_store(options().path);
    const bool expiry_due = next_expiration_ && sqlite::now_ms() >= *next_expiration_;
    const bool look = changed || last_error_ || expiry_due || !stamp_ || !(now == *stamp_) ||
                      ++quiet_checks_ >= kFullLookEvery;
    if (look) {
      stamp_ = now;  // taken before the read: a commit after it moves the next stamp
      quiet_checks_ = 0;
    }
    return look;
  }

  // One look at the file (`changed`: a notification came, or this is the first look). True when
  // result_ is the answer.
  bool poll(bool changed) {
    try {
      store_.watch_reads_++;
      const int64_t version = db_->data_version();
      const bool moved = !seen_version_ || version != *seen_version_;
      if (store_replaced(moved || changed)) return true;
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

  // Without notifications: sleeps on the stop token (a cancel wakes the watch at once). Returns
  // false: no change is known.
  bool sleep_until(std::chrono::steady_clock::time_point t) {
    std::unique_lock lock(sleep_mu_);
    sleep_cv_.wait_until(lock, stop_, t, [] { return false; });
    return false;
  }

  const SqliteOptions& options() const { return store_.options_; }

  SqliteStore& store_;
  std::unique_ptr<Db> db_;
  const uint64_t generation_;
  const uint64_t after_;
  std::stop_token stop_;
  std::shared_ptr<sqlite::FileNotifier::Subscription> notify_ = store_.notify_;  // null: none
  WatchResult result_;
  std::optional<int64_t> seen_version_, next_expiration_;
  std::optional<Status> last_error_;
  std::chrono::steady_clock::time_point last_file_check_{};  // epoch: check on the first poll
  std::optional<FileStamp> stamp_;                           // the files at the last look
  int quiet_checks_ = 0;  // safety checks since, that found the stamp unchanged
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
