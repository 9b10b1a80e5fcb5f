#include "stores/sqlite_store.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <optional>
#include <stdexcept>
#include <utility>

#include "stores/sqlite_db.h"
#include "stores/sqlite_schema.h"

namespace flannel {

using sqlite::Db;
using sqlite::DbError;
using sqlite::Txn;

namespace {

constexpr auto kWatchPoll = std::chrono::milliseconds(20);
// Watch connections wait only briefly for locks: a writer that holds the lock sweeps expired
// leases itself, and the watcher simply tries again on its next poll.
constexpr auto kWatchBusyTimeout = std::chrono::milliseconds(50);
constexpr size_t kMaxPooledWatchDbs = 4;

int64_t unix_ms(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

int64_t now_ms() { return unix_ms(Clock::now()); }

std::optional<Clock::time_point> from_unix_ms(std::optional<int64_t> ms) {
  if (!ms) return std::nullopt;
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
      std::chrono::milliseconds(*ms)));
}

std::optional<int64_t> expiration_for(std::chrono::seconds ttl, int64_t now) {
  if (ttl.count() <= 0) return std::nullopt;
  return now + std::chrono::duration_cast<std::chrono::milliseconds>(ttl).count();
}

// The helpers below run inside a transaction the caller holds on `db`.

uint64_t current_revision(Db& db) {
  auto q = db.query("SELECT value FROM flannel_meta WHERE key = 'revision'");
  return q.step() ? static_cast<uint64_t>(q.int64(0)) : 0;
}

// Takes the next revision and records the one event that goes with it, trimming the history
// to the last `limit` events. Needs a write transaction.
uint64_t record_event(Db& db, size_t limit, const std::string& prefix, const std::string& key,
                      const char* action, std::optional<std::string> value,
                      std::optional<int64_t> expiration) {
  int64_t rev;
  {
    auto q = db.query(
        "UPDATE flannel_meta SET value = value + 1 WHERE key = 'revision' RETURNING value");
    if (!q.step()) throw DbError(SQLITE_CORRUPT, "flannel_meta has no revision row");
    rev = q.int64(0);
  }
  {
    auto q = db.query(
        "INSERT INTO flannel_events(revision, prefix, subnet, action, value, expiration) "
        "VALUES(?, ?, ?, ?, ?, ?)");
    q.bind(1, rev).bind(2, prefix).bind(3, key).bind(4, std::string_view(action));
    if (value) q.bind(5, *value); else q.bind_null(5);
    q.bind(6, expiration).run();
  }
  db.query("DELETE FROM flannel_events WHERE revision <= ?")
      .bind(1, rev - static_cast<int64_t>(limit))
      .run();
  return static_cast<uint64_t>(rev);
}

// Deletes the prefix's leases that are past their expiration, one `expire` event each.
void sweep_expired(Db& db, size_t limit, const std::string& prefix, int64_t now) {
  std::vector<std::string> expired;
  {
    auto q = db.query(
        "SELECT subnet FROM flannel_leases WHERE prefix = ? AND expiration <= ? "
        "ORDER BY expiration, subnet");
    q.bind(1, prefix).bind(2, now);
    while (q.step()) expired.push_back(q.text(0));
  }
  for (const auto& key : expired) {
    record_event(db, limit, prefix, key, "expire", std::nullopt, std::nullopt);
    db.query("DELETE FROM flannel_leases WHERE prefix = ? AND subnet = ?")
        .bind(1, prefix)
        .bind(2, key)
        .run();
  }
}

std::optional<uint64_t> stored_revision(Db& db, const std::string& prefix,
                                       const std::string& key) {
  auto q = db.query("SELECT revision FROM flannel_leases WHERE prefix = ? AND subnet = ?");
  q.bind(1, prefix).bind(2, key);
  if (!q.step()) return std::nullopt;
  return static_cast<uint64_t>(q.int64(0));
}

bool has_expired(Db& db, const std::string& prefix, int64_t now) {
  auto q = db.query(
      "SELECT 1 FROM flannel_leases WHERE prefix = ? AND expiration <= ? LIMIT 1");
  q.bind(1, prefix).bind(2, now);
  return q.step();
}

// Outside any transaction: sweeps if there is something to sweep. The check is a cheap read,
// so readers only take the write lock when a lease really expired.
void sweep_if_due(Db& db, size_t limit, const std::string& prefix) {
  int64_t now = now_ms();
  if (!has_expired(db, prefix, now)) return;
  Txn txn(db, Txn::Mode::kImmediate);
  sweep_expired(db, limit, prefix, now_ms());
  txn.commit();
}

// The sweep a read does on its way: never waits for another writer's lock. Reads filter on the
// expiration anyway, and whoever holds the lock (every writer sweeps) or the next poll of a
// watcher records the expiry, so a reader has no reason to queue behind writers.
void try_sweep(Db& db, size_t limit, const std::string& prefix,
               std::chrono::milliseconds busy_timeout) {
  db.set_busy_timeout(std::chrono::milliseconds(0));
  try {
    sweep_if_due(db, limit, prefix);
  } catch (const DbError& e) {
    db.set_busy_timeout(busy_timeout);
    if (e.code() != SQLITE_BUSY && e.code() != SQLITE_LOCKED) throw;
    return;
  }
  db.set_busy_timeout(busy_timeout);
}

// Decodes a stored lease row into *out, or returns why it is malformed.
std::optional<std::string> decode_row(const std::string& key, const std::string& value,
                                      std::optional<int64_t> expiration, int64_t revision,
                                      Lease* out) {
  auto subnet = parse_subnet_key(key);
  if (!subnet) return "lease key '" + key + "' does not name a subnet";
  try {
    out->subnet = *subnet;
    out->attrs = decode_lease_attrs(value);
    out->expiration = from_unix_ms(expiration);
    out->revision = static_cast<uint64_t>(revision);
  } catch (const std::exception& e) {
    return "lease " + key + " has a malformed value: " + e.what();
  }
  return std::nullopt;
}

// Lease events after `after` for `prefix`, as of one snapshot. Sets *gone when the history no
// longer reaches back to `after`; *next_expiration to the earliest expiration in the prefix.
struct EventBatch {
  bool gone = false;
  uint64_t revision = 0;  // snapshot revision: everything up to here was examined
  std::vector<LeaseEvent> events;
  std::vector<std::string> warnings;
  std::optional<int64_t> next_expiration;
};

EventBatch read_events(Db& db, const std::string& path, const std::string& prefix,
                       uint64_t after) {
  EventBatch b;
  Txn txn(db, Txn::Mode::kRead);
  b.revision = std::max(after, current_revision(db));
  if (b.revision > after) {
    auto q = db.query("SELECT MIN(revision) FROM flannel_events");
    q.step();
    auto oldest = q.opt_int64(0);
    if (!oldest || static_cast<int64_t>(after) + 1 < *oldest) {
      b.gone = true;
      return b;
    }
  }
  {
    auto q = db.query(
        "SELECT revision, subnet, action, value, expiration FROM flannel_events "
        "WHERE revision > ? AND prefix = ? AND action != 'config' ORDER BY revision");
    q.bind(1, static_cast<int64_t>(after)).bind(2, prefix);
    while (q.step()) {
      int64_t rev = q.int64(0);
      std::string key = q.text(1), action = q.text(2);
      LeaseEvent ev;
      std::optional<std::string> bad;
      if (action == "delete" || action == "expire") {
        ev.type = LeaseEventType::kRemoved;
        ev.expired = action == "expire";
        auto subnet = parse_subnet_key(key);
        if (subnet) {
          ev.lease.subnet = *subnet;
          ev.lease.revision = static_cast<uint64_t>(rev);
        } else {
          bad = "lease key '" + key + "' does not name a subnet";
        }
      } else if (action == "create" || action == "update") {
        bad = decode_row(key, q.text(3), q.opt_int64(4), rev, &ev.lease);
      } else {
        bad = "unknown event action '" + action + "' for key '" + key + "'";
      }
      if (bad) {
        b.warnings.push_back("sqlite " + path + ": event " + std::to_string(rev) + ": " + *bad +
                             "; skipped");
      } else {
        b.events.push_back(std::move(ev));
      }
    }
  }
  {
    auto q = db.query("SELECT MIN(expiration) FROM flannel_leases WHERE prefix = ?");
    q.bind(1, prefix);
    q.step();
    b.next_expiration = q.opt_int64(0);
  }
  txn.commit();
  return b;
}

std::string normalize_prefix(std::string prefix) {
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  return prefix;
}

}  // namespace

std::unique_ptr<SqliteStore> SqliteStore::open(const SqliteOptions& options) {
  if (options.path.empty()) {
    throw std::runtime_error("sqlite: no database path given; use -store=sqlite:PATH");
  }
  std::unique_ptr<Db> db;
  try {
    db = std::make_unique<Db>(options.path, options.busy_timeout);
  } catch (const DbError& e) {
    throw std::runtime_error("sqlite " + options.path + ": cannot open database (" + e.what() +
                             "); check that the directory exists and the file is readable "
                             "and writable");
  }
  sqlite::prepare_schema(*db, options.path, kSchemaVersion);
  return std::unique_ptr<SqliteStore>(new SqliteStore(options, std::move(db)));
}

SqliteStore::SqliteStore(const SqliteOptions& options, std::unique_ptr<Db> db)
    : options_(options), db_(std::move(db)) {
  options_.prefix = normalize_prefix(options_.prefix);
  options_.history_limit = std::max<size_t>(options_.history_limit, 1);
}

SqliteStore::~SqliteStore() = default;

std::string SqliteStore::describe() const {
  std::string d = "sqlite " + options_.path;
  if (options_.prefix != SqliteOptions{}.prefix) d += " prefix " + options_.prefix;
  return d;
}

Status SqliteStore::error_status(int code, const std::string& what) const {
  const std::string where = "sqlite " + options_.path + ": ";
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
    return Status::Error(StoreCode::kUnavailable,
                         where + "database is locked by another process for more than " +
                             std::to_string(options_.busy_timeout.count()) +
                             " ms; retry later (" + what + ")");
  }
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) {
    return Status::Error(StoreCode::kInvalid, where + "database is damaged: " + what);
  }
  return Status::Error(StoreCode::kUnavailable, where + what);
}

template <class Op>
Status SqliteStore::locked(Op&& op) {
  std::lock_guard lock(mu_);
  try {
    return op(*db_);
  } catch (const DbError& e) {
    return error_status(e.code(), e.what());
  } catch (const std::exception& e) {
    return Status::Error(StoreCode::kInvalid, "sqlite " + options_.path + ": " + e.what());
  }
}

Status SqliteStore::get_config(std::string* json) {
  return locked([&](Db& db) {
    try_sweep(db, options_.history_limit, options_.prefix, options_.busy_timeout);
    auto q = db.query("SELECT value FROM flannel_config WHERE prefix = ?");
    q.bind(1, options_.prefix);
    if (!q.step()) {
      return Status::Error(StoreCode::kNotFound, "sqlite " + options_.path +
                                                     ": no network config at " +
                                                     options_.prefix + "/config");
    }
    *json = q.text(0);
    return Status::Ok();
  });
}

Status SqliteStore::set_config(const std::string& json) {
  return locked([&](Db& db) {
    Txn txn(db, Txn::Mode::kImmediate);
    sweep_expired(db, options_.history_limit, options_.prefix, now_ms());
    auto rev = record_event(db, options_.history_limit, options_.prefix, "config", "config",
                            json, std::nullopt);
    db.query("INSERT OR REPLACE INTO flannel_config(prefix, value, revision) VALUES(?, ?, ?)")
        .bind(1, options_.prefix)
        .bind(2, json)
        .bind(3, static_cast<int64_t>(rev))
        .run();
    txn.commit();
    return Status::Ok();
  });
}

Status SqliteStore::list_leases(LeaseList* out) {
  return locked([&](Db& db) {
    try_sweep(db, options_.history_limit, options_.prefix, options_.busy_timeout);
    LeaseList list;
    Txn txn(db, Txn::Mode::kRead);
    list.revision = current_revision(db);
    auto q = db.query(
        "SELECT subnet, value, expiration, revision FROM flannel_leases "
        "WHERE prefix = ? AND (expiration IS NULL OR expiration > ?)");
    q.bind(1, options_.prefix).bind(2, now_ms());
    while (q.step()) {
      Lease lease;
      if (auto bad = decode_row(q.text(0), q.text(1), q.opt_int64(2), q.int64(3), &lease)) {
        list.warnings.push_back("sqlite " + options_.path + ": " + *bad + "; skipped");
      } else {
        list.leases.push_back(std::move(lease));
      }
    }
    txn.commit();
    *out = std::move(list);
    return Status::Ok();
  });
}

Status SqliteStore::get_lease(const IP4Net& subnet, Lease* out) {
  const std::string key = subnet_key(subnet);
  return locked([&](Db& db) {
    try_sweep(db, options_.history_limit, options_.prefix, options_.busy_timeout);
    auto q = db.query(
        "SELECT value, expiration, revision FROM flannel_leases "
        "WHERE prefix = ? AND subnet = ? AND (expiration IS NULL OR expiration > ?)");
    q.bind(1, options_.prefix).bind(2, key).bind(3, now_ms());
    if (!q.step()) {
      return Status::Error(StoreCode::kNotFound,
                           "sqlite " + options_.path + ": no lease for " + key);
    }
    Lease lease;
    if (auto bad = decode_row(key, q.text(0), q.opt_int64(1), q.int64(2), &lease)) {
      return Status::Error(StoreCode::kInvalid, "sqlite " + options_.path + ": " + *bad);
    }
    *out = std::move(lease);
    return Status::Ok();
  });
}

Status SqliteStore::create_lease(const Lease& lease, std::chrono::seconds ttl, Lease* created) {
  const std::string key = subnet_key(lease.subnet);
  const std::string value = encode_lease_attrs(lease.attrs);
  return locked([&](Db& db) {
    Txn txn(db, Txn::Mode::kImmediate);
    int64_t now = now_ms();
    sweep_expired(db, options_.history_limit, options_.prefix, now);
    if (stored_revision(db, options_.prefix, key)) {
      txn.commit();  // keep the sweep
      return Status::Error(StoreCode::kConflict,
                           "sqlite " + options_.path + ": lease " + key + " already exists");
    }
    auto expiration = expiration_for(ttl, now);
    auto rev = record_event(db, options_.history_limit, options_.prefix, key, "create", value,
                            expiration);
    db.query(
          "INSERT INTO flannel_leases(prefix, subnet, value, expiration, revision) "
          "VALUES(?, ?, ?, ?, ?)")
        .bind(1, options_.prefix)
        .bind(2, key)
        .bind(3, value)
        .bind(4, expiration)
        .bind(5, static_cast<int64_t>(rev))
        .run();
    txn.commit();
    if (created) *created = Lease{lease.subnet, lease.attrs, from_unix_ms(expiration), rev};
    return Status::Ok();
  });
}

Status SqliteStore::renew_lease(const Lease& lease, std::chrono::seconds ttl, Lease* renewed) {
  const std::string key = subnet_key(lease.subnet);
  const std::string value = encode_lease_attrs(lease.attrs);
  return locked([&](Db& db) {
    Txn txn(db, Txn::Mode::kImmediate);
    int64_t now = now_ms();
    sweep_expired(db, options_.history_limit, options_.prefix, now);
    auto stored = stored_revision(db, options_.prefix, key);
    if (!stored) {
      txn.commit();  // keep the sweep
      return Status::Error(StoreCode::kNotFound, "sqlite " + options_.path + ": lease " + key +
                                                     " is gone (deleted or expired)");
    }
    if (*stored != lease.revision) {
      txn.commit();
      return Status::Error(StoreCode::kConflict,
                           "sqlite " + options_.path + ": lease " + key +
                               " was changed by someone else (revision " +
                               std::to_string(*stored) + ", ours " +
                               std::to_string(lease.revision) + ")");
    }
    auto expiration = expiration_for(ttl, now);
    auto rev = record_event(db, options_.history_limit, options_.prefix, key, "update", value,
                            expiration);
    db.query(
          "UPDATE flannel_leases SET value = ?, expiration = ?, revision = ? "
          "WHERE prefix = ? AND subnet = ?")
        .bind(1, value)
        .bind(2, expiration)
        .bind(3, static_cast<int64_t>(rev))
        .bind(4, options_.prefix)
        .bind(5, key)
        .run();
    txn.commit();
    if (renewed) *renewed = Lease{lease.subnet, lease.attrs, from_unix_ms(expiration), rev};
    return Status::Ok();
  });
}

Status SqliteStore::delete_lease(const IP4Net& subnet, uint64_t expected_revision) {
  const std::string key = subnet_key(subnet);
  return locked([&](Db& db) {
    Txn txn(db, Txn::Mode::kImmediate);
    sweep_expired(db, options_.history_limit, options_.prefix, now_ms());
    auto stored = stored_revision(db, options_.prefix, key);
    if (!stored) {
      txn.commit();  // keep the sweep
      return Status::Error(StoreCode::kNotFound,
                           "sqlite " + options_.path + ": no lease for " + key);
    }
    if (expected_revision != 0 && *stored != expected_revision) {
      txn.commit();
      return Status::Error(StoreCode::kConflict,
                           "sqlite " + options_.path + ": lease " + key +
                               " was changed by someone else (revision " +
                               std::to_string(*stored) + ", expected " +
                               std::to_string(expected_revision) + ")");
    }
    record_event(db, options_.history_limit, options_.prefix, key, "delete", std::nullopt,
                 std::nullopt);
    db.query("DELETE FROM flannel_leases WHERE prefix = ? AND subnet = ?")
        .bind(1, options_.prefix)
        .bind(2, key)
        .run();
    txn.commit();
    return Status::Ok();
  });
}

std::unique_ptr<Db> SqliteStore::take_watch_db() {
  {
    std::lock_guard lock(pool_mu_);
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

void SqliteStore::return_watch_db(std::unique_ptr<Db> db) {
  std::lock_guard lock(pool_mu_);
  if (watch_pool_.size() < kMaxPooledWatchDbs) watch_pool_.push_back(std::move(db));
}

WatchResult SqliteStore::watch_leases(uint64_t after_revision, std::chrono::milliseconds timeout,
                                      std::stop_token stop) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  WatchResult result;
  result.revision = after_revision;

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
    ~Return() {
      if (db) self->return_watch_db(std::move(db));
    }
  } give_back{this, db};

  std::optional<int64_t> seen_version, next_expiration;
  std::optional<Status> last_error;
  std::mutex sleep_mu;
  std::condition_variable_any sleep_cv;
  for (;;) {
    if (stop.stop_requested()) {
      result.status = Status::Error(StoreCode::kCancelled, "watch cancelled");
      return result;
    }
    try {
      int64_t version = db->data_version();
      bool expiry_due = next_expiration && now_ms() >= *next_expiration;
      if (!seen_version || version != *seen_version || expiry_due || last_error) {
        if (expiry_due) sweep_if_due(*db, options_.history_limit, options_.prefix);
        seen_version = version;
        EventBatch batch = read_events(*db, options_.path, options_.prefix, result.revision);
        last_error.reset();
        if (batch.gone) {
          result.status = Status::Error(
              StoreCode::kHistoryGone,
              "sqlite " + options_.path + ": revision " + std::to_string(result.revision) +
                  " is older than the kept history of " +
                  std::to_string(options_.history_limit) + " events; list and resync");
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
      result.status = last_error ? *last_error
                                 : Status::Error(StoreCode::kTimeout, "watch timed out");
      return result;
    }
    std::unique_lock lock(sleep_mu);
    sleep_cv.wait_for(lock, stop, std::min<std::chrono::steady_clock::duration>(
                                      kWatchPoll, deadline - now),
                      [] { return false; });
  }
}

}  // namespace flannel
