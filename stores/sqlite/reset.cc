// SqliteStore: opening the file, and noticing that the file at the path is no longer the store
// we opened (see "Store reset" in sqlite_store.h).
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "stores/key_prefix.h"
#include "stores/sqlite/db.h"
#include "stores/sqlite/schema.h"
#include "stores/sqlite/sqlite_store.h"

namespace flannel {

using sqlite::Db;
using sqlite::DbError;

namespace {

// The device/inode at `path`; nullopt when nothing is there. Throws for other stat errors.
std::optional<std::pair<uint64_t, uint64_t>> stat_path(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::nullopt;
    throw DbError(SQLITE_IOERR, "stat: " + std::string(std::strerror(errno)));
  }
  return std::make_pair(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));
}

std::string describe_file(uint64_t dev, uint64_t ino) {
  return "device " + std::to_string(dev) + " inode " + std::to_string(ino);
}

}  // namespace

SqliteStore::Opened SqliteStore::open_file(const SqliteOptions& options) {
  if (options.path.empty()) {
    throw std::runtime_error("sqlite: no database path given; use -store=sqlite:PATH");
  }
  // The inode is read after opening; if the file was swapped meanwhile, open again.
  for (int attempt = 0;; ++attempt) {
    Opened o;
    try {
      o.db = std::make_unique<Db>(options.path, options.busy_timeout);
    } catch (const DbError& e) {
      throw std::runtime_error("sqlite " + options.path + ": cannot open database (" + e.what() +
                               "); check that the directory exists and the file is readable "
                               "and writable");
    }
    sqlite::prepare_schema(*o.db, options.path, kSchemaVersion);
    try {
      auto before = stat_path(options.path);
      sqlite::StoreIdentity id = sqlite::read_identity(*o.db);
      auto after = stat_path(options.path);
      if (before && before == after) {
        o.file = {before->first, before->second};
        o.store_id = std::move(id.store_id);
        o.revision = id.revision;
        o.prefix = sqlite::resolve_prefix(*o.db, normalize_key_prefix(options.prefix));
        return o;
      }
    } catch (const DbError& e) {
      throw std::runtime_error("sqlite " + options.path +
                               ": cannot read the store id and prefixes (" + e.what() + ")");
    }
    o.db->keep_wal_on_close();
    if (attempt >= 10) {
      throw std::runtime_error("sqlite " + options.path +
                               ": the file keeps being replaced while it is opened; retry later");
    }
  }
}

SqliteStore::~SqliteStore() {
  // Connections to a file that was replaced under us must not unlink the new file's WAL.
  std::optional<std::pair<uint64_t, uint64_t>> now;
  try {
    now = stat_path(options_.path);
  } catch (const DbError&) {}
  if (!now || FileId{now->first, now->second} != file_) {
    if (db_) db_->keep_wal_on_close();
    for (auto& db : watch_pool_) db->keep_wal_on_close();
  }
}

Status SqliteStore::check_reset_locked() {
  std::string why;
  auto now = stat_path(options_.path);
  if (!now) {
    why = "the file was deleted";
  } else if (FileId{now->first, now->second} != file_) {
    why = "the path now holds another file (" + describe_file(now->first, now->second) + ", was " +
          describe_file(file_.dev, file_.ino) + ")";
  } else {
    sqlite::StoreIdentity id = sqlite::read_identity(*db_);
    if (id.store_id != store_id_) {
      why = "the store id changed from '" + store_id_ + "' to '" + id.store_id +
            "' (the file was overwritten with another store)";
    } else if (id.revision < max_revision_) {
      why = "the revision went back from " + std::to_string(max_revision_) + " to " +
            std::to_string(id.revision) + " (the file was restored from an older copy)";
    } else {
      max_revision_ = id.revision;
      return Status::Ok();
    }
  }
  return reopen_locked(why);
}

Status SqliteStore::reopen_locked(const std::string& why) {
  Opened o;
  try {
    o = open_file(options_);
  } catch (const std::exception& e) {
    // Not re-based: the next call checks again and reports the reset once the file is usable.
    return Status::Error(StoreCode::kUnavailable, "sqlite " + options_.path + ": " + why +
                                                      ", and reopening it failed: " + e.what());
  }
  db_->keep_wal_on_close();
  db_ = std::move(o.db);
  file_ = o.file;
  store_id_ = std::move(o.store_id);
  max_revision_ = o.revision;
  ++generation_;
  {
    MutexLock lock(&pool_mu_);
    for (auto& db : watch_pool_) db->keep_wal_on_close();
    watch_pool_.clear();
  }
  return Status::Error(StoreCode::kStoreReset, "sqlite " + options_.path + ": store reset: " + why +
                                                   "; reopened the file at the path (store id " +
                                                   store_id_ + ", revision " +
                                                   std::to_string(max_revision_) +
                                                   "); everything read before is void");
}

Status SqliteStore::watch_check(uint64_t generation) {
  if (!mu_.try_lock()) return reopened_since(generation);
  MutexLock lock(&mu_, std::adopt_lock);
  try {
    if (Status s = check_reset_locked(); !s.ok()) return s;
  } catch (const DbError& e) { return error_status(e.code(), e.what()); }
  return reopened_since(generation);
}

Status SqliteStore::reopened_since(uint64_t generation) const {
  if (generation_.load() != generation) {
    return Status::Error(StoreCode::kHistoryGone,
                         "sqlite " + options_.path +
                             ": the store was reset and reopened since this watch started; list "
                             "the leases again");
  }
  return Status::Ok();
}

}  // namespace flannel
