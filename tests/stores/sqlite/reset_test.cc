// SQLite store resets beyond the generic contract cases (store_reset_test.cc): the file deleted
// and re-created by another connection, replaced with rename(2), overwritten in place, and store
// ids and creation revisions for old files.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

#include "tests/stores/contract_util.h"
#include "tests/stores/sqlite/harness.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Runs one SQL statement on a plain connection and returns the first column of its first row.
std::string sql(const std::string& path, const std::string& statement) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("open " + path);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* stmt = nullptr;
  std::string out;
  int rc = sqlite3_prepare_v2(db, statement.c_str(), -1, &stmt, nullptr);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && sqlite3_column_text(stmt, 0)) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
  }
  std::string err = sqlite3_errmsg(db);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) throw std::runtime_error(statement + ": " + err);
  return out;
}

Lease lease_at(const char* subnet) { return make_lease(subnet, "192.168.9.1"); }

TEST(SqliteReset, DeletedAndRecreatedByAnotherConnection) {
  SqliteHarness h;
  auto a = h.open();
  ASSERT_TRUE(IsOk(a->create_lease(lease_at("10.5.1.0/24"), 60s, nullptr)));
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(h.path() + suffix);

  auto b = h.open();  // another agent starts and creates the file anew
  Lease theirs;
  ASSERT_TRUE(IsOk(b->create_lease(lease_at("10.5.2.0/24"), 60s, &theirs)));

  Lease got;
  Status s = a->get_lease(theirs.subnet, &got);
  ASSERT_TRUE(HasCode(s, StoreCode::kStoreReset));
  EXPECT_NE(s.message.find("the path now holds another file"), std::string::npos) << s.message;
  LeaseList list;
  ASSERT_TRUE(IsOk(a->list_leases(&list)));  // reopened: b's file, once only
  ASSERT_EQ(list.leases.size(), 1u);
  EXPECT_EQ(list.leases[0].subnet, theirs.subnet);
  // Both see each other's writes in the new file.
  ASSERT_TRUE(IsOk(a->create_lease(lease_at("10.5.3.0/24"), 60s, nullptr)));
  ASSERT_TRUE(IsOk(b->get_lease(IP4Net::parse("10.5.3.0/24"), &got)));
}

TEST(SqliteReset, DeletedFileIsCreatedAgainByTheNextCall) {
  SqliteHarness h;
  auto a = h.open();
  ASSERT_TRUE(IsOk(a->create_lease(lease_at("10.5.1.0/24"), 60s, nullptr)));
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(h.path() + suffix);
  LeaseList list;
  Status s = a->list_leases(&list);
  ASSERT_TRUE(HasCode(s, StoreCode::kStoreReset));
  EXPECT_NE(s.message.find("the file was deleted"), std::string::npos) << s.message;
  EXPECT_TRUE(std::filesystem::exists(h.path()));
  ASSERT_TRUE(IsOk(a->list_leases(&list)));
  EXPECT_TRUE(list.leases.empty());
}

TEST(SqliteReset, ReplacedByRenameWakesABlockedWatcher) {
  SqliteHarness h;
  auto a = h.open();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(IsOk(a->set_config("{}")));
  LeaseList start;
  ASSERT_TRUE(IsOk(a->list_leases(&start)));
  // The replacement: another store file, written and closed.
  SqliteOptions other = h.options();
  other.path = h.path() + ".new";
  Lease theirs;
  {
    auto o = SqliteStore::open(other);
    ASSERT_TRUE(IsOk(o->create_lease(lease_at("10.5.8.0/24"), 60s, &theirs)));
  }

  std::atomic<int64_t> ended_ns{0};
  WatchResult ended;
  std::jthread t([&](std::stop_token stop) {
    ended = a->watch_leases(start.revision, 10s, stop);
    ended_ns = SteadyClock::now().time_since_epoch().count();
  });
  // Proving an absence: the watch must not return within 300 ms while nothing changed (the wait
  // also lets it block: a SQLite watch has no "is blocked" to await).
  const bool returned_early = wait_until([&] { return ended_ns.load() != 0; }, 300ms);
  ASSERT_FALSE(returned_early) << "watch returned early: " << ended.status.message;
  // The old file's -wal and -shm go first: a watcher that wakes at the rename and reopens the
  // path must not find them (SQLite would pair the old file's WAL with the new file).
  for (const char* suffix : {"-wal", "-shm"}) std::filesystem::remove(h.path() + suffix);
  const auto swapped = SteadyClock::now();
  ASSERT_EQ(std::rename(other.path.c_str(), h.path().c_str()), 0);
  t.join();
  const auto latency = SteadyClock::time_point(SteadyClock::duration(ended_ns.load())) - swapped;
  EXPECT_TRUE(HasCode(ended.status, StoreCode::kStoreReset));
  std::printf("[ reset ] Sqlite rename: watcher noticed the reset after %lld ms\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(latency).count()));
  EXPECT_LT(latency, 1s);

  LeaseList list;
  ASSERT_TRUE(IsOk(a->list_leases(&list)));  // reported once, by the watch
  ASSERT_EQ(list.leases.size(), 1u);
  EXPECT_EQ(list.leases[0].subnet, theirs.subnet);
  EXPECT_EQ(list.leases[0].revision, theirs.revision);
}

TEST(SqliteReset, OverwrittenInPlaceByAnotherStoreOrAnOlderCopy) {
  SqliteHarness h;
  auto a = h.open();
  ASSERT_TRUE(IsOk(a->create_lease(lease_at("10.5.1.0/24"), 60s, nullptr)));
  std::string json;
  ASSERT_TRUE(HasCode(a->get_config(&json), StoreCode::kNotFound));

  // Same inode, another store id (as a restore through the SQLite backup API would leave it).
  sql(h.path(), "UPDATE flannel_meta SET value = 'restored' WHERE key = 'store_id'");
  Status s = a->get_config(&json);
  ASSERT_TRUE(HasCode(s, StoreCode::kStoreReset));
  EXPECT_NE(s.message.find("store id changed"), std::string::npos) << s.message;
  ASSERT_TRUE(HasCode(a->get_config(&json), StoreCode::kNotFound));

  // Same inode and id, the revision back at an older value.
  ASSERT_TRUE(IsOk(a->set_config("{}")));
  ASSERT_TRUE(IsOk(a->set_config("{}")));
  ASSERT_TRUE(IsOk(a->get_config(&json)));
  sql(h.path(), "UPDATE flannel_meta SET value = 1 WHERE key = 'revision'");
  s = a->get_config(&json);
  ASSERT_TRUE(HasCode(s, StoreCode::kStoreReset));
  EXPECT_NE(s.message.find("revision went back"), std::string::npos) << s.message;
  ASSERT_TRUE(IsOk(a->get_config(&json)));
}

TEST(SqliteReset, EveryFileGetsItsOwnStoreIdAndOldFilesGetOneOnOpen) {
  SqliteHarness h1, h2;
  h1.open();
  h2.open();
  const std::string q = "SELECT value FROM flannel_meta WHERE key = 'store_id'";
  const std::string id1 = sql(h1.path(), q), id2 = sql(h2.path(), q);
  EXPECT_EQ(id1.size(), 32u) << id1;
  EXPECT_NE(id1, id2);

  // A file from before store ids: the first open adds one, the schema version stays 1.
  sql(h1.path(), "DELETE FROM flannel_meta WHERE key = 'store_id'");
  auto store = h1.open();
  const std::string added = sql(h1.path(), q);
  EXPECT_EQ(added.size(), 32u);
  EXPECT_NE(added, id1);
  EXPECT_EQ(sql(h1.path(), "SELECT value FROM flannel_meta WHERE key = 'schema_version'"), "1");
  LeaseList list;
  EXPECT_TRUE(IsOk(store->list_leases(&list)));  // its own id: no reset
}

// A file written by a build from before creation revisions: the first open adds the column (no
// version change, so that build can still use the file); its rows read as created 0 (unknown,
// the oldest), renewals keep that, and new leases get their own.
TEST(SqliteReset, AFileFromBeforeCreationRevisionsGetsTheColumnOnOpen) {
  SqliteHarness h;
  Lease old_lease;
  {
    auto store = h.open();
    ASSERT_TRUE(IsOk(store->create_lease(lease_at("10.5.1.0/24"), 60s, &old_lease)));
  }
  for (const char* table : {"flannel_leases", "flannel_events"})
    sql(h.path(), std::string("ALTER TABLE ") + table + " DROP COLUMN created");
  const std::string count_created =
      "SELECT count(*) FROM pragma_table_info('flannel_leases') WHERE name = 'created'";
  ASSERT_EQ(sql(h.path(), count_created), "0");

  auto store = h.open();
  EXPECT_EQ(sql(h.path(), count_created), "1");
  EXPECT_EQ(sql(h.path(),
                "SELECT count(*) FROM pragma_table_info('flannel_events') WHERE name = 'created'"),
            "1");
  EXPECT_EQ(sql(h.path(), "SELECT value FROM flannel_meta WHERE key = 'schema_version'"), "1");
  Lease got, renewed, fresh;
  ASSERT_TRUE(IsOk(store->get_lease(old_lease.key(), &got)));
  EXPECT_EQ(got.created, 0u);
  ASSERT_TRUE(IsOk(store->renew_lease(got, 60s, &renewed)));
  EXPECT_EQ(renewed.created, 0u);
  ASSERT_TRUE(IsOk(store->create_lease(lease_at("10.5.2.0/24"), 60s, &fresh)));
  EXPECT_EQ(fresh.created, fresh.revision);
}

}  // namespace
}  // namespace flannel::testing
