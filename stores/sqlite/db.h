// A thin RAII layer over the SQLite C API, for SqliteStore only.
//
// Db owns one sqlite3* connection and a cache of its prepared statements; Query borrows one of
// those statements for a single use and resets it on destruction; Txn is a transaction that
// rolls back unless committed. Every failure throws DbError carrying the SQLite result code and
// the library's message, so the store can turn it into a Status in one place.
//
// Thread safety: none. A Db (and everything borrowed from it) must be used by one thread at a
// time; SqliteStore guards each connection with a mutex or hands it to a single watcher.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace flannel::sqlite {

// A failed SQLite call. code() is the primary result code (SQLITE_BUSY, SQLITE_NOTADB, ...).
class DbError : public std::runtime_error {
 public:
  DbError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// One use of a cached prepared statement: bind, step through the rows, read columns.
// Destruction resets the statement and clears its bindings, ready for the next use. Borrowed
// from the Db: it must not outlive it, and two live Queries of the same `sql` share one
// statement (finish one before asking for the other).
class Query {
 public:
  Query(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  ~Query();

  // Bind parameters, numbered from 1 as in SQLite. Return *this for chaining.
  Query& bind(int index, int64_t value);
  Query& bind(int index, std::string_view text);
  Query& bind(int index, std::optional<int64_t> value);  // nullopt binds NULL
  Query& bind_null(int index);

  // Advances to the next row: true if there is one, false when done. Throws DbError on failure.
  bool step();
  // Runs a statement that returns no rows (or whose rows are irrelevant) to completion.
  void run();

  bool is_null(int column) const;
  int64_t int64(int column) const;
  std::optional<int64_t> opt_int64(int column) const;  // nullopt for NULL
  std::string text(int column) const;                  // "" for NULL

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class Db {
 public:
  // Opens (creating if missing) the database file at `path` with its own connection and sets
  // the busy timeout. Throws DbError when the file cannot be opened.
  Db(const std::string& path, std::chrono::milliseconds busy_timeout);
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  // Runs one or more SQL statements with no parameters and no interesting result.
  void exec(const char* sql);
  // Borrows the cached prepared statement for `sql` (prepared on first use; a failure to prepare
  // throws DbError). `sql` must be a string literal or otherwise outlive the Db: its address,
  // not its text, is the cache key.
  Query query(const char* sql);

  // How long a statement waits for another connection's lock before failing with SQLITE_BUSY.
  void set_busy_timeout(std::chrono::milliseconds timeout) { busy_timeout_ = timeout; }

  // PRAGMA data_version: changes whenever another connection commits to the file. Throws DbError.
  int64_t data_version();
  // Sets the file's times to now (an attribute change that FileNotifier reports to watchers).
  // Never throws; a failure only delays watchers to their next look.
  void touch();
  // The number of rows changed by the last INSERT/UPDATE/DELETE on this connection.
  int changes() const { return sqlite3_changes(db_); }

  // Makes closing this connection leave the -wal and -shm files alone (SQLITE_FCNTL_PERSIST_WAL).
  // For a connection whose file was deleted or replaced: closing it normally would checkpoint and
  // then unlink "<path>-wal" by name, which by now belongs to the new file at the path.
  void keep_wal_on_close();

  // Frees this connection's page cache (sqlite3_db_release_memory). After a read of the whole
  // table (a list of 10,000 leases) the cache holds ~2 MB that the next read of a few rows does
  // not need; the pages are read again from the OS's cache when they are.
  void release_memory() { sqlite3_db_release_memory(db_); }

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  static int on_busy(void* self, int count);

  struct StmtDeleter {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
  };
  std::string path_;
  sqlite3* db_ = nullptr;
  std::chrono::milliseconds busy_timeout_{0};
  std::chrono::steady_clock::time_point busy_since_;
  std::map<const char*, std::unique_ptr<sqlite3_stmt, StmtDeleter>> cache_;
};

// A transaction on `db`. kImmediate takes the write lock up front (waiting up to the busy
// timeout), which every read-modify-write needs: a deferred transaction that later upgrades to
// a writer can fail with SQLITE_BUSY without waiting. Rolls back on destruction unless commit()
// succeeded. The constructor and commit() throw DbError (a failed commit leaves the transaction
// open, to be rolled back by the destructor). Holds a reference: must not outlive `db`.
class Txn {
 public:
  enum class Mode { kRead, kImmediate };
  // A transaction that changed rows touches the file after its commit (Db::touch), so that
  // watchers in other processes, woken by the file change notification, find it committed.
  Txn(Db& db, Mode mode);
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  ~Txn();
  void commit();

 private:
  Db& db_;
  bool open_ = false;
  int64_t changes_at_begin_ = 0;
};

// Throws DbError for a non-OK result code `rc` of a call on `db`, with `what` as context.
void check(sqlite3* db, int rc, const char* what);

}  // namespace flannel::sqlite
