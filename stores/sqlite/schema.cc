#include "stores/sqlite/schema.h"

#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "stores/key_prefix.h"

namespace flannel::sqlite {
namespace {

constexpr const char* kCreateSchema = R"sql(
CREATE TABLE flannel_meta(key TEXT PRIMARY KEY, value);
CREATE TABLE flannel_config(prefix TEXT PRIMARY KEY, value TEXT NOT NULL,
                            revision INTEGER NOT NULL);
CREATE TABLE flannel_leases(prefix TEXT NOT NULL, subnet TEXT NOT NULL, value TEXT NOT NULL,
                            expiration INTEGER, revision INTEGER NOT NULL, created INTEGER,
                            PRIMARY KEY(prefix, subnet));
CREATE INDEX flannel_leases_by_expiration ON flannel_leases(prefix, expiration);
CREATE TABLE flannel_events(revision INTEGER PRIMARY KEY, prefix TEXT NOT NULL,
                            subnet TEXT NOT NULL, action TEXT NOT NULL, value TEXT,
                            expiration INTEGER, created INTEGER);
INSERT INTO flannel_meta(key, value) VALUES('revision', 0);
)sql";

[[noreturn]] void refuse(const std::string& path, const std::string& why) {
  throw std::runtime_error("sqlite " + path + ": " + why);
}

std::set<std::string> table_names(Db& db) {
  std::set<std::string> names;
  auto q = db.query("SELECT name FROM sqlite_master WHERE type = 'table'");
  while (q.step()) names.insert(q.text(0));
  return names;
}

// Checks that an existing, non-empty database is a flannel store this build can use.
void verify(Db& db, const std::string& path, const std::set<std::string>& tables,
            int supported_version) {
  if (!tables.count("flannel_meta")) {
    refuse(path,
           "not a flannel store (no flannel_meta table); refusing to use it. Point the "
           "store at a new or flannel-created file");
  }
  auto q = db.query("SELECT value, typeof(value) FROM flannel_meta WHERE key = 'schema_version'");
  if (!q.step() || q.text(1) != "integer") {
    refuse(path,
           "flannel_meta has no valid schema_version; the file is damaged or not a "
           "flannel store; refusing to use it");
  }
  int64_t version = q.int64(0);
  if (version > supported_version) {
    refuse(path, "written by a newer flannel (schema version " + std::to_string(version) +
                     ", this build supports up to " + std::to_string(supported_version) +
                     "); upgrade flannel or use another file");
  }
  for (const char* t : {"flannel_config", "flannel_leases", "flannel_events"}) {
    if (!tables.count(t)) {
      refuse(path, std::string("flannel store is missing table ") + t +
                       "; the file is damaged; refusing to use it");
    }
  }
  if (version < 1) {
    refuse(path, "invalid schema version " + std::to_string(version) + "; refusing to use it");
  }
}

// Switches to WAL (persistent in the file). Changing the journal mode needs an exclusive lock
// that the busy handler does not always wait for, so retry for a while ourselves.
void enable_wal(Db& db, const std::string& path) {
  std::string mode;
  {
    auto q = db.query("PRAGMA journal_mode");
    if (q.step()) mode = q.text(0);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (mode != "wal") {
    try {
      auto q = db.query("PRAGMA journal_mode = WAL");
      if (q.step()) mode = q.text(0);
      if (mode != "wal") {
        refuse(path, "cannot switch to WAL mode (journal mode stays '" + mode +
                         "'); put the file on a local filesystem");
      }
    } catch (const DbError& e) {
      if ((e.code() != SQLITE_BUSY && e.code() != SQLITE_LOCKED) ||
          std::chrono::steady_clock::now() > deadline) {
        throw;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

// 128 random bits in hex: a store id that two files never share.
std::string new_store_id() {
  std::random_device rd;
  char buf[33];
  std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
}

bool has_store_id(Db& db) {
  auto q = db.query("SELECT 1 FROM flannel_meta WHERE key = 'store_id'");
  return q.step();
}

bool has_column(Db& db, const char* table, std::string_view column) {
  auto q = db.query("SELECT name FROM pragma_table_info(?)");
  q.bind(1, std::string_view(table));
  while (q.step())
    if (q.text(0) == column) return true;
  return false;
}

// A file from before the creation revision: the column added to the leases and their events.
// The schema version stays 1: builds that predate the column never name it, so they go on
// reading and writing the file (rows they create have it NULL, which reads as unknown).
void add_created_columns(Db& db) {
  for (const char* table : {"flannel_leases", "flannel_events"})
    if (!has_column(db, table, "created"))
      db.exec((std::string("ALTER TABLE ") + table + " ADD COLUMN created INTEGER").c_str());
}

void insert_store_id(Db& db) {
  db.query("INSERT OR IGNORE INTO flannel_meta(key, value) VALUES('store_id', ?)")
      .bind(1, new_store_id())
      .run();
}

}  // namespace

StoreIdentity read_identity(Db& db) {
  StoreIdentity id;
  auto q = db.query("SELECT key, value FROM flannel_meta WHERE key IN ('store_id', 'revision')");
  while (q.step()) {
    if (q.text(0) == "store_id") {
      id.store_id = q.text(1);
    } else {
      id.revision = static_cast<uint64_t>(q.int64(1));
    }
  }
  return id;
}

std::string resolve_prefix(Db& db, const std::string& normalized) {
  std::string with_config, with_leases;
  bool normalized_used = false;
  auto consider = [&](const std::string& spelling, std::string* first) {
    if (normalize_key_prefix(spelling) != normalized) return;
    if (spelling == normalized) normalized_used = true;
    if (first->empty()) *first = spelling;
  };
  {
    auto q = db.query("SELECT DISTINCT prefix FROM flannel_config ORDER BY prefix");
    while (q.step()) consider(q.text(0), &with_config);
  }
  {
    auto q = db.query("SELECT DISTINCT prefix FROM flannel_leases ORDER BY prefix");
    while (q.step()) consider(q.text(0), &with_leases);
  }
  if (normalized_used) return normalized;
  if (!with_config.empty()) return with_config;
  if (!with_leases.empty()) return with_leases;
  return normalized;
}

void configure_connection(Db& db) { db.exec("PRAGMA synchronous = NORMAL"); }

void prepare_schema(Db& db, const std::string& path, int supported_version) {
  try {
    // 1. Look without touching: a file we refuse must stay exactly as it was.
    std::set<std::string> tables;
    {
      Txn read(db, Txn::Mode::kRead);
      tables = table_names(db);
      if (!tables.empty()) verify(db, path, tables, supported_version);
      read.commit();
    }
    // 2. Ours (or empty): WAL, then create the schema unless another process just did.
    enable_wal(db, path);
    configure_connection(db);
    if (tables.empty()) {
      Txn write(db, Txn::Mode::kImmediate);
      tables = table_names(db);
      if (tables.empty()) {
        db.exec(kCreateSchema);
        db.query("INSERT INTO flannel_meta(key, value) VALUES('schema_version', ?)")
            .bind(1, int64_t{supported_version})
            .run();
        insert_store_id(db);
      } else {
        verify(db, path, tables, supported_version);
      }
      write.commit();
    }
    // 3. A file from before store ids or creation revisions: add them (the write lock only
    // when something is missing; looked at again under it, another process may have just).
    if (!has_store_id(db) || !has_column(db, "flannel_leases", "created") ||
        !has_column(db, "flannel_events", "created")) {
      Txn write(db, Txn::Mode::kImmediate);
      if (!has_store_id(db)) insert_store_id(db);
      add_created_columns(db);
      write.commit();
    }
  } catch (const DbError& e) {
    if (e.code() == SQLITE_NOTADB) {
      refuse(path, std::string("not an SQLite database (") + e.what() +
                       "); refusing to use it. Point the store at a new or flannel-created file");
    }
    if (e.code() == SQLITE_BUSY || e.code() == SQLITE_LOCKED) {
      refuse(path,
             std::string("database is locked by another process (") + e.what() + "); retry later");
    }
    refuse(path, std::string("cannot use the database (") + e.what() +
                     "); check that the file is readable and writable");
  }
}

}  // namespace flannel::sqlite
