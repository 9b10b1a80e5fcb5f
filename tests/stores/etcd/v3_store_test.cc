// EtcdV3Store specifics against a real etcd with the v2 API disabled: current flannel's bytes,
// peers' data, malformed entries, expiry, compaction, failover, auth, mTLS, store reset.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "stores/etcd/v3_store.h"
#include "tests/stores/contract_util.h"
#include "tests/stores/etcd/v3_support.h"
#include "tests/support/etcd_server.h"
#include "tests/support/loopback.h"
#include "tests/support/process.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// What current flannel (v0.13+) writes for a vxlan lease, byte for byte.
constexpr char kFlannelValue[] =
    R"({"PublicIP":"10.37.7.195","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VtepMAC":"82:4b:b6:2f:54:4e"}})";

long long ms_since(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t).count();
}

// `ETCDCTL_API=3 etcdctl --endpoints=<server> args...`; exit code, output in *out.
int etcdctl(const EtcdServer& server, const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> argv{"env", "ETCDCTL_API=3", "etcdctl",
                                "--endpoints=" + server.endpoint()};
  if (server.tls()) {
    argv.insert(argv.end(), {"--cacert=" + server.ca_file(), "--cert=" + server.client_cert_file(),
                             "--key=" + server.client_key_file()});
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, out);
}

// Grants a v3 lease directly (as another agent would); returns its id.
int64_t raw_grant(const EtcdServer& server, int ttl) {
  return etcd_v3::get_int(v3_call(server, "/v3/lease/grant", {{"TTL", std::to_string(ttl)}}), "ID");
}

class EtcdV3StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    prefix_ = EtcdServer::unique_prefix(info->name());
    store_ = EtcdV3Store::open(server().client_options(prefix_));
  }
  void TearDown() override { v3_delete_prefix(server(), prefix_); }
  static EtcdServer& server() { return EtcdServer::shared_v3(); }
  std::string key(const std::string& rel) const { return prefix_ + rel; }

  std::string prefix_;
  std::unique_ptr<EtcdV3Store> store_;
};

TEST_F(EtcdV3StoreTest, StoresExactlyWhatCurrentFlannelStores) {
  Lease created;
  ASSERT_TRUE(store_
                  ->create_lease(make_lease("10.5.34.0/24", "10.37.7.195", "vxlan",
                                            R"({"VtepMAC":"82:4b:b6:2f:54:4e"})"),
                                 86400s, &created)
                  .ok());
  auto kv = v3_get(server(), key("/subnets/10.5.34.0-24"));
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->value, kFlannelValue);
  EXPECT_EQ(static_cast<uint64_t>(kv->mod_revision), created.revision);
  ASSERT_NE(kv->lease, 0) << "a lease must be attached to a v3 lease";

  // The TTL as etcdctl shows it: "lease 694d... granted with TTL(86400s), remaining(86399s)".
  char hex[32];
  std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(kv->lease));
  std::string out;
  ASSERT_EQ(etcdctl(server(), {"lease", "timetolive", hex}, &out), 0) << out;
  EXPECT_NE(out.find("granted with TTL(86400s)"), std::string::npos) << out;

  // The key etcdctl lists, and the value it prints.
  ASSERT_EQ(etcdctl(server(), {"get", "--prefix", key("/subnets/")}, &out), 0) << out;
  EXPECT_EQ(out, key("/subnets/10.5.34.0-24") + "\n" + kFlannelValue + "\n");

  // A reservation is a key with no v3 lease.
  Lease reserved;
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.35.0/24", "10.37.7.196"), 0s, &reserved).ok());
  EXPECT_FALSE(reserved.expiration);
  kv = v3_get(server(), key("/subnets/10.5.35.0-24"));
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->lease, 0);
  EXPECT_EQ(kv->value, R"({"PublicIP":"10.37.7.196","PublicIPv6":null})");
}

TEST_F(EtcdV3StoreTest, ReadsWhatCurrentFlannelWrote) {
  // As current flannel: etcdctl-style config, a granted lease and a put with it.
  std::string out;
  ASSERT_EQ(etcdctl(server(), {"put", key("/config"), R"({"Network":"10.5.0.0/16"})"}, &out), 0)
      << out;
  const int64_t id = raw_grant(server(), 86400);
  v3_call(server(), "/v3/kv/put",
          etcd_v3::put_request(key("/subnets/10.5.34.0-24"), kFlannelValue, id, false));

  std::string cfg;
  ASSERT_TRUE(store_->get_config(&cfg).ok());
  EXPECT_EQ(cfg, R"({"Network":"10.5.0.0/16"})");

  LeaseList list;
  ASSERT_TRUE(store_->list_leases(&list).ok());
  ASSERT_EQ(list.leases.size(), 1u);
  const Lease& l = list.leases[0];
  EXPECT_EQ(l.subnet, IP4Net::parse("10.5.34.0/24"));
  EXPECT_EQ(l.attrs.public_ip, IP4::parse("10.37.7.195"));
  EXPECT_EQ(l.attrs.backend_type, "vxlan");
  EXPECT_EQ(l.attrs.backend_data, R"({"VtepMAC":"82:4b:b6:2f:54:4e"})");
  // A peer's lease in a listing: expiring, time not asked for (no timetolive per lease).
  ASSERT_TRUE(l.expiration);
  EXPECT_EQ(*l.expiration, EtcdV3Store::kUnknownExpiry);
  // One lease read asks etcd once.
  Lease got;
  ASSERT_TRUE(store_->get_lease(l.subnet, &got).ok());
  ASSERT_TRUE(got.expiration);
  auto left = std::chrono::duration_cast<std::chrono::seconds>(*got.expiration - Clock::now());
  EXPECT_GT(left.count(), 86390);
  EXPECT_LE(left.count(), 86400);
}

TEST_F(EtcdV3StoreTest, MalformedEntriesAreSkippedWithWarningsAndNeverDeleted) {
  LeaseList before;
  ASSERT_TRUE(store_->list_leases(&before).ok());
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"/subnets/garbage", R"({"PublicIP":"10.0.0.1"})"},
      {"/subnets/10.5.1.0-24", "not json"},
      {"/subnets/10.5.2.0-24", R"({"PublicIP":"not-an-ip"})"},
      // Dual-stack keys are leases, but current flannel's parser takes lowercase hex only.
      {"/subnets/10.5.3.0-24&FC00::-64", R"({"PublicIP":"10.0.0.3","PublicIPv6":"fc00::3"})"},
      {"/subnets/x10.5.4.0-24", R"({"PublicIP":"10.0.0.4"})"},
  };
  for (const auto& [rel, value] : bad) v3_put(server(), key(rel), value);

  LeaseList list;
  ASSERT_TRUE(store_->list_leases(&list).ok());
  EXPECT_TRUE(list.leases.empty());
  EXPECT_EQ(list.warnings.size(), bad.size());

  // A watch over the bad events alone times out with its cursor past them...
  WatchResult w = store_->watch_leases(before.revision, 500ms, {});
  EXPECT_EQ(w.status.code, StoreCode::kTimeout) << w.status.message;
  EXPECT_TRUE(w.events.empty());
  EXPECT_EQ(w.warnings.size(), bad.size());
  EXPECT_EQ(w.revision, list.revision);
  // ... and a good event after them comes through.
  Lease good;
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.9.0/24", "10.0.0.9"), 60s, &good).ok());
  w = store_->watch_leases(before.revision, 2s, {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  ASSERT_EQ(w.events.size(), 1u);
  EXPECT_EQ(w.events[0].lease, good);
  EXPECT_EQ(w.revision, good.revision);
  // Removing a malformed key is skipped too; nothing malformed was ever deleted by us.
  for (const auto& [rel, value] : bad) {
    auto kv = v3_get(server(), key(rel));
    ASSERT_TRUE(kv) << rel << " was deleted";
    EXPECT_EQ(kv->value, value);
  }
}

TEST_F(EtcdV3StoreTest, RenewalAfterTheKeyWasReplacedIsAConflictAndChangesNothing) {
  Lease mine;
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.40.0/24", "10.0.0.40"), 600s, &mine).ok());
  // Another host takes the subnet over the way current flannel renews: an unconditional put.
  const int64_t theirs = raw_grant(server(), 86400);
  const std::string value = R"({"PublicIP":"10.0.0.99","PublicIPv6":null})";
  v3_call(server(), "/v3/kv/put",
          etcd_v3::put_request(key("/subnets/10.5.40.0-24"), value, theirs, false));
  Lease renewed;
  Status s = store_->renew_lease(mine, 600s, &renewed);
  EXPECT_EQ(s.code, StoreCode::kConflict) << s.message;
  auto kv = v3_get(server(), key("/subnets/10.5.40.0-24"));
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->value, value);
  EXPECT_EQ(kv->lease, theirs);
  // Our renewal revoked its fresh lease and left theirs alone (their key is still attached).
  ASSERT_TRUE(store_->delete_lease(mine.subnet).ok());
  EXPECT_EQ(store_->renew_lease(mine, 600s, &renewed).code, StoreCode::kNotFound);
}

TEST_F(EtcdV3StoreTest, RenewalRevokesTheOldLeaseAndKeepsTheKey) {
  Lease first, second;
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.41.0/24", "10.0.0.41"), 600s, &first).ok());
  const int64_t old_id = v3_get(server(), key("/subnets/10.5.41.0-24"))->lease;
  ASSERT_TRUE(store_->renew_lease(first, 900s, &second).ok());
  auto kv = v3_get(server(), key("/subnets/10.5.41.0-24"));
  ASSERT_TRUE(kv);
  EXPECT_NE(kv->lease, old_id);
  EXPECT_EQ(static_cast<uint64_t>(kv->mod_revision), second.revision);
  auto ttl = v3_call(server(), "/v3/lease/timetolive", {{"ID", std::to_string(old_id)}});
  EXPECT_EQ(etcd_v3::get_int(ttl, "TTL"), -1) << "the old v3 lease must be revoked: " << ttl.dump();
  ttl = v3_call(server(), "/v3/lease/timetolive", {{"ID", std::to_string(kv->lease)}});
  EXPECT_GT(etcd_v3::get_int(ttl, "TTL"), 890);
}

TEST_F(EtcdV3StoreTest, ExpiryIsAnExpiredRemovalAndADeleteIsNot) {
  LeaseList start;
  ASSERT_TRUE(store_->list_leases(&start).ok());
  Lease doomed, deleted;
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.50.0/24", "10.0.0.50"), 60s, &deleted).ok());
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.51.0/24", "10.0.0.51"), 1s, &doomed).ok());
  ASSERT_TRUE(store_->delete_lease(deleted.subnet, deleted.revision).ok());
  uint64_t rev = start.revision;
  std::vector<LeaseEvent> seen;
  const auto deadline = SteadyClock::now() + 10s;
  while (SteadyClock::now() < deadline &&
         !(seen.size() >= 4 && seen.back().type == LeaseEventType::kRemoved)) {
    WatchResult w = store_->watch_leases(rev, 1s, {});
    if (w.status.code == StoreCode::kTimeout) continue;
    ASSERT_TRUE(w.status.ok()) << w.status.message;
    for (auto& e : w.events) seen.push_back(e);
    rev = w.revision;
  }
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[2].type, LeaseEventType::kRemoved);
  EXPECT_EQ(seen[2].lease.subnet, deleted.subnet);
  EXPECT_FALSE(seen[2].expired) << "an explicit delete is not an expiry";
  EXPECT_EQ(seen[3].type, LeaseEventType::kRemoved);
  EXPECT_EQ(seen[3].lease.subnet, doomed.subnet);
  EXPECT_TRUE(seen[3].expired);
}

TEST_F(EtcdV3StoreTest, CompactionUnderAWatcherIsHistoryGoneAndAListResyncs) {
  auto watcher = EtcdV3Store::open(server().client_options(prefix_));
  LeaseList start;
  ASSERT_TRUE(watcher->list_leases(&start).ok());
  Lease a;
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.60.0/24", "10.0.0.60"), 60s, &a).ok());
  ASSERT_TRUE(store_->delete_lease(a.subnet).ok());
  Lease b;
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.61.0/24", "10.0.0.61"), 60s, &b).ok());
  std::string out;
  ASSERT_EQ(etcdctl(server(), {"compact", std::to_string(v3_revision(server()))}, &out), 0) << out;

  WatchResult w = watcher->watch_leases(start.revision, 2s, {});
  ASSERT_EQ(w.status.code, StoreCode::kHistoryGone) << w.status.message;
  EXPECT_NE(w.status.message.find("compacted"), std::string::npos) << w.status.message;
  LeaseList fresh;
  ASSERT_TRUE(watcher->list_leases(&fresh).ok());
  ASSERT_EQ(fresh.leases.size(), 1u);
  EXPECT_EQ(fresh.leases[0].subnet, b.subnet);
  Lease c;
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.62.0/24", "10.0.0.62"), 60s, &c).ok());
  w = watcher->watch_leases(fresh.revision, 2s, {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  ASSERT_EQ(w.events.size(), 1u);
  EXPECT_EQ(w.events[0].lease.subnet, c.subnet);
}

// Answers of concurrent requests arrive in any order, so a lower revision than one already seen
// is normal on a busy Store; it must never be taken for a store reset.
TEST_F(EtcdV3StoreTest, ConcurrentRequestsOfOneStoreAreNotAReset) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  std::string first_failure;
  std::mutex mu;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        Lease l = make_lease("10.6." + std::to_string(t * 40 + i) + ".0/24", "10.0.0.1");
        Lease out;
        Status s = store_->create_lease(l, 60s, &out);
        LeaseList list;
        if (s.ok() && (i % 8) == 0) s = store_->list_leases(&list);
        if (!s.ok() && failures++ == 0) {
          std::lock_guard lock(mu);
          first_failure = s.message;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;
}

TEST_F(EtcdV3StoreTest, DeadFirstEndpointFailsOverQuickly) {
  EtcdOptions o = server().client_options(prefix_);
  o.endpoints = {"http://127.0.0.1:" + std::to_string(EtcdServer::free_port()),
                 server().endpoint()};
  auto store = EtcdV3Store::open(o);
  const auto t0 = SteadyClock::now();
  Lease created;
  ASSERT_TRUE(store->create_lease(make_lease("10.5.70.0/24", "10.0.0.70"), 60s, &created).ok());
  LeaseList list;
  ASSERT_TRUE(store->list_leases(&list).ok());
  EXPECT_EQ(list.leases.size(), 1u);
  WatchResult w = store->watch_leases(created.revision - 1, 2s, {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  EXPECT_LT(ms_since(t0), 2000);
}

TEST_F(EtcdV3StoreTest, HungEndpointTimesOutAndOnlySafeRequestsFailOver) {
  SilentServer hung;
  EtcdOptions o = server().client_options(prefix_);
  o.endpoints = {hung.url(), server().endpoint()};
  o.request_timeout = 300ms;
  ASSERT_TRUE(store_->set_config("{}").ok());
  {
    auto store = EtcdV3Store::open(o);
    const auto t0 = SteadyClock::now();
    std::string cfg;
    Status s = store->get_config(&cfg);  // a range may be retried on the next endpoint
    ASSERT_TRUE(s.ok()) << s.message;
    EXPECT_GE(ms_since(t0), 290);
    EXPECT_LT(ms_since(t0), 1500);
  }
  {
    // The grant fails over and pins the live endpoint, so the txn that follows goes there.
    auto store = EtcdV3Store::open(o);
    const auto t0 = SteadyClock::now();
    Lease created;
    Status s = store->create_lease(make_lease("10.5.71.0/24", "10.0.0.71"), 60s, &created);
    ASSERT_TRUE(s.ok()) << s.message;
    EXPECT_GE(ms_since(t0), 290);
    EXPECT_LT(ms_since(t0), 1500);
  }
  {
    // A one-shot delete that reached the hung server is not replayed on the live one.
    auto store = EtcdV3Store::open(o);
    const auto t0 = SteadyClock::now();
    Status s = store->delete_lease(IP4Net::parse("10.5.71.0/24"));
    EXPECT_EQ(s.code, StoreCode::kUnavailable) << s.message;
    EXPECT_NE(s.message.find("may have been applied"), std::string::npos) << s.message;
    EXPECT_LT(ms_since(t0), 1500);
    Lease still;
    EXPECT_TRUE(store_->get_lease(IP4Net::parse("10.5.71.0/24"), &still).ok());
  }
  {
    // The watch stream gets no headers from the hung server and moves to the live one.
    Lease created;
    ASSERT_TRUE(store_->create_lease(make_lease("10.5.72.0/24", "10.0.0.72"), 60s, &created).ok());
    auto store = EtcdV3Store::open(o);
    const auto t0 = SteadyClock::now();
    WatchResult w = store->watch_leases(created.revision - 1, 5s, {});
    ASSERT_TRUE(w.status.ok()) << w.status.message;
    ASSERT_EQ(w.events.size(), 1u);
    EXPECT_EQ(w.events[0].lease.subnet, created.subnet);
    EXPECT_GE(ms_since(t0), 290);
    EXPECT_LT(ms_since(t0), 1500);
  }
  {
    // Only hung endpoints: both unary and watch give up within their timeouts.
    SilentServer hung2;
    o.endpoints = {hung.url(), hung2.url()};
    auto store = EtcdV3Store::open(o);
    auto t0 = SteadyClock::now();
    LeaseList list;
    EXPECT_EQ(store->list_leases(&list).code, StoreCode::kUnavailable);
    EXPECT_LT(ms_since(t0), 1500);
    t0 = SteadyClock::now();
    WatchResult w = store->watch_leases(1, 5s, {});
    EXPECT_EQ(w.status.code, StoreCode::kUnavailable) << w.status.message;
    EXPECT_LT(ms_since(t0), 1500);
  }
}

TEST(EtcdV3Auth, UserWithARoleWorksAndWrongCredentialsAreAClearError) {
  EtcdServer server(EtcdServer::Options{.enable_v2 = false});  // own etcd: auth goes on
  std::string out;
  auto ctl = [&](std::vector<std::string> args) { return etcdctl(server, args, &out); };
  ASSERT_EQ(ctl({"user", "add", "root", "--new-user-password=pw"}), 0) << out;
  ASSERT_EQ(ctl({"user", "add", "flannel", "--new-user-password=s3cr3t"}), 0) << out;
  ASSERT_EQ(ctl({"role", "add", "net"}), 0) << out;
  ASSERT_EQ(ctl({"role", "grant-permission", "net", "--prefix=true", "readwrite", "/net/"}), 0)
      << out;
  ASSERT_EQ(ctl({"user", "grant-role", "flannel", "net"}), 0) << out;
  ASSERT_EQ(ctl({"auth", "enable"}), 0) << out;

  EtcdOptions o = server.client_options("/net");
  o.username = "flannel";
  o.password = "s3cr3t";
  auto store = EtcdV3Store::open(o);
  ASSERT_TRUE(store->set_config(R"({"Network":"10.5.0.0/16"})").ok());
  LeaseList start;
  ASSERT_TRUE(store->list_leases(&start).ok());
  Lease created, renewed;
  Status s = store->create_lease(make_lease("10.5.30.0/24", "10.0.0.30"), 60s, &created);
  ASSERT_TRUE(s.ok()) << s.message;
  s = store->renew_lease(created, 60s, &renewed);
  ASSERT_TRUE(s.ok()) << s.message;
  WatchResult w = store->watch_leases(start.revision, 2s, {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  EXPECT_EQ(w.events.size(), 2u);  // the create and the renewal, replayed in one response

  o.password = "wrong";
  LeaseList list;
  s = EtcdV3Store::open(o)->list_leases(&list);
  EXPECT_EQ(s.code, StoreCode::kUnavailable);
  EXPECT_NE(s.message.find("-etcd-username"), std::string::npos) << s.message;
  o.username.clear();
  o.password.clear();
  s = EtcdV3Store::open(o)->list_leases(&list);
  EXPECT_EQ(s.code, StoreCode::kUnavailable) << s.message;
  EXPECT_NE(s.message.find("-etcd-username"), std::string::npos) << s.message;
  // A user without a role on the prefix is refused too.
  ASSERT_EQ(
      etcdctl(server, {"--user=root:pw", "user", "add", "nobody", "--new-user-password=x"}, &out),
      0)
      << out;
  o.username = "nobody";
  o.password = "x";
  s = EtcdV3Store::open(o)->list_leases(&list);
  EXPECT_EQ(s.code, StoreCode::kUnavailable) << s.message;
}

TEST(EtcdV3Tls, MutualTlsWorksAndAMissingClientCertificateIsAClearError) {
  EtcdServer& server = EtcdServer::shared_v3_tls();
  const std::string prefix = EtcdServer::unique_prefix("tls");
  auto store = EtcdV3Store::open(server.client_options(prefix));
  Lease created;
  ASSERT_TRUE(store->create_lease(make_lease("10.5.80.0/24", "10.0.0.80"), 60s, &created).ok());
  WatchResult w = store->watch_leases(created.revision - 1, 2s, {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  ASSERT_TRUE(store->delete_lease(created.subnet).ok());

  EtcdOptions o = server.client_options(prefix);
  o.certfile.clear();
  o.keyfile.clear();
  LeaseList list;
  Status s = EtcdV3Store::open(o)->list_leases(&list);
  EXPECT_EQ(s.code, StoreCode::kUnavailable);
  EXPECT_NE(s.message.find("client certificate"), std::string::npos) << s.message;
}

// Store reset, without wiping an etcd: the first endpoint is one cluster, the second another
// one with fewer revisions. When the first dies the store fails over to a different cluster.
TEST(EtcdV3Reset, AnswerFromAnotherClusterIsAResetReportedOnce) {
  EtcdServer first(EtcdServer::Options{.enable_v2 = false});
  EtcdServer second(EtcdServer::Options{.enable_v2 = false});
  const std::string prefix = "/coreos.com/network";
  for (int i = 0; i < 20; ++i) v3_put(first, prefix + "/filler", std::to_string(i));
  v3_put(first, prefix + "/config", "{}");
  v3_put(second, prefix + "/config", "{}");
  ASSERT_GT(v3_revision(first), v3_revision(second));

  EtcdOptions o = first.client_options(prefix);
  o.endpoints = {first.endpoint(), second.endpoint()};
  auto store = EtcdV3Store::open(o);
  std::string cfg;
  ASSERT_TRUE(store->get_config(&cfg).ok());
  LeaseList list;
  ASSERT_TRUE(store->list_leases(&list).ok());
  first.stop();
  Status s = store->get_config(&cfg);
  EXPECT_EQ(s.code, StoreCode::kStoreReset) << s.message;
  EXPECT_NE(s.message.find("cluster id changed"), std::string::npos) << s.message;
  // Re-based: later calls work and report nothing again.
  ASSERT_TRUE(store->get_config(&cfg).ok());
  ASSERT_TRUE(store->list_leases(&list).ok());
  Lease created;
  ASSERT_TRUE(store->create_lease(make_lease("10.5.90.0/24", "10.0.0.90"), 60s, &created).ok());
  WatchResult w = store->watch_leases(list.revision, 2s, {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
}

// A watch that waits for a revision beyond the new cluster's is a reset too (the watch's own
// header carries the lower revision).
TEST(EtcdV3Reset, WatchAfterFailoverToALowerRevisionClusterIsAReset) {
  EtcdServer first(EtcdServer::Options{.enable_v2 = false});
  EtcdServer second(EtcdServer::Options{.enable_v2 = false});
  const std::string prefix = "/coreos.com/network";
  for (int i = 0; i < 20; ++i) v3_put(first, prefix + "/filler", std::to_string(i));
  EtcdOptions o = first.client_options(prefix);
  o.endpoints = {first.endpoint(), second.endpoint()};
  auto store = EtcdV3Store::open(o);
  LeaseList list;
  ASSERT_TRUE(store->list_leases(&list).ok());
  first.stop();
  WatchResult w = store->watch_leases(list.revision, 2s, {});
  EXPECT_EQ(w.status.code, StoreCode::kStoreReset) << w.status.message;
  ASSERT_TRUE(store->list_leases(&list).ok());
  w = store->watch_leases(list.revision, 300ms, {});
  EXPECT_EQ(w.status.code, StoreCode::kTimeout) << w.status.message;
}

}  // namespace
}  // namespace flannel::testing
