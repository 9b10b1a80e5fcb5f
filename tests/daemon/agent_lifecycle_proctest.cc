// The agent in-process on a real SQLite store with short lease times, for what a 24 h TTL makes
// impossible to watch from outside: renewal before expiry keeps the lease alive past its TTL.
// (iptables rules are off: this test runs in the caller's namespace.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "daemon/agent/agent.h"
#include "stores/sqlite/sqlite_store.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

TEST(AgentLifecycle, RenewsBeforeExpiryAndStopsCleanly) {
  char tmpl[] = "/tmp/flannel-life-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  {
    SqliteOptions so;
    so.path = dir + "/store.db";
    so.prefix = "/life";
    auto admin = SqliteStore::open(so);
    ASSERT_TRUE(admin->set_config(R"({"Network":"10.9.0.0/16","Backend":{"Type":"alloc"}})").ok());
    auto store = SqliteStore::open(so);

    AgentSettings s;
    s.subnet_file = dir + "/subnet.env";
    s.iptables_forward_rules = false;
    s.lease_ttl = 3s;
    s.renew_margin = 2s;  // renew about every second
    s.config_key = "/life/config";
    ExternalInterface iface{"eth0", 2, 1500, IP4::parse("10.250.0.1"), IP4::parse("10.250.0.1"),
                            {},     {}};
    Metrics metrics;
    Agent agent(s, *store, iface, metrics);
    std::stop_source stop;
    int rc = -1;
    std::thread t([&] { rc = agent.run(stop.get_token()); });

    ASSERT_TRUE(wait_until([&] { return metrics.ready.load(); }, 5s));
    auto acquired_at = std::chrono::steady_clock::now();
    LeaseList first;
    ASSERT_TRUE(admin->list_leases(&first).ok());
    ASSERT_EQ(first.leases.size(), 1u);
    // Four renewals take the lease past its first 3 s TTL; it is still there, renewed (new
    // revision, later expiry), and was never lost.
    ASSERT_TRUE(wait_until([&] { return metrics.lease_renewals.load() >= 4; }, 10s));
    EXPECT_GT(std::chrono::steady_clock::now() - acquired_at, 3s);
    LeaseList later;
    ASSERT_TRUE(admin->list_leases(&later).ok());
    ASSERT_EQ(later.leases.size(), 1u);
    EXPECT_EQ(later.leases[0].subnet, first.leases[0].subnet);
    EXPECT_GT(later.leases[0].revision, first.leases[0].revision);
    EXPECT_GT(*later.leases[0].expiration, *first.leases[0].expiration + 2s);
    EXPECT_EQ(metrics.leases_lost.load(), 0u);
    EXPECT_EQ(metrics.lease_acquisitions.load(), 1u);

    auto t0 = std::chrono::steady_clock::now();
    stop.request_stop();
    t.join();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    EXPECT_EQ(rc, 0);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace flannel::testing
