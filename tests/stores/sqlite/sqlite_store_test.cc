// SQLite-specific behaviour, beyond the shared contract: refusing files that are not ours,
// cross-process notification latency, malformed rows written by hand, and TTL filtering.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/stores/sqlite/harness.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// A plain sqlite3 connection for poking at the file the way a careless admin would.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
      throw std::runtime_error("raw open " + path + ": " + sqlite3_errmsg(db_));
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error("raw exec '" + sql + "': " + msg);
    }
  }
  // The first column of the first row as text ("" if none).
  std::string scalar(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error("raw prepare '" + sql + "': " + sqlite3_errmsg(db_));
    }
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0)) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Opening must throw std::runtime_error whose message contains every one of `parts`.
void expect_open_refused(const SqliteOptions& options, const std::vector<std::string>& parts) {
  try {
    SqliteStore::open(options);
    ADD_FAILURE() << "open(" << options.path << ") succeeded";
  } catch (const std::runtime_error& e) {
    for (const auto& part : parts) EXPECT_TRUE(Contains(e.what(), part));
  }
}

Lease make_lease(const char* subnet, const char* public_ip) {
  Lease l;
  l.subnet = IP4Net::parse(subnet);
  l.attrs.public_ip = IP4::parse(public_ip);
  return l;
}

const std::string kPrefix = "/coreos.com/network";

// Writes a lease row and its create event by hand, as the store would, but with any value.
void insert_raw_lease(RawDb& raw, const std::string& key, const std::string& value) {
  raw.exec("BEGIN IMMEDIATE");
  raw.exec("UPDATE flannel_meta SET value = value + 1 WHERE key = 'revision'");
  const std::string rev = raw.scalar("SELECT value FROM flannel_meta WHERE key = 'revision'");
  raw.exec("INSERT INTO flannel_leases(prefix, subnet, value, expiration, revision) VALUES('" +
           kPrefix + "', '" + key + "', '" + value + "', NULL, " + rev + ")");
  raw.exec(
      "INSERT INTO flannel_events(revision, prefix, subnet, action, value, expiration) VALUES(" +
      rev + ", '" + kPrefix + "', '" + key + "', 'create', '" + value + "', NULL)");
  raw.exec("COMMIT");
}

TEST(SqliteStore, RefusesAFileThatIsNotSqlite) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("notes.txt");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "this is somebody's text file, not a database\n";
  std::ofstream(o.path) << text;

  expect_open_refused(o, {o.path, "not an SQLite database", "refusing"});
  EXPECT_EQ(read_file(o.path), text) << "a refused file must not be modified";
  EXPECT_FALSE(exists(o.path + "-wal"));
}

TEST(SqliteStore, RefusesAnSqliteFileOfSomethingElse) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("other.db");
  {
    RawDb raw(o.path);
    raw.exec("CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT)");
    raw.exec("INSERT INTO accounts(name) VALUES('alice')");
  }
  const std::string before = read_file(o.path);

  expect_open_refused(o, {o.path, "not a flannel store", "no flannel_meta table"});
  EXPECT_EQ(read_file(o.path), before) << "a refused file must not be modified";
  RawDb raw(o.path);
  EXPECT_EQ(raw.scalar("PRAGMA journal_mode"), "delete") << "must not switch a foreign file to WAL";
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM sqlite_master WHERE name LIKE 'flannel%'"), "0");
}

TEST(SqliteStore, RefusesANewerSchema) {
  SqliteHarness h;
  {
    auto store = h.open();
    Lease created;
    ASSERT_TRUE(store->create_lease(make_lease("10.5.1.0/24", "192.168.0.1"), 0s, &created).ok());
  }
  RawDb(h.path()).exec("UPDATE flannel_meta SET value = 99 WHERE key = 'schema_version'");
  expect_open_refused(h.options(), {h.path(), "newer", "99", "supports up to 1"});
}

TEST(SqliteStore, RefusesAnUnusablePath) {
  SqliteOptions o;
  o.path = "/nonexistent-flannel-dir/sub/store.db";
  expect_open_refused(o, {o.path, "cannot open"});
  o.path = "";
  expect_open_refused(o, {"sqlite:PATH"});
}

// The store holds the config (a WireGuard PSK included): a new file and its -wal/-shm are 0600
// whatever the umask; an existing file keeps the mode its owner gave it.
TEST(SqliteStore, ANewStoreFileIsPrivateAndAnExistingOneKeepsItsMode) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("new.db");
  const mode_t old_umask = ::umask(022);
  {
    auto store = SqliteStore::open(o);
    ASSERT_TRUE(store->set_config(R"({"Network":"10.5.0.0/16"})").ok());
    for (const std::string& f : {o.path, o.path + "-wal", o.path + "-shm"}) {
      struct stat st {};
      ASSERT_EQ(::stat(f.c_str(), &st), 0) << f;
      EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
    }
  }
  SqliteOptions shared;
  shared.path = dir.file("shared.db");
  std::ofstream(shared.path).close();
  ::chmod(shared.path.c_str(), 0640);
  {
    auto store = SqliteStore::open(shared);
    ASSERT_TRUE(store->set_config(R"({"Network":"10.5.0.0/16"})").ok());
  }
  ::umask(old_umask);
  struct stat st {};
  ASSERT_EQ(::stat(shared.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST(SqliteStore, EmptyFileIsInitializedAndReopenKeepsData) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("empty.db");
  std::ofstream(o.path).close();  // zero bytes: a new database as far as SQLite is concerned
  Lease created;
  {
    auto store = SqliteStore::open(o);
    EXPECT_EQ(store->describe(), "sqlite " + o.path);
    ASSERT_TRUE(store->set_config(R"({"Network":"10.5.0.0/16"})").ok());
    ASSERT_TRUE(store->create_lease(make_lease("10.5.1.0/24", "192.168.0.1"), 0s, &created).ok());
  }
  auto store = SqliteStore::open(o);
  Lease got;
  ASSERT_TRUE(store->get_lease(created.subnet, &got).ok());
  EXPECT_EQ(got, created);
  std::string config;
  ASSERT_TRUE(store->get_config(&config).ok());
  EXPECT_EQ(config, R"({"Network":"10.5.0.0/16"})");
  EXPECT_EQ(RawDb(o.path).scalar("PRAGMA journal_mode"), "wal");
}

TEST(SqliteStore, ManyProcessesCreatingTheSameNewFile) {
  TempDir dir;
  SqliteOptions o;
  o.path = dir.file("race.db");
  constexpr int kProcs = 16;
  std::fflush(nullptr);
  std::vector<pid_t> pids;
  for (int i = 0; i < kProcs; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int code = 0;
      try {
        auto store = SqliteStore::open(o);
        Lease l = make_lease("10.7.0.0/24", "192.168.0.1");
        l.subnet.ip.value += static_cast<uint32_t>(i) << 8;
        Lease created;
        Status s = store->create_lease(l, 0s, &created);
        if (!s.ok()) {
          std::fprintf(stderr, "child %d: %s\n", i, s.message.c_str());
          code = 2;
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", i, e.what());
        code = 3;
      }
      _exit(code);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
  }
  LeaseList list;
  ASSERT_TRUE(SqliteStore::open(o)->list_leases(&list).ok());
  EXPECT_EQ(list.leases.size(), static_cast<size_t>(kProcs));
}

// Each event from another process wakes the watch through the file change notification: the
// median from the writer's commit to the watch's answer is within 5 ms (a watch polling every
// 20 ms would average 10), and none waits for the watch's 5 s timeout or its 1 s safety check.
TEST(SqliteStore, EventsFromAnotherProcessWakeTheWatchAtOnce) {
  SqliteHarness h;
  h.open();  // create the file; no connection stays open across fork()
  constexpr int kWrites = 10;
  int go[2], done[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(done), 0);
  std::fflush(nullptr);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Writer: on each go byte, create one lease and report when the commit returned
    // (steady_clock is CLOCK_MONOTONIC, comparable across processes).
    close(go[1]);
    close(done[0]);
    int code = 0;
    try {
      auto store = h.open();
      for (int i = 0; i < kWrites; ++i) {
        char c;
        if (read(go[0], &c, 1) != 1) break;
        Lease l = make_lease("10.8.0.0/24", "192.168.0.1");
        l.subnet.ip.value += static_cast<uint32_t>(i) << 8;
        Lease created;
        Status s = store->create_lease(l, 60s, &created);
        if (!s.ok()) {
          std::fprintf(stderr, "writer: %s\n", s.message.c_str());
          code = 2;
        }
        int64_t t = SteadyClock::now().time_since_epoch().count();
        if (write(done[1], &t, sizeof t) != sizeof t) code = 3;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "writer: %s\n", e.what());
      code = 4;
    }
    _exit(code);
  }
  close(go[0]);
  close(done[1]);
  // However the test ends: closing `go` makes the writer exit; then reap it.
  int writer_status = -1;
  struct Reap {
    // A constructor, not aggregate init: Clang 14 has no parenthesized aggregate init (emplace).
    Reap(int& go, int done, pid_t child, int& child_status)
        : go_fd(go), done_fd(done), pid(child), status(child_status) {}
    int& go_fd;
    int done_fd;
    pid_t pid;
    int& status;
    ~Reap() {
      if (go_fd >= 0) close(go_fd);
      close(done_fd);
      waitpid(pid, &status, 0);
    }
  };
  std::optional<Reap> reap;
  reap.emplace(go[1], done[0], pid, writer_status);
  auto watcher = h.open();
  LeaseList start;
  ASSERT_TRUE(watcher->list_leases(&start).ok());

  ASSERT_TRUE(watcher->watch_notified()) << "no inotify on this machine?";
  uint64_t rev = start.revision;
  std::chrono::nanoseconds worst{0};
  std::vector<std::chrono::nanoseconds> latencies;
  for (int i = 0; i < kWrites; ++i) {
    // The write should land while the watch is blocked (one that came first would be found at
    // once, even by a watcher that waits out its timeout). Not synchronisation: a SQLite watch
    // has no "is blocked" to await, and a write that comes too early only weakens this round.
    std::jthread signal([&] {
      std::this_thread::sleep_for(30ms);
      EXPECT_EQ(write(go[1], "g", 1), 1);
    });
    WatchResult r = watcher->watch_leases(rev, 5s, std::stop_token{});
    const auto received = SteadyClock::now();
    ASSERT_TRUE(r.status.ok()) << r.status.message;
    ASSERT_EQ(r.events.size(), 1u);
    rev = r.revision;
    int64_t committed_ns = 0;
    ASSERT_EQ(read(done[0], &committed_ns, sizeof committed_ns),
              static_cast<ssize_t>(sizeof committed_ns));
    auto latency = received - SteadyClock::time_point(SteadyClock::duration(committed_ns));
    latencies.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(latency));
    worst = std::max(worst, latencies.back());
  }
  reap.reset();
  EXPECT_TRUE(WIFEXITED(writer_status) && WEXITSTATUS(writer_status) == 0)
      << "writer status " << writer_status;
  EXPECT_LT(worst, 500ms) << "worst cross-process latency "
                          << std::chrono::duration_cast<std::chrono::milliseconds>(worst).count()
                          << " ms";
  std::sort(latencies.begin(), latencies.end());
  const auto median = latencies[latencies.size() / 2];
  std::printf("commit -> watch answer across processes: median %.2f ms, worst %.2f ms\n",
              median.count() / 1e6, worst.count() / 1e6);
  EXPECT_LE(median, 5ms);
}

TEST(SqliteStore, MalformedRowsAreSkippedWithWarningsAndKept) {
  SqliteHarness h;
  auto store = h.open();
  LeaseList start;
  ASSERT_TRUE(store->list_leases(&start).ok());
  Lease good;
  ASSERT_TRUE(store->create_lease(make_lease("10.9.1.0/24", "192.168.0.1"), 0s, &good).ok());
  {
    RawDb raw(h.path());
    insert_raw_lease(raw, "10.9.2.0-24", "{not json");
    insert_raw_lease(raw, "10.9.3.0-24", R"({"PublicIP":"not-an-ip"})");
    insert_raw_lease(raw, "garbage-key", R"({"PublicIP":"192.168.0.4"})");
  }

  LeaseList list;
  ASSERT_TRUE(store->list_leases(&list).ok());
  ASSERT_EQ(list.leases.size(), 1u);
  EXPECT_EQ(list.leases[0], good);
  ASSERT_EQ(list.warnings.size(), 3u);
  std::string all;
  for (const auto& w : list.warnings) all += w + "\n";
  EXPECT_TRUE(Contains(all, "10.9.2.0-24"));
  EXPECT_TRUE(Contains(all, "10.9.3.0-24"));
  EXPECT_TRUE(Contains(all, "garbage-key"));

  Lease got;
  Status s = store->get_lease(IP4Net::parse("10.9.2.0/24"), &got);
  EXPECT_EQ(s.code, StoreCode::kInvalid) << s.message;
  EXPECT_TRUE(Contains(s.message, "10.9.2.0-24"));

  // Watch: the good create comes through, the bad ones are reported and passed over.
  WatchResult r = store->watch_leases(start.revision, 2s, std::stop_token{});
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].lease, good);
  EXPECT_EQ(r.warnings.size(), 3u);
  EXPECT_EQ(r.revision, list.revision) << "the watch must advance past the malformed events";

  // A watch whose only news is malformed does not stall: it times out past them.
  uint64_t before_bad = r.revision;
  {
    RawDb raw(h.path());
    insert_raw_lease(raw, "10.9.5.0-24", "[1,2,3]");
  }
  r = store->watch_leases(before_bad, 300ms, std::stop_token{});
  EXPECT_EQ(r.status.code, StoreCode::kTimeout);
  EXPECT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.revision, before_bad + 1);

  // Skipped, never deleted.
  RawDb raw(h.path());
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM flannel_leases"), "5");
}

TEST(SqliteStore, ExpiredLeaseIsNeverVisibleEvenBeforeTheSweep) {
  SqliteHarness h;
  auto store = h.open();
  Lease created;
  ASSERT_TRUE(store->create_lease(make_lease("10.10.1.0/24", "192.168.0.1"), 600s, &created).ok());
  LeaseList start;
  ASSERT_TRUE(store->list_leases(&start).ok());

  RawDb raw(h.path());
  const auto past =
      std::chrono::duration_cast<std::chrono::milliseconds>((Clock::now() - 5s).time_since_epoch())
          .count();
  raw.exec("UPDATE flannel_leases SET expiration = " + std::to_string(past));
  // Hold the write lock so nobody can sweep: reads must still hide the lease, and not block.
  raw.exec("BEGIN IMMEDIATE");
  const auto t0 = SteadyClock::now();
  LeaseList list;
  ASSERT_TRUE(store->list_leases(&list).ok());
  EXPECT_TRUE(list.leases.empty());
  Lease got;
  EXPECT_EQ(store->get_lease(created.subnet, &got).code, StoreCode::kNotFound);
  EXPECT_LT(SteadyClock::now() - t0, 1s) << "reads must not wait for the writer's lock";
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM flannel_leases"), "1") << "not swept yet";
  raw.exec("COMMIT");

  // Once the lock is free the expiry is recorded, and a watcher sees it.
  uint64_t rev = start.revision;
  WatchResult r = store->watch_leases(rev, 2s, std::stop_token{});
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].type, LeaseEventType::kRemoved);
  EXPECT_TRUE(r.events[0].expired);
  EXPECT_EQ(r.events[0].lease.subnet, created.subnet);
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM flannel_leases"), "0");
}

TEST(SqliteStore, InvalidBackendDataIsAnErrorNotACrash) {
  SqliteHarness h;
  auto store = h.open();
  Lease bad = make_lease("10.12.1.0/24", "192.168.0.1");
  bad.attrs.backend_type = "vxlan";
  bad.attrs.backend_data = "{not json";
  Lease created;
  Status s = store->create_lease(bad, 60s, &created);
  EXPECT_EQ(s.code, StoreCode::kInvalid) << s.message;
  EXPECT_TRUE(Contains(s.message, "BackendData"));

  // Valid but loosely formatted JSON is stored compact, and *created says so.
  bad.attrs.backend_data = R"({ "VtepMAC" : "82:4b:b6:2f:54:4e" })";
  ASSERT_TRUE(store->create_lease(bad, 60s, &created).ok());
  EXPECT_EQ(created.attrs.backend_data, R"({"VtepMAC":"82:4b:b6:2f:54:4e"})");
  Lease got;
  ASSERT_TRUE(store->get_lease(bad.subnet, &got).ok());
  EXPECT_EQ(got, created);
}

TEST(SqliteStore, PrefixesInOneFileAreSeparate) {
  SqliteHarness h;
  SqliteOptions other = h.options();
  other.prefix = "/example.com/network/";  // trailing slash: same as without
  auto a = h.open();
  auto b = SqliteStore::open(other);
  EXPECT_EQ(b->describe(), "sqlite " + h.path() + " prefix /example.com/network");

  LeaseList start;
  ASSERT_TRUE(b->list_leases(&start).ok());
  Lease created;
  ASSERT_TRUE(a->create_lease(make_lease("10.11.1.0/24", "192.168.0.1"), 0s, &created).ok());
  ASSERT_TRUE(a->set_config(R"({"Network":"10.11.0.0/16"})").ok());
  std::string config;
  EXPECT_EQ(b->get_config(&config).code, StoreCode::kNotFound);
  LeaseList list;
  ASSERT_TRUE(b->list_leases(&list).ok());
  EXPECT_TRUE(list.leases.empty());
  WatchResult r = b->watch_leases(start.revision, 200ms, std::stop_token{});
  EXPECT_EQ(r.status.code, StoreCode::kTimeout);
  EXPECT_EQ(r.revision, created.revision + 1) << "other prefixes' events are passed over";

  auto b2 = SqliteStore::open(other);
  ASSERT_TRUE(b2->create_lease(make_lease("10.11.1.0/24", "192.168.0.2"), 0s, &created).ok())
      << "the same subnet is free under another prefix";
}

}  // namespace
}  // namespace flannel::testing
