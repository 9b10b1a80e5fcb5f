#include "tests/stores/sqlite/harness.h"

#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace flannel::testing {

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "flannel-sqlite-XXXXXX").string();
  if (!mkdtemp(pattern.data())) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

SqliteHarness::SqliteHarness(size_t history_limit) {
  options_.path = dir_.file("store.db");
  options_.history_limit = history_limit;
}

void SqliteHarness::wipe_and_restart() {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::error_code ec;
    std::filesystem::remove(options_.path + suffix, ec);
    if (ec) throw std::system_error(ec, "remove " + options_.path + suffix);
  }
  open();  // creates the new, empty store file
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContract,
                         ::testing::Values(ContractParam{
                             "Sqlite", [] { return std::make_unique<SqliteHarness>(); }}),
                         ContractParamName);

}  // namespace flannel::testing
