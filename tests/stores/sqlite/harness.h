// The SQLite side of the store contract suite: a fresh database file per harness.
#pragma once

#include <memory>
#include <string>

#include "stores/open_store.h"
#include "stores/sqlite/sqlite_store.h"
#include "tests/stores/store_contract.h"

namespace flannel::testing {

// A private temporary directory, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// One SQLite store file in its own temp directory. connect() opens a new SqliteStore on it.
class SqliteHarness : public StoreHarness {
 public:
  explicit SqliteHarness(size_t history_limit = 1000);
  std::unique_ptr<Store> connect() override { return open(); }
  size_t history_limit() const override { return options_.history_limit; }
  // Deletes the file (with its -wal and -shm, as an operator would: `rm store.db*`) and lets a
  // new connection create it anew.
  void wipe_and_restart() override;
  std::chrono::milliseconds reset_notice_bound() const override {
    return std::chrono::milliseconds(1000);
  }

  std::unique_ptr<SqliteStore> open() { return SqliteStore::open(options_); }
  const SqliteOptions& options() const { return options_; }
  const std::string& path() const { return options_.path; }

 private:
  TempDir dir_;
  SqliteOptions options_;
};

}  // namespace flannel::testing
