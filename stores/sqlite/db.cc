#include "stores/sqlite/db.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <utility>

namespace flannel::sqlite {

void check(sqlite3* db, int rc, const char* what) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return;
  std::string msg = what;
  msg += ": ";
  // sqlite3_errmsg describes the most recent failure on the connection, which is this one;
  // without a connection (open failed early) fall back to the generic text of the code.
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw DbError(rc & 0xff, msg);
}

Query::~Query() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Query& Query::bind(int index, int64_t value) {
  check(db_, sqlite3_bind_int64(stmt_, index, value), "bind");
  return *this;
}

Query& Query::bind(int index, std::string_view text) {
  check(
      db_,
      sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT),
      "bind");
  return *this;
}

Query& Query::bind(int index, std::optional<int64_t> value) {
  return value ? bind(index, *value) : bind_null(index);
}

Query& Query::bind_null(int index) {
  check(db_, sqlite3_bind_null(stmt_, index), "bind");
  return *this;
}

bool Query::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  check(db_, rc, sqlite3_sql(stmt_));
  return false;
}

void Query::run() {
  while (step()) {}
}

bool Query::is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

int64_t Query::int64(int column) const { return sqlite3_column_int64(stmt_, column); }

std::optional<int64_t> Query::opt_int64(int column) const {
  if (is_null(column)) return std::nullopt;
  return int64(column);
}

std::string Query::text(int column) const {
  const unsigned char* p = sqlite3_column_text(stmt_, column);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

namespace {

// Creates the store file 0600 when it does not exist yet (it holds the config, WireGuard PSK
// included; SQLite creates -wal and -shm with the database file's mode). An existing file keeps
// its mode; O_NOFOLLOW|O_EXCL never create through a symbolic link. Errors are left to SQLite's
// own open, which names them.
void create_private_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
}

}  // namespace

Db::Db(const std::string& path, std::chrono::milliseconds busy_timeout) : path_(path) {
  create_private_file(path);
  // NOMUTEX: each connection is used by one thread at a time (see the header), so SQLite's own
  // per-connection mutex would only cost time.
  int rc =
      sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw DbError(rc & 0xff, msg);
  }
  sqlite3_extended_result_codes(db_, 0);
  set_busy_timeout(busy_timeout);
  sqlite3_busy_handler(db_, &Db::on_busy, this);
}

// Replaces SQLite's default busy handler, whose naps grow to 100 ms: our transactions hold the
// write lock for well under a millisecond, so with dozens of processes (one agent per network
// namespace) contending, long naps leave the lock idle while everyone sleeps.
int Db::on_busy(void* self, int count) {
  auto* db = static_cast<Db*>(self);
  auto now = std::chrono::steady_clock::now();
  if (count == 0) db->busy_since_ = now;
  if (now - db->busy_since_ >= db->busy_timeout_) return 0;  // give up: SQLITE_BUSY
  std::this_thread::sleep_for(std::chrono::microseconds(500 + 250 * std::min(count, 18)));
  return 1;
}

void Db::keep_wal_on_close() {
  int on = 1;
  sqlite3_file_control(db_, "main", SQLITE_FCNTL_PERSIST_WAL, &on);
}

Db::~Db() {
  cache_.clear();  // statements must be finalized before the connection closes
  sqlite3_close(db_);
}

void Db::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw DbError(rc & 0xff, msg);
  }
}

Query Db::query(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    check(db_, sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr), sql);
    it = cache_.emplace(sql, std::unique_ptr<sqlite3_stmt, StmtDeleter>(stmt)).first;
  }
  return Query(db_, it->second.get());
}

void Db::touch() {
  // Best effort: a watcher that misses it still finds the commit at its next look.
  (void)::utimensat(AT_FDCWD, path_.c_str(), nullptr, 0);
}

int64_t Db::data_version() {
  auto q = query("PRAGMA data_version");
  q.step();
  return q.int64(0);
}

Txn::Txn(Db& db, Mode mode) : db_(db) {
  db_.exec(mode == Mode::kImmediate ? "BEGIN IMMEDIATE" : "BEGIN");
  open_ = true;
  changes_at_begin_ = sqlite3_total_changes64(db_.handle());
}

Txn::~Txn() {
  if (open_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Txn::commit() {
  db_.exec("COMMIT");
  open_ = false;
  if (sqlite3_total_changes64(db_.handle()) != changes_at_begin_) db_.touch();
}

}  // namespace flannel::sqlite
