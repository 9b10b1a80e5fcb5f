// One key prefix spelling for every store (stores/key_prefix.h), and SQLite files written by
// older builds under another spelling of the same prefix.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <stdexcept>
#include <string>

#include "stores/key_prefix.h"
#include "tests/stores/contract_util.h"
#include "tests/stores/sqlite/harness.h"

namespace flannel::testing {
namespace {

void exec(const std::string& path, const std::string& statements) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("open " + path);
  char* err = nullptr;
  int rc = sqlite3_exec(db, statements.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  if (rc != SQLITE_OK) throw std::runtime_error(statements + ": " + msg);
}

TEST(KeyPrefix, OneSpellingPerPrefix) {
  for (const char* p :
       {"coreos.com/network", "/coreos.com/network", "/coreos.com/network/",
        "//coreos.com//network", "/coreos.com/./network", "/x/../coreos.com/network"}) {
    EXPECT_EQ(normalize_key_prefix(p), "/coreos.com/network") << p;
  }
  for (const char* p : {"", "/", "//", ".", "/.."}) EXPECT_EQ(normalize_key_prefix(p), "") << p;
  EXPECT_EQ(normalize_key_prefix("a=b"), "/a=b");
}

TEST(SqlitePrefix, SpellingsOfOnePrefixAreOneNamespace) {
  SqliteHarness h;
  SqliteOptions bare = h.options(), slashed = h.options();
  bare.prefix = "coreos.com/network";
  slashed.prefix = "/coreos.com/network/";
  auto a = SqliteStore::open(bare);
  auto b = SqliteStore::open(slashed);
  ASSERT_TRUE(IsOk(a->set_config(R"({"Network":"10.5.0.0/16"})")));
  Lease created;
  ASSERT_TRUE(IsOk(a->create_lease(make_lease("10.5.1.0/24", "192.168.0.1"), 60s, &created)));
  std::string json;
  ASSERT_TRUE(IsOk(b->get_config(&json)));
  EXPECT_EQ(json, R"({"Network":"10.5.0.0/16"})");
  Lease got;
  ASSERT_TRUE(IsOk(h.open()->get_lease(created.subnet, &got)));  // default "/coreos.com/network"
  EXPECT_EQ(got, created);
  EXPECT_EQ(b->describe(), "sqlite " + h.path());  // the default prefix, however spelled
}

TEST(SqlitePrefix, OlderSpellingInAnExistingFileIsFound) {
  SqliteHarness h;
  h.open();  // create the schema
  // As an older build run with -etcd-prefix=coreos.com/network left it.
  exec(h.path(),
       "INSERT INTO flannel_config(prefix, value, revision) "
       "VALUES('coreos.com/network', '{\"Network\":\"10.6.0.0/16\"}', 1);"
       "INSERT INTO flannel_leases(prefix, subnet, value, expiration, revision) "
       "VALUES('coreos.com/network', '10.6.1.0-24', '{\"PublicIP\":\"192.168.0.6\"}', NULL, 2);"
       "UPDATE flannel_meta SET value = 2 WHERE key = 'revision';");
  auto store = h.open();
  std::string json;
  ASSERT_TRUE(IsOk(store->get_config(&json)));
  EXPECT_EQ(json, R"({"Network":"10.6.0.0/16"})");
  LeaseList list;
  ASSERT_TRUE(IsOk(store->list_leases(&list)));
  ASSERT_EQ(list.leases.size(), 1u);
  EXPECT_EQ(list.leases[0].subnet, IP4Net::parse("10.6.1.0/24"));
  // New writes go to the same rows, so an older agent with the old spelling still sees them.
  ASSERT_TRUE(IsOk(store->create_lease(make_lease("10.6.2.0/24", "192.168.0.7"), 60s, nullptr)));
  SqliteOptions old = h.options();
  old.prefix = "coreos.com/network";
  ASSERT_TRUE(IsOk(SqliteStore::open(old)->list_leases(&list)));
  EXPECT_EQ(list.leases.size(), 2u);
}

}  // namespace
}  // namespace flannel::testing
