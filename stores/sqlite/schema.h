// The on-disk schema of SqliteStore (see sqlite_store.h for the tables) and the checks that
// keep us from writing into a file that is not ours.
#pragma once

#include <cstdint>
#include <string>

#include "stores/sqlite/db.h"

namespace flannel::sqlite {

// Makes `db` ready for SqliteStore: verifies an existing flannel schema, or creates it in an
// empty file, and switches the file to WAL. Inspection happens before any write, so a foreign
// or newer file is refused without being modified. Safe to race with other processes opening
// the same new file. A new file gets a random store id in flannel_meta ('store_id'); an existing
// file without one gets one (an extra meta row, not a schema change: the schema version stays,
// and builds that do not know the row ignore it). Throws std::runtime_error with an operator-facing
// message naming `path`.
void prepare_schema(Db& db, const std::string& path, int supported_version);

// What identifies one store file across connections: the random id written at creation (""
// for a file from a build that did not write one and was not opened by a newer build since) and
// the current revision. Outside any transaction; throws DbError.
struct StoreIdentity {
  std::string store_id;
  uint64_t revision = 0;
};
StoreIdentity read_identity(Db& db);

// The spelling of the key prefix `normalized` (normalize_key_prefix) to use in this file. Rows
// are keyed by the prefix as written, and builds before the shared normaliser wrote it as given
// ("coreos.com/network", "/coreos.com/network/"). So: `normalized` itself if the file holds any
// config or lease under it or under no spelling of it; otherwise the one older spelling that
// holds the config, else the first older spelling holding leases. Nothing is rewritten, so older
// builds still running with that spelling keep sharing the rows. Outside any transaction.
std::string resolve_prefix(Db& db, const std::string& normalized);

// Per-connection settings every SqliteStore connection needs (synchronous=NORMAL under WAL:
// a power cut may lose the last commits but never corrupts the file).
void configure_connection(Db& db);

}  // namespace flannel::sqlite
