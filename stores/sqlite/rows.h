// Row-level building blocks of SqliteStore: revisions and events, the TTL sweep, decoding of
// stored leases, and the watcher's read of the event history. Internal to stores/.
//
// Unless said otherwise a function runs inside a transaction the caller holds on `db` (a write
// transaction for anything that changes rows) and throws DbError on SQLite failures.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/lease.h"
#include "stores/sqlite/db.h"
#include "stores/store.h"

namespace flannel::sqlite {

// Expirations are stored as unix milliseconds.
int64_t unix_ms(Clock::time_point t);
int64_t now_ms();
std::optional<Clock::time_point> from_unix_ms(std::optional<int64_t> ms);
// now + ttl, or nullopt (no expiry) for ttl 0.
std::optional<int64_t> expiration_for(std::chrono::seconds ttl, int64_t now);

// The store revision: the revision of the last write to the file.
uint64_t current_revision(Db& db);

// Takes the next revision and records the one event that goes with it (value/expiration for
// create/update/config), trimming the history to the last `limit` events. Returns the revision.
// A create/update event also records the lease's creation revision (its own for a create, the
// stored row's for an update: call it before the row is written).
uint64_t record_event(Db& db, size_t limit, const std::string& prefix, const std::string& key,
                      const char* action, std::optional<std::string> value,
                      std::optional<int64_t> expiration);

// The revision of the stored lease `key` (expired or not), or nullopt if there is none.
std::optional<uint64_t> stored_revision(Db& db, const std::string& prefix, const std::string& key);
// The creation revision of the stored lease `key`; nullopt if there is none or it is unknown (a
// row written by a build from before the column).
std::optional<int64_t> stored_created(Db& db, const std::string& prefix, const std::string& key);

// Deletes the prefix's leases whose expiration is <= now, recording an `expire` event for each.
void sweep_expired(Db& db, size_t limit, const std::string& prefix, int64_t now);

// Outside any transaction: sweeps if some lease of the prefix expired. The check is a cheap
// read, so the write lock is only taken when there is something to sweep.
void sweep_if_due(Db& db, size_t limit, const std::string& prefix);

// The sweep a read does on its way: never waits for another connection's lock (a busy file
// means "skip"). Reads filter on the expiration anyway, and every writer sweeps in its own
// transaction, so a reader has no reason to queue behind writers. Restores `busy_timeout`.
void try_sweep(Db& db, size_t limit, const std::string& prefix,
               std::chrono::milliseconds busy_timeout);

// Decodes a stored lease (key, JSON value, expiration, revision, creation revision) into *out.
// Returns nullopt on success, or why the row is malformed; *out may then be partly written (a bad
// value leaves the subnet fields set), so callers decode into a scratch Lease. Never throws.
std::optional<std::string> decode_row(const std::string& key, const std::string& value,
                                      std::optional<int64_t> expiration, int64_t revision,
                                      std::optional<int64_t> created, Lease* out);

// What a watcher found after `after`, as of one snapshot (opens its own read transaction).
struct EventBatch {
  bool gone = false;                       // the kept history no longer reaches back to `after`
  bool ahead = false;                      // `after` is beyond the store's revision (a reset)
  uint64_t store_revision = 0;             // the store's revision in the snapshot
  uint64_t revision = 0;                   // snapshot revision: everything up to here was examined
  std::vector<LeaseEvent> events;          // well-formed lease events of the prefix, in order
  std::vector<std::string> warnings;       // skipped malformed events
  std::optional<int64_t> next_expiration;  // earliest lease expiration in the prefix
};
EventBatch read_events(Db& db, const std::string& path, const std::string& prefix, uint64_t after);

}  // namespace flannel::sqlite
