#include "stores/sqlite/rows.h"

#include <algorithm>
#include <exception>
#include <utility>

namespace flannel::sqlite {
namespace {

bool has_expired(Db& db, const std::string& prefix, int64_t now) {
  auto q = db.query("SELECT 1 FROM flannel_leases WHERE prefix = ? AND expiration <= ? LIMIT 1");
  q.bind(1, prefix).bind(2, now);
  return q.step();
}

}  // namespace

int64_t unix_ms(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

int64_t now_ms() { return unix_ms(Clock::now()); }

std::optional<Clock::time_point> from_unix_ms(std::optional<int64_t> ms) {
  if (!ms) return std::nullopt;
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(*ms)));
}

std::optional<int64_t> expiration_for(std::chrono::seconds ttl, int64_t now) {
  if (ttl.count() <= 0) return std::nullopt;
  return now + std::chrono::duration_cast<std::chrono::milliseconds>(ttl).count();
}

uint64_t current_revision(Db& db) {
  auto q = db.query("SELECT value FROM flannel_meta WHERE key = 'revision'");
  return q.step() ? static_cast<uint64_t>(q.int64(0)) : 0;
}

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
  std::optional<int64_t> created;
  if (std::string_view(action) == "create") created = rev;
  if (std::string_view(action) == "update") created = stored_created(db, prefix, key);
  {
    auto q = db.query(
        "INSERT INTO flannel_events(revision, prefix, subnet, action, value, expiration, "
        "created) VALUES(?, ?, ?, ?, ?, ?, ?)");
    q.bind(1, rev).bind(2, prefix).bind(3, key).bind(4, std::string_view(action));
    if (value) q.bind(5, *value);
    else q.bind_null(5);
    q.bind(6, expiration).bind(7, created).run();
  }
  db.query("DELETE FROM flannel_events WHERE revision <= ?")
      .bind(1, rev - static_cast<int64_t>(limit))
      .run();
  return static_cast<uint64_t>(rev);
}

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

std::optional<uint64_t> stored_revision(Db& db, const std::string& prefix, const std::string& key) {
  auto q = db.query("SELECT revision FROM flannel_leases WHERE prefix = ? AND subnet = ?");
  q.bind(1, prefix).bind(2, key);
  if (!q.step()) return std::nullopt;
  return static_cast<uint64_t>(q.int64(0));
}

std::optional<int64_t> stored_created(Db& db, const std::string& prefix, const std::string& key) {
  auto q = db.query("SELECT created FROM flannel_leases WHERE prefix = ? AND subnet = ?");
  q.bind(1, prefix).bind(2, key);
  if (!q.step()) return std::nullopt;
  return q.opt_int64(0);
}

void sweep_if_due(Db& db, size_t limit, const std::string& prefix) {
  int64_t now = now_ms();
  if (!has_expired(db, prefix, now)) return;
  Txn txn(db, Txn::Mode::kImmediate);
  sweep_expired(db, limit, prefix, now_ms());
  txn.commit();
}

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

std::optional<std::string> decode_row(const std::string& key, const std::string& value,
                                      std::optional<int64_t> expiration, int64_t revision,
                                      std::optional<int64_t> created, Lease* out) {
  auto subnet = parse_subnet_key(key);
  if (!subnet) return "lease key '" + key + "' does not name a subnet";
  try {
    out->subnet = subnet->subnet;
    out->ipv6_subnet = subnet->ipv6_subnet;
    out->attrs = decode_lease_attrs(value);
    out->expiration = from_unix_ms(expiration);
    out->revision = static_cast<uint64_t>(revision);
    out->created = created && *created > 0 ? static_cast<uint64_t>(*created) : 0;
  } catch (const std::exception& e) {
    return "lease " + key + " has a malformed value: " + e.what();
  }
  return std::nullopt;
}

EventBatch read_events(Db& db, const std::string& path, const std::string& prefix, uint64_t after) {
  EventBatch b;
  Txn txn(db, Txn::Mode::kRead);
  b.store_revision = current_revision(db);
  if (b.store_revision < after) {
    b.ahead = true;
    return b;
  }
  b.revision = std::max(after, b.store_revision);
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
        "SELECT revision, subnet, action, value, expiration, created FROM flannel_events "
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
          ev.lease.subnet = subnet->subnet;
          ev.lease.ipv6_subnet = subnet->ipv6_subnet;
          ev.lease.revision = static_cast<uint64_t>(rev);
        } else {
          bad = "lease key '" + key + "' does not name a subnet";
        }
      } else if (action == "create" || action == "update") {
        bad = decode_row(key, q.text(3), q.opt_int64(4), rev, q.opt_int64(5), &ev.lease);
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

}  // namespace flannel::sqlite
