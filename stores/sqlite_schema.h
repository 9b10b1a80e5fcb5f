// The on-disk schema of SqliteStore (see sqlite_store.h for the tables) and the checks that
// keep us from writing into a file that is not ours.
#pragma once

#include <cstdint>
#include <string>

#include "stores/sqlite_db.h"

namespace flannel::sqlite {

// Makes `db` ready for SqliteStore: verifies an existing flannel schema, or creates it in an
// empty file, and switches the file to WAL. Inspection happens before any write, so a foreign
// or newer file is refused without being modified. Safe to race with other processes opening
// the same new file. A new file gets a random store id in flannel_meta ('store_id'); an existing
// file without one gets one (an extra meta row, not a schema change: the schema version stays,
// and builds that do not know the row ignore it). Throws std::runtime_error with an operator-facing message naming `path`.
void prepare_schema(Db& db, const std::string& path, int supported_version);

// What identifies one store file across connections: the random id written at creation (""
// for a file from a build that did not write one and was not opened by a newer build since) and
// the current revision. Outside any transaction; throws DbError.
struct StoreIdentity {
  std::string store_id;
  uint64_t revision = 0;
};
StoreIdentity read_identity(Db& db);

// Per-connection settings every SqliteStore connection needs (synchronous=NORMAL under WAL:
// a power cut may lose the last commits but never corrupts the file).
void configure_connection(Db& db);

}  // namespace flannel::sqlite
