// EtcdV2Store against a real etcd: wire compatibility with flannel v0.11 agents, TLS, failover,
// timeouts, cancellation, malformed data and the event-history limit.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "stores/etcd/v2_store.h"
#include "tests/stores/contract_util.h"
#include "tests/support/etcd_server.h"
#include "tests/support/loopback.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

constexpr char kVxlanValue[] =
    R"({"PublicIP":"10.37.7.195","BackendType":"vxlan","BackendData":{"VtepMAC":"82:4b:b6:2f:54:4e"}})";

std::string form_escape(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

long long ms_since(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t).count();
}

// A loopback TCP port that refuses connections: bound, never listened on, closed.
int closed_port() { return EtcdServer::free_port(); }

class EtcdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    prefix_ = EtcdServer::unique_prefix(info->name());
    store_ = EtcdV2Store::open(server().client_options(prefix_));
  }
  void TearDown() override { server().raw("DELETE", "/v2/keys" + prefix_ + "?recursive=true"); }

  static EtcdServer& server() { return EtcdServer::shared(); }
  std::string keys(const std::string& rel) const { return "/v2/keys" + prefix_ + rel; }

  // Writes a key the way another agent would (plain HTTP PUT), returns its modifiedIndex.
  uint64_t raw_put(const std::string& rel, const std::string& value, int ttl = 0,
                   const std::string& query = "") {
    std::string body =
        (ttl ? "ttl=" + std::to_string(ttl) + "&" : "") + "value=" + form_escape(value);
    auto r = server().raw("PUT", keys(rel) + query, body);
    EXPECT_TRUE(r.status == 200 || r.status == 201) << r.status << " " << r.body << r.error;
    return json::parse(r.body)["node"]["modifiedIndex"].get<uint64_t>();
  }
  json raw_get(const std::string& rel) {
    auto r = server().raw("GET", keys(rel));
    EXPECT_EQ(r.status, 200) << r.body << r.error;
    return json::parse(r.body, nullptr, false);
  }

  // The v2 watch requests etcd has taken so far. A counter: it never goes down, so a watch that
  // an earlier test left behind cannot fool watch_reached_etcd() as a count of watchers could.
  static double watch_requests() {
    return server().metric("etcd_debugging_store_watch_requests_total");
  }
  // Waits until a watch started after watch_requests() returned `before` is in etcd. etcd counts
  // a watch request and registers the watcher under its store lock, which every write takes:
  // from here on, a write is an event that watch receives, and a cancel ends a blocked poll.
  static bool watch_reached_etcd(double before) {
    return wait_until([&] { return watch_requests() > before; }, 10s);
  }

  std::string prefix_;
  std::unique_ptr<EtcdV2Store> store_;
};

// ---- Wire compatibility ------------------------------------------------------------------------

TEST_F(EtcdStoreTest, CreateWritesExactlyWhatFlannelWrites) {
  Lease lease =
      make_lease("10.5.34.0/24", "10.37.7.195", "vxlan", R"({"VtepMAC":"82:4b:b6:2f:54:4e"})");
  Lease created;
  auto before = Clock::now();
  ASSERT_TRUE(store_->create_lease(lease, 86400s, &created).ok());

  json got = raw_get("/subnets/10.5.34.0-24");
  const json& node = got["node"];
  EXPECT_EQ(got["action"], "get");
  EXPECT_EQ(node["key"], prefix_ + "/subnets/10.5.34.0-24");
  EXPECT_EQ(node["value"], kVxlanValue);  // byte for byte
  EXPECT_GT(node["ttl"].get<int>(), 86390);
  EXPECT_LE(node["ttl"].get<int>(), 86400);
  EXPECT_EQ(created.revision, node["modifiedIndex"].get<uint64_t>());
  ASSERT_TRUE(created.expiration.has_value());
  EXPECT_GE(*created.expiration, before + 86399s);
  EXPECT_LE(*created.expiration, Clock::now() + 86401s);
  EXPECT_EQ(created.attrs, lease.attrs);
  EXPECT_EQ(created.subnet, lease.subnet);
}

TEST_F(EtcdStoreTest, ReservationHasNoTtl) {
  Lease created;
  ASSERT_TRUE(
      store_->create_lease(make_lease("10.5.7.0/24", "10.0.0.7", "host-gw"), 0s, &created).ok());
  json node = raw_get("/subnets/10.5.7.0-24")["node"];
  EXPECT_FALSE(node.contains("ttl"));
  EXPECT_FALSE(node.contains("expiration"));
  EXPECT_EQ(node["value"], R"({"PublicIP":"10.0.0.7","BackendType":"host-gw"})");
  EXPECT_FALSE(created.expiration.has_value());
}

TEST_F(EtcdStoreTest, ReadsLeasesWrittenByAnOldAgent) {
  LeaseList empty;
  ASSERT_TRUE(store_->list_leases(&empty).ok());  // error 100: empty list, index from the error
  EXPECT_TRUE(empty.leases.empty());
  EXPECT_GT(empty.revision, 0u);

  uint64_t i1 = raw_put("/subnets/10.5.34.0-24", kVxlanValue, 86400, "?prevExist=false");
  uint64_t i2 = raw_put("/subnets/10.5.35.0-24", R"({"PublicIP":"10.37.7.196"})", 86400);
  LeaseList list;
  ASSERT_TRUE(store_->list_leases(&list).ok());
  ASSERT_EQ(list.leases.size(), 2u);
  EXPECT_TRUE(list.warnings.empty());
  EXPECT_GE(list.revision, i2);
  std::sort(list.leases.begin(), list.leases.end(),
            [](const Lease& a, const Lease& b) { return a.subnet < b.subnet; });
  EXPECT_EQ(list.leases[0].subnet.str(), "10.5.34.0/24");
  EXPECT_EQ(list.leases[0].attrs.public_ip.str(), "10.37.7.195");
  EXPECT_EQ(list.leases[0].attrs.backend_type, "vxlan");
  EXPECT_EQ(list.leases[0].attrs.backend_data, R"({"VtepMAC":"82:4b:b6:2f:54:4e"})");
  EXPECT_EQ(list.leases[0].revision, i1);
  EXPECT_TRUE(list.leases[0].expiration.has_value());
  EXPECT_EQ(list.leases[1].attrs.backend_type, "");  // udp writes no BackendType
  EXPECT_EQ(list.leases[1].revision, i2);

  Lease one;
  ASSERT_TRUE(store_->get_lease(IP4Net::parse("10.5.34.0/24"), &one).ok());
  EXPECT_EQ(one, list.leases[0]);

  // And it renews them with a CAS on the old agent's modifiedIndex.
  Lease renewed;
  ASSERT_TRUE(store_->renew_lease(one, 600s, &renewed).ok());
  EXPECT_GT(renewed.revision, one.revision);
  EXPECT_EQ(raw_get("/subnets/10.5.34.0-24")["node"]["value"], kVxlanValue);
}

TEST_F(EtcdStoreTest, ConfigRoundTripsAndTrailingSlashInPrefixIsHarmless) {
  EtcdOptions o = server().client_options(prefix_ + "/");
  auto slashed = EtcdV2Store::open(o);
  EXPECT_EQ(slashed->prefix(), prefix_);
  std::string cfg;
  EXPECT_EQ(slashed->get_config(&cfg).code, StoreCode::kNotFound);
  const std::string text = R"({"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}})";
  raw_put("/config", text);
  ASSERT_TRUE(slashed->get_config(&cfg).ok());
  EXPECT_EQ(cfg, text);
  ASSERT_TRUE(store_->set_config("{ \"Network\": \"10.6.0.0/16\" }\n").ok());
  EXPECT_EQ(raw_get("/config")["node"]["value"], "{ \"Network\": \"10.6.0.0/16\" }\n");
  EXPECT_NE(slashed->describe().find(server().endpoint()), std::string::npos);
}

TEST_F(EtcdStoreTest, OldAgentRenewPutIsSeenAsAddedAndBreaksOurCas) {
  Lease ours;
  ASSERT_TRUE(
      store_->create_lease(make_lease("10.5.9.0/24", "10.1.1.1", "host-gw"), 600s, &ours).ok());
  // v0.11 takes a lease over with an unconditional PUT (facts §2.5 step 3).
  uint64_t idx =
      raw_put("/subnets/10.5.9.0-24", R"({"PublicIP":"10.1.1.2","BackendType":"host-gw"})", 86400);
  WatchResult w = store_->watch_leases(ours.revision, 2s, {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  ASSERT_EQ(w.events.size(), 1u);
  EXPECT_EQ(w.events[0].type, LeaseEventType::kAdded);
  EXPECT_EQ(w.events[0].lease.attrs.public_ip.str(), "10.1.1.2");
  EXPECT_EQ(w.events[0].lease.revision, idx);
  EXPECT_EQ(w.revision, idx);
  Lease renewed;
  EXPECT_EQ(store_->renew_lease(ours, 600s, &renewed).code, StoreCode::kConflict);
  EXPECT_EQ(store_->delete_lease(ours.subnet, ours.revision).code, StoreCode::kConflict);
  ASSERT_TRUE(store_->delete_lease(ours.subnet, idx).ok());
  EXPECT_EQ(store_->renew_lease(ours, 600s, &renewed).code, StoreCode::kNotFound);
  EXPECT_EQ(store_->delete_lease(ours.subnet).code, StoreCode::kNotFound);
}

// ---- Malformed data
// ------------------------------------------------------------------------------

TEST_F(EtcdStoreTest, MalformedEntriesAreSkippedWithWarningsAndNeverDeleted) {
  LeaseList start;
  ASSERT_TRUE(store_->list_leases(&start).ok());
  raw_put("/subnets/garbage", R"({"PublicIP":"10.0.0.1"})");
  raw_put("/subnets/10.5.40.0-24", "this is not json");
  raw_put("/subnets/10.5.41.0-24", R"({"PublicIP":"not-an-ip"})");
  auto mk = server().raw("PUT", keys("/subnets/10.5.42.0-24?dir=true"));
  ASSERT_EQ(mk.status, 201) << mk.body;
  uint64_t good = raw_put("/subnets/10.5.43.0-24", R"({"PublicIP":"10.0.0.43"})", 300);

  // The watch reports the good lease and moves its cursor past every bad one.
  WatchResult w;
  std::vector<LeaseEvent> events;
  std::vector<std::string> warnings;
  uint64_t rev = start.revision;
  auto deadline = SteadyClock::now() + 5s;
  while (events.empty() && SteadyClock::now() < deadline) {
    w = store_->watch_leases(rev, 2s, {});
    ASSERT_TRUE(w.status.ok() || w.status.code == StoreCode::kTimeout) << w.status.message;
    rev = w.revision;
    events.insert(events.end(), w.events.begin(), w.events.end());
    warnings.insert(warnings.end(), w.warnings.begin(), w.warnings.end());
  }
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].lease.subnet.str(), "10.5.43.0/24");
  EXPECT_EQ(rev, good);
  ASSERT_EQ(warnings.size(), 4u);
  EXPECT_NE(warnings[0].find("garbage"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("10.5.40.0-24"), std::string::npos) << warnings[1];
  EXPECT_NE(warnings[2].find("10.5.41.0-24"), std::string::npos) << warnings[2];

  // Nothing further: the next watch does not return the bad events again.
  WatchResult again = store_->watch_leases(rev, 200ms, {});
  EXPECT_EQ(again.status.code, StoreCode::kTimeout);
  EXPECT_TRUE(again.events.empty());
  EXPECT_TRUE(again.warnings.empty());

  LeaseList list;
  ASSERT_TRUE(store_->list_leases(&list).ok());
  ASSERT_EQ(list.leases.size(), 1u);
  EXPECT_EQ(list.warnings.size(), 4u);
  bool named = false;
  for (const auto& warn : list.warnings)
    named |= warn.find(prefix_ + "/subnets/garbage") != std::string::npos;
  EXPECT_TRUE(named);

  Lease bad;
  Status s = store_->get_lease(IP4Net::parse("10.5.40.0/24"), &bad);
  EXPECT_EQ(s.code, StoreCode::kInvalid);
  EXPECT_NE(s.message.find("10.5.40.0-24"), std::string::npos) << s.message;

  // Still there: skipped, not deleted.
  EXPECT_EQ(raw_get("/subnets/garbage")["node"]["value"], R"({"PublicIP":"10.0.0.1"})");
  EXPECT_EQ(raw_get("/subnets/10.5.40.0-24")["node"]["value"], "this is not json");
}

TEST_F(EtcdStoreTest, RemovingTheWholeLeaseDirectoryAsksForAResync) {
  Lease a;
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.1.0/24", "10.0.0.1"), 300s, &a).ok());
  auto del = server().raw("DELETE", keys("/subnets?recursive=true"));
  ASSERT_EQ(del.status, 200) << del.body;
  WatchResult w = store_->watch_leases(a.revision, 2s, {});
  EXPECT_EQ(w.status.code, StoreCode::kHistoryGone) << w.status.message;
  LeaseList list;
  ASSERT_TRUE(store_->list_leases(&list).ok());
  EXPECT_TRUE(list.leases.empty());
}

// ---- Watch
// ----------------------------------------------------------------------------------------

// Prompt means far inside the 30 s wait: bounds a loaded CI machine meets and a watch that
// ignored the stop token (returning at its timeout) does not.
TEST_F(EtcdStoreTest, WatchCancelsPromptly) {
  LeaseList list;
  ASSERT_TRUE(store_->list_leases(&list).ok());
  std::stop_source stop;
  std::atomic<long long> latency{-1};
  WatchResult result;
  SteadyClock::time_point stopped_at;
  const double before = watch_requests();
  std::thread t([&] {
    result = store_->watch_leases(list.revision, 30s, stop.get_token());
    latency = ms_since(stopped_at);
  });
  EXPECT_TRUE(watch_reached_etcd(before)) << "the long-poll never reached etcd";
  stopped_at = SteadyClock::now();
  stop.request_stop();
  t.join();
  EXPECT_EQ(result.status.code, StoreCode::kCancelled);
  EXPECT_LT(latency.load(), 1000);
  EXPECT_EQ(result.revision, list.revision);

  // Already stopped: returns at once.
  auto t0 = SteadyClock::now();
  EXPECT_EQ(store_->watch_leases(list.revision, 30s, stop.get_token()).status.code,
            StoreCode::kCancelled);
  EXPECT_LT(ms_since(t0), 1000);
}

TEST_F(EtcdStoreTest, WatchTimesOutOnTime) {
  LeaseList list;
  ASSERT_TRUE(store_->list_leases(&list).ok());
  auto t0 = SteadyClock::now();
  WatchResult w = store_->watch_leases(list.revision, 300ms, {});
  auto took = ms_since(t0);
  EXPECT_EQ(w.status.code, StoreCode::kTimeout);
  EXPECT_GE(took, 295);
  EXPECT_LT(took, 600);
  EXPECT_GE(w.revision, list.revision);
}

TEST_F(EtcdStoreTest, IdleWatcherStaysInsideTheHistoryWhileOthersWrite) {
  // 1100 writes elsewhere in the same etcd while our prefix stays quiet: a watcher that keeps
  // polling must never fall out of etcd's 1000-event window (v0.11's endless long-poll does not).
  LeaseList list;
  ASSERT_TRUE(store_->list_leases(&list).ok());
  std::atomic<bool> done{false};
  std::atomic<uint64_t> last_noise{0};
  std::thread noise([&] {
    for (int i = 0; i < 1100; ++i) {
      auto r = server().raw("PUT", keys("/noise"), "value=" + std::to_string(i));
      if (r.status == 200 || r.status == 201) last_noise = std::stoull(r.etcd_index);
    }
    done = true;
  });
  uint64_t rev = list.revision;
  int polls = 0;
  while (!done) {
    WatchResult w = store_->watch_leases(rev, 300ms, {});
    ++polls;
    ASSERT_EQ(w.status.code, StoreCode::kTimeout) << w.status.message;
    EXPECT_GE(w.revision, rev);
    rev = w.revision;
  }
  noise.join();
  WatchResult w = store_->watch_leases(rev, 300ms, {});
  ASSERT_EQ(w.status.code, StoreCode::kTimeout) << w.status.message << " after " << polls;
  EXPECT_GT(w.revision, list.revision + 1000);
  EXPECT_LE(w.revision, last_noise.load());
  Lease created;
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.4.0/24", "10.0.0.4"), 60s, &created).ok());
  w = store_->watch_leases(w.revision, 2s, {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  ASSERT_EQ(w.events.size(), 1u);
  EXPECT_EQ(w.events[0].lease, created);
}

TEST_F(EtcdStoreTest, BlockedWatchDoesNotBlockWritersAndSeesTheirEvents) {
  LeaseList list;
  ASSERT_TRUE(store_->list_leases(&list).ok());
  WatchResult w;
  const double before = watch_requests();
  std::thread t([&] { w = store_->watch_leases(list.revision, 10s, {}); });
  EXPECT_TRUE(watch_reached_etcd(before)) << "the watch never reached etcd";
  auto t0 = SteadyClock::now();
  Lease created;
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.3.0/24", "10.0.0.3"), 60s, &created).ok());
  EXPECT_LT(ms_since(t0), 1000);
  t.join();
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  ASSERT_GE(w.events.size(), 1u);
  EXPECT_EQ(w.events[0].lease, created);
}

TEST_F(EtcdStoreTest, WatchReturnsAlreadyAvailableEventsAsOneBatch) {
  LeaseList list;
  ASSERT_TRUE(store_->list_leases(&list).ok());
  for (int i = 0; i < 50; ++i) {
    Lease l;
    ASSERT_TRUE(
        store_->create_lease(make_lease("10.6." + std::to_string(i) + ".0/24", "10.0.1.1"), 60s, &l)
            .ok());
  }
  Lease one;
  ASSERT_TRUE(store_->get_lease(IP4Net::parse("10.6.7.0/24"), &one).ok());
  ASSERT_TRUE(store_->delete_lease(one.subnet, one.revision).ok());  // compareAndDelete
  auto t0 = SteadyClock::now();
  WatchResult w = store_->watch_leases(list.revision, 5s, {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  EXPECT_LT(ms_since(t0), 1000);
  ASSERT_EQ(w.events.size(), 51u);
  for (size_t i = 1; i < w.events.size(); ++i) {
    EXPECT_LT(w.events[i - 1].lease.revision, w.events[i].lease.revision);
  }
  EXPECT_EQ(w.events.back().type, LeaseEventType::kRemoved);
  EXPECT_FALSE(w.events.back().expired);
  EXPECT_EQ(w.events.back().lease.subnet, one.subnet);
  EXPECT_EQ(w.revision, w.events.back().lease.revision);
}

TEST_F(EtcdStoreTest, ExpiryIsAnExpiredRemoval) {
  Lease l;
  ASSERT_TRUE(store_->create_lease(make_lease("10.5.2.0/24", "10.0.0.2"), 1s, &l).ok());
  uint64_t rev = l.revision;
  auto deadline = SteadyClock::now() + 5s;
  std::optional<LeaseEvent> removed;
  while (!removed && SteadyClock::now() < deadline) {
    WatchResult w = store_->watch_leases(rev, 1s, {});
    ASSERT_TRUE(w.status.ok() || w.status.code == StoreCode::kTimeout) << w.status.message;
    rev = w.revision;
    for (auto& e : w.events) {
      if (e.type == LeaseEventType::kRemoved) removed = e;
    }
  }
  ASSERT_TRUE(removed.has_value());
  EXPECT_TRUE(removed->expired);
  EXPECT_EQ(removed->lease.subnet, l.subnet);
}

TEST_F(EtcdStoreTest, RealHistoryGoneAfterMoreThan1000Events) {
  LeaseList list;
  ASSERT_TRUE(store_->list_leases(&list).ok());
  // etcd v2 keeps the last 1000 events of the whole cluster. Write 1100 elsewhere, in parallel
  // so etcd batches its fsyncs.
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 138; ++i) {
        auto r =
            server().raw("PUT", keys("/noise/" + std::to_string(t)), "value=" + std::to_string(i));
        if (r.status != 200 && r.status != 201) ++failures;
      }
    });
  }
  for (auto& w : writers) w.join();
  ASSERT_EQ(failures.load(), 0);
  WatchResult w = store_->watch_leases(list.revision, 2s, {});
  EXPECT_EQ(w.status.code, StoreCode::kHistoryGone) << w.status.message;
  EXPECT_NE(w.status.message.find(std::to_string(list.revision)), std::string::npos);
  // The documented recovery works: list again and watch from there.
  LeaseList fresh;
  ASSERT_TRUE(store_->list_leases(&fresh).ok());
  EXPECT_EQ(store_->watch_leases(fresh.revision, 100ms, {}).status.code, StoreCode::kTimeout);
}

// ---- Failover and timeouts
// ------------------------------------------------------------------------

// An answer above -etcd-max-response-mb fails with an error naming the bound (a hostile or
// runaway store cannot make the agent parse an unbounded tree); below it, the same list works.
TEST_F(EtcdStoreTest, AnAnswerAboveTheBoundIsRefusedByName) {
  Lease created;
  for (int i = 0; i < 40; ++i) {
    std::string subnet = "10.5." + std::to_string(100 + i) + ".0/24";
    ASSERT_TRUE(store_->create_lease(make_lease(subnet, "10.0.0.9"), 60s, &created).ok());
  }
  EtcdOptions o = server().client_options(prefix_);
  o.max_response_bytes = 4096;  // 40 leases through v2 are about 8 KB
  auto bounded = EtcdV2Store::open(o);
  LeaseList list;
  Status s = bounded->list_leases(&list);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message.find("larger than 4096 bytes (-etcd-max-response-mb)"), std::string::npos)
      << s.message;
  ASSERT_TRUE(store_->list_leases(&list).ok());
  EXPECT_EQ(list.leases.size(), 40u);
}

TEST_F(EtcdStoreTest, DeadFirstEndpointFailsOverQuickly) {
  EtcdOptions o = server().client_options(prefix_);
  o.endpoints = {"http://127.0.0.1:" + std::to_string(closed_port()), server().endpoint()};
  auto store = EtcdV2Store::open(o);
  auto t0 = SteadyClock::now();
  Lease created;
  // A refused connection never carried the request: even the one-shot create may fail over.
  ASSERT_TRUE(store->create_lease(make_lease("10.5.11.0/24", "10.0.0.11"), 60s, &created).ok());
  LeaseList list;
  ASSERT_TRUE(store->list_leases(&list).ok());
  ASSERT_EQ(list.leases.size(), 1u);
  WatchResult w = store->watch_leases(created.revision - 1, 2s, {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  EXPECT_LT(ms_since(t0), 2000);
}

TEST_F(EtcdStoreTest, AllEndpointsDeadIsUnavailableQuicklyAndNamesThem) {
  EtcdOptions o = server().client_options(prefix_);
  const std::string a = "http://127.0.0.1:" + std::to_string(closed_port());
  const std::string b = "http://127.0.0.1:" + std::to_string(closed_port());
  o.endpoints = {a, b};
  auto store = EtcdV2Store::open(o);
  auto t0 = SteadyClock::now();
  LeaseList list;
  Status s = store->list_leases(&list);
  EXPECT_EQ(s.code, StoreCode::kUnavailable);
  EXPECT_NE(s.message.find(a), std::string::npos) << s.message;
  EXPECT_NE(s.message.find(b), std::string::npos) << s.message;
  EXPECT_NE(s.message.find("onnect"), std::string::npos) << s.message;
  Lease created;
  EXPECT_EQ(store->create_lease(make_lease("10.5.12.0/24", "10.0.0.12"), 60s, &created).code,
            StoreCode::kUnavailable);
  WatchResult w = store->watch_leases(1, 5s, {});
  EXPECT_EQ(w.status.code, StoreCode::kUnavailable);
  EXPECT_LT(ms_since(t0), 1000);
}

TEST_F(EtcdStoreTest, HungEndpointTimesOutAndOnlySafeRequestsFailOver) {
  SilentServer hung;
  EtcdOptions o = server().client_options(prefix_);
  o.endpoints = {hung.url(), server().endpoint()};
  o.request_timeout = 300ms;
  raw_put("/config", "{}");
  {
    auto store = EtcdV2Store::open(o);
    auto t0 = SteadyClock::now();
    std::string cfg;
    ASSERT_TRUE(store->get_config(&cfg).ok());  // a GET may be retried on the next endpoint
    EXPECT_GE(ms_since(t0), 290);
    EXPECT_LT(ms_since(t0), 1500);
  }
  {
    // The create reached the hung server, which might have applied it: not replayed elsewhere.
    auto store = EtcdV2Store::open(o);
    auto t0 = SteadyClock::now();
    Lease created;
    Status s = store->create_lease(make_lease("10.5.13.0/24", "10.0.0.13"), 60s, &created);
    EXPECT_EQ(s.code, StoreCode::kUnavailable);
    EXPECT_NE(s.message.find(hung.url()), std::string::npos) << s.message;
    EXPECT_NE(s.message.find("may have been applied"), std::string::npos) << s.message;
    EXPECT_LT(ms_since(t0), 1500);
    Lease none;
    EXPECT_EQ(store_->get_lease(IP4Net::parse("10.5.13.0/24"), &none).code, StoreCode::kNotFound);
  }
  {
    // A long-poll on the hung server gets no headers and moves on to the live endpoint.
    Lease created;
    ASSERT_TRUE(store_->create_lease(make_lease("10.5.14.0/24", "10.0.0.14"), 60s, &created).ok());
    auto store = EtcdV2Store::open(o);
    auto t0 = SteadyClock::now();
    WatchResult w = store->watch_leases(created.revision - 1, 5s, {});
    ASSERT_TRUE(w.status.ok()) << w.status.message;
    ASSERT_EQ(w.events.size(), 1u);
    EXPECT_EQ(w.events[0].lease, created);
    EXPECT_GE(ms_since(t0), 290);
    EXPECT_LT(ms_since(t0), 1500);
  }
}

TEST(EtcdStoreOptions, BadOptionsThrowWithTheReason) {
  EtcdOptions o;
  o.endpoints = {"127.0.0.1:2379"};
  try {
    EtcdV2Store::open(o);
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:2379"), std::string::npos);
  }
  o.endpoints = {"https://127.0.0.1:2379"};
  o.cafile = "/nonexistent/ca.pem";
  try {
    EtcdV2Store::open(o);
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ca.pem"), std::string::npos);
  }
}

TEST(EtcdRfc3339, ParsesWhatEtcdWrites) {
  using etcd::parse_rfc3339;
  auto t = parse_rfc3339("2019-01-02T15:04:05.123456789Z");
  ASSERT_TRUE(t);
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count();
  EXPECT_EQ(secs, 1546441445);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::nanoseconds>(t->time_since_epoch()).count() %
                1000000000,
            123456789);
  auto off = parse_rfc3339("2019-01-02T16:04:05+01:00");
  ASSERT_TRUE(off);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(off->time_since_epoch()).count(),
            secs);
  EXPECT_FALSE(parse_rfc3339("2019-01-02 15:04:05Z"));
  EXPECT_FALSE(parse_rfc3339("2019-13-02T15:04:05Z"));
  EXPECT_FALSE(parse_rfc3339("2019-01-02T15:04:05"));
  EXPECT_FALSE(parse_rfc3339("2019-01-02T15:04:05.Z"));
  // Beyond what system_clock holds (years 1678..2261): refused, not overflowed (found by
  // tests/fuzz/etcd_v2_fuzz.cc; UBSan flagged the overflow).
  EXPECT_FALSE(parse_rfc3339("9999-12-31T23:59:60.999999999Z"));
  EXPECT_FALSE(parse_rfc3339("0001-01-01T00:00:00-23:59"));
  auto late = parse_rfc3339("2261-12-31T00:00:00Z");
  ASSERT_TRUE(late);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(late->time_since_epoch()).count(),
            9214560000);
}

// ---- Basic auth
// ----------------------------------------------------------------------------------

TEST(EtcdAuth, CredentialsAreSentAndWrongOnesAreAClearError) {
  EtcdServer server;  // its own etcd: turning auth on must not affect the shared one
  auto ok = [](const EtcdServer::RawResponse& r) { return r.status / 100 == 2; };
  ASSERT_TRUE(ok(server.raw("PUT", "/v2/auth/users/root", R"({"user":"root","password":"pw"})")));
  ASSERT_TRUE(ok(server.raw("PUT", "/v2/auth/users/flannel",
                            R"({"user":"flannel","password":"s3cr3t"})", "root:pw")));
  ASSERT_TRUE(ok(server.raw(
      "PUT", "/v2/auth/roles/net",
      R"({"role":"net","permissions":{"kv":{"read":["/net/*"],"write":["/net/*"]}}})", "root:pw")));
  ASSERT_TRUE(ok(server.raw("PUT", "/v2/auth/users/flannel",
                            R"({"user":"flannel","grant":["net"]})", "root:pw")));
  ASSERT_TRUE(ok(server.raw("PUT", "/v2/auth/enable", "", "root:pw")));
  // Anonymous clients may do nothing.
  auto guest =
      server.raw("PUT", "/v2/auth/roles/guest",
                 R"({"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}})", "root:pw");
  ASSERT_TRUE(ok(guest)) << guest.status << guest.body;

  EtcdOptions o = server.client_options("/net");
  o.username = "flannel";
  o.password = "s3cr3t";
  auto store = EtcdV2Store::open(o);
  Lease created;
  ASSERT_TRUE(store->create_lease(make_lease("10.5.30.0/24", "10.0.0.30"), 60s, &created).ok());
  LeaseList list;
  ASSERT_TRUE(store->list_leases(&list).ok());
  EXPECT_EQ(list.leases.size(), 1u);

  o.password = "wrong";
  Status s = EtcdV2Store::open(o)->list_leases(&list);
  EXPECT_EQ(s.code, StoreCode::kUnavailable);
  EXPECT_NE(s.message.find("-etcd-username"), std::string::npos) << s.message;
  o.username.clear();
  o.password.clear();
  s = EtcdV2Store::open(o)->list_leases(&list);
  EXPECT_EQ(s.code, StoreCode::kUnavailable) << s.message;
}

// ---- TLS
// --------------------------------------------------------------------------------------------

class EtcdTlsTest : public ::testing::Test {
 protected:
  static EtcdServer& server() { return EtcdServer::shared_tls(); }
};

TEST_F(EtcdTlsTest, MutualTlsWorksWithTheRightCertificates) {
  auto store = EtcdV2Store::open(server().client_options(EtcdServer::unique_prefix("tls")));
  Lease created;
  ASSERT_TRUE(store->create_lease(make_lease("10.5.20.0/24", "10.0.0.20"), 60s, &created).ok());
  LeaseList list;
  ASSERT_TRUE(store->list_leases(&list).ok());
  EXPECT_EQ(list.leases.size(), 1u);
  WatchResult w = store->watch_leases(created.revision - 1, 2s, {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  EXPECT_EQ(w.events.size(), 1u);
}

TEST_F(EtcdTlsTest, MissingClientCertificateIsAClearError) {
  EtcdOptions o = server().client_options(EtcdServer::unique_prefix("tls"));
  o.certfile.clear();
  o.keyfile.clear();
  auto store = EtcdV2Store::open(o);
  LeaseList list;
  Status s = store->list_leases(&list);
  EXPECT_EQ(s.code, StoreCode::kUnavailable);
  EXPECT_NE(s.message.find(server().endpoint()), std::string::npos) << s.message;
  EXPECT_NE(s.message.find("certificate"), std::string::npos) << s.message;
}

TEST_F(EtcdTlsTest, UnknownServerCaIsAClearError) {
  EtcdOptions o = server().client_options(EtcdServer::unique_prefix("tls"));
  o.cafile.clear();  // the system CAs do not know the test CA
  auto store = EtcdV2Store::open(o);
  std::string cfg;
  Status s = store->get_config(&cfg);
  EXPECT_EQ(s.code, StoreCode::kUnavailable);
  EXPECT_NE(s.message.find("etcd " + server().endpoint() + ": SSL certificate problem"),
            std::string::npos)
      << s.message;
}

}  // namespace
}  // namespace flannel::testing
