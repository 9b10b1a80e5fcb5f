// The Store operations other than watch (watch.cc). Each runs on the shared connection
// under mu_; every read-modify-write is one BEGIN IMMEDIATE transaction that first sweeps
// expired leases, so TTL expiry is recorded by whoever writes next.
#include "stores/sqlite/sqlite_store.h"

#include <algorithm>
#include <exception>
#include <optional>
#include <stdexcept>
#include <utility>

#include "stores/sqlite/db.h"
#include "stores/sqlite/rows.h"
#include "stores/sqlite/schema.h"

namespace flannel {

using sqlite::current_revision;
using sqlite::Db;
using sqlite::DbError;
using sqlite::decode_row;
using sqlite::expiration_for;
using sqlite::from_unix_ms;
using sqlite::now_ms;
using sqlite::record_event;
using sqlite::stored_created;
using sqlite::stored_revision;
using sqlite::sweep_expired;
using sqlite::try_sweep;
using sqlite::Txn;

std::unique_ptr<SqliteStore> SqliteStore::open(const SqliteOptions& options) {
  return std::unique_ptr<SqliteStore>(new SqliteStore(options, open_file(options)));
}

SqliteStore::SqliteStore(const SqliteOptions& options, Opened opened)
    : options_(options),
      db_(std::move(opened.db)),
      file_(opened.file),
      store_id_(std::move(opened.store_id)),
      max_revision_(opened.revision),
      notify_(sqlite::FileNotifier::subscribe(options.path)) {
  options_.prefix = std::move(opened.prefix);
  options_.history_limit = std::max<size_t>(options_.history_limit, 1);
}

std::string SqliteStore::describe() const {
  std::string d = "sqlite " + options_.path;
  if (options_.prefix != SqliteOptions{}.prefix) d += " prefix " + options_.prefix;
  return d;
}

Status SqliteStore::error_status(int code, const std::string& what) const {
  const std::string where = "sqlite " + options_.path + ": ";
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
    return Status::Error(
        StoreCode::kUnavailable,
        where + "database stayed locked by another process; retry later (" + what + ")");
  }
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) {
    return Status::Error(StoreCode::kInvalid, where + "database is damaged: " + what);
  }
  return Status::Error(StoreCode::kUnavailable, where + what);
}

template <class Op>
Status SqliteStore::locked(Op&& op) {
  MutexLock lock(&mu_);
  try {
    if (Status s = check_reset_locked(); !s.ok()) return s;
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
      return Status::Error(
          StoreCode::kNotFound,
          "sqlite " + options_.path + ": no network config at " + options_.prefix + "/config");
    }
    *json = q.text(0);
    return Status::Ok();
  });
}

Status SqliteStore::set_config(const std::string& json) {
  return locked([&](Db& db) {
    Txn txn(db, Txn::Mode::kImmediate);
    sweep_expired(db, options_.history_limit, options_.prefix, now_ms());
    auto rev = record_event(db, options_.history_limit, options_.prefix, "config", "config", json,
                            std::nullopt);
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
        "SELECT subnet, value, expiration, revision, created FROM flannel_leases "
        "WHERE prefix = ? AND (expiration IS NULL OR expiration > ?)");
    q.bind(1, options_.prefix).bind(2, now_ms());
    while (q.step()) {
      Lease lease;
      if (auto bad = decode_row(q.text(0), q.text(1), q.opt_int64(2), q.int64(3), q.opt_int64(4),
                                &lease)) {
        list.warnings.push_back("sqlite " + options_.path + ": " + *bad + "; skipped");
      } else {
        list.leases.push_back(std::move(lease));
      }
    }
    txn.commit();
    db.release_memory();  // the whole table went through the page cache; keep the agent small
    *out = std::move(list);
    return Status::Ok();
  });
}

Status SqliteStore::get_lease(const LeaseKey& subnet, Lease* out) {
  const std::string key = subnet_key(subnet);
  return locked([&](Db& db) {
    try_sweep(db, options_.history_limit, options_.prefix, options_.busy_timeout);
    auto q = db.query(
        "SELECT value, expiration, revision, created FROM flannel_leases "
        "WHERE prefix = ? AND subnet = ? AND (expiration IS NULL OR expiration > ?)");
    q.bind(1, options_.prefix).bind(2, key).bind(3, now_ms());
    if (!q.step()) {
      return Status::Error(StoreCode::kNotFound,
                           "sqlite " + options_.path + ": no lease for " + key);
    }
    Lease lease;
    if (auto bad = decode_row(key, q.text(0), q.opt_int64(1), q.int64(2), q.opt_int64(3), &lease)) {
      return Status::Error(StoreCode::kInvalid, "sqlite " + options_.path + ": " + *bad);
    }
    *out = std::move(lease);
    return Status::Ok();
  });
}

Status SqliteStore::write_lease(const Lease& lease, std::chrono::seconds ttl, bool insert,
                                const Precondition& precondition, Lease* out) {
  const std::string key = subnet_key(lease.key());
  return locked([&](Db& db) {
    // Inside locked(): throws for invalid BackendData. *out gets the attrs as stored
    // (BackendData compacted), exactly what get_lease and watchers will see.
    const std::string value = encode_lease_attrs(lease.attrs);
    Txn txn(db, Txn::Mode::kImmediate);
    int64_t now = now_ms();
    sweep_expired(db, options_.history_limit, options_.prefix, now);
    if (Status refused = precondition(stored_revision(db, options_.prefix, key)); !refused.ok()) {
      txn.commit();  // keep the sweep
      return refused;
    }
    auto expiration = expiration_for(ttl, now);
    auto rev = record_event(db, options_.history_limit, options_.prefix, key,
                            insert ? "create" : "update", value, expiration);
    std::optional<int64_t> created = static_cast<int64_t>(rev);
    if (insert) {
      db.query(
            "INSERT INTO flannel_leases(value, expiration, revision, prefix, subnet, created) "
            "VALUES(?, ?, ?, ?, ?, ?)")
          .bind(1, value)
          .bind(2, expiration)
          .bind(3, static_cast<int64_t>(rev))
          .bind(4, options_.prefix)
          .bind(5, key)
          .bind(6, created)
          .run();
    } else {
      created = stored_created(db, options_.prefix, key);
      db.query(
            "UPDATE flannel_leases SET value = ?, expiration = ?, revision = ? "
            "WHERE prefix = ? AND subnet = ?")
          .bind(1, value)
          .bind(2, expiration)
          .bind(3, static_cast<int64_t>(rev))
          .bind(4, options_.prefix)
          .bind(5, key)
          .run();
    }
    txn.commit();
    if (out) {
      *out = Lease{
          lease.subnet, decode_lease_attrs(value), from_unix_ms(expiration),
          rev,          lease.ipv6_subnet,         created ? static_cast<uint64_t>(*created) : 0};
    }
    return Status::Ok();
  });
}

Status SqliteStore::create_lease(const Lease& lease, std::chrono::seconds ttl, Lease* created) {
  const std::string where = "sqlite " + options_.path + ": lease " + subnet_key(lease.key());
  return write_lease(
      lease, ttl, /*insert=*/true,
      [&](std::optional<uint64_t> stored) {
        if (stored) return Status::Error(StoreCode::kConflict, where + " already exists");
        return Status::Ok();
      },
      created);
}

Status SqliteStore::renew_lease(const Lease& lease, std::chrono::seconds ttl, Lease* renewed) {
  const std::string where = "sqlite " + options_.path + ": lease " + subnet_key(lease.key());
  return write_lease(
      lease, ttl, /*insert=*/false,
      [&](std::optional<uint64_t> stored) {
        if (!stored)
          return Status::Error(StoreCode::kNotFound, where + " is gone (deleted or expired)");
        if (*stored != lease.revision) {
          return Status::Error(StoreCode::kConflict, where +
                                                         " was changed by someone else (revision " +
                                                         std::to_string(*stored) + ", ours " +
                                                         std::to_string(lease.revision) + ")");
        }
        return Status::Ok();
      },
      renewed);
}

Status SqliteStore::delete_lease(const LeaseKey& subnet, uint64_t expected_revision) {
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
      return Status::Error(StoreCode::kConflict, "sqlite " + options_.path + ": lease " + key +
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

}  // namespace flannel
