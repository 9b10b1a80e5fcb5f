// flannelctl migrate: a v2 cluster's config and reservations move to etcd v3 (and to SQLite);
// live leases stay behind and agents restarted with -store=etcdv3 re-create theirs.
#include <nlohmann/json.hpp>

#include "core/lease.h"
#include "tests/daemon/agent_fixture.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;
using MigrateTest = AgentTest;

constexpr char kConfig[] = R"({"Network":"172.30.0.0/16","Backend":{"Type":"host-gw"}})";

TEST_P(MigrateTest, V2ConfigAndReservationsMoveToV3AndAgentsKeepWorking) {
  set_config(kConfig);  // etcdctl set (v2)
  std::string out;
  ASSERT_EQ(store_->ctl({"reserve", "172.30.50.0/24", "10.250.0.9"}, &out), 0) << out;
  start_agent(1);
  auto live = wait_subnet(1);
  ASSERT_TRUE(live) << agent(1).output();

  ASSERT_EQ(store_->ctl({"migrate", "--to=etcdv3"}, &out), 0) << out;
  EXPECT_NE(out.find("1 reservation(s)"), std::string::npos) << out;
  EXPECT_NE(out.find("1 live lease(s) left"), std::string::npos) << out;
  ASSERT_EQ(store_->etcdctl3({"get", "--print-value-only", store_->prefix() + "/config"}, &out), 0);
  EXPECT_EQ(out, std::string(kConfig) + "\n");
  // The reservation is a key without a v3 lease; the live lease was not copied.
  ASSERT_EQ(
      store_->etcdctl3({"get", "--prefix", "-w", "json", store_->prefix() + "/subnets/"}, &out), 0);
  auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["kvs"].size(), 1u) << out;
  EXPECT_FALSE(j["kvs"][0].contains("lease")) << out;

  // A second run refuses to overwrite the target's config, and --force does it.
  EXPECT_EQ(store_->ctl({"migrate", "--to=etcdv3"}, &out), 1) << out;
  EXPECT_NE(out.find("--force"), std::string::npos) << out;
  ASSERT_EQ(store_->ctl({"migrate", "--to=etcdv3", "--force"}, &out), 0) << out;
  EXPECT_NE(out.find("1 already there"), std::string::npos) << out;

  // The agent restarted on v3 re-creates its lease there (the subnet from subnet.env).
  stop_agent(1);
  start_agent(1, {"-store=etcdv3"});
  ASSERT_TRUE(wait_until(
      [&] {
        std::string o;
        store_->etcdctl3({"get", "--keys-only", store_->prefix() + "/subnets/" + subnet_key(*live)},
                         &o);
        return o.find(subnet_key(*live)) != std::string::npos;
      },
      10s))
      << agent(1).output();
  EXPECT_NE(agent(1).output().find("Using etcd v3 API"), std::string::npos) << agent(1).output();
  // A second host on v3 gets the reserved subnet's neighbour, never the reservation.
  start_agent(2, {"-store=etcdv3"});
  auto second = wait_subnet(2);
  ASSERT_TRUE(second) << agent(2).output();
  EXPECT_NE(*second, IP4Net::parse("172.30.50.0/24"));
  EXPECT_NE(*second, *live);
}

TEST_P(MigrateTest, ToSqliteCopiesConfigAndReservations) {
  set_config(kConfig);
  std::string out;
  ASSERT_EQ(store_->ctl({"reserve", "172.30.60.0/24", "10.250.0.8"}, &out), 0) << out;
  const std::string db = dir_ + "/migrated.db";
  ASSERT_EQ(store_->ctl({"migrate", "--to=sqlite:" + db}, &out), 0) << out;
  const std::string ctl = std::string(FLANNEL_BIN_DIR) + "/flannelctl";
  const std::string prefix = "-etcd-prefix=" + store_->prefix();
  ASSERT_EQ(run_command({ctl, "-store=sqlite:" + db, prefix, "config", "get"}, &out), 0) << out;
  EXPECT_EQ(out, std::string(kConfig) + "\n");
  ASSERT_EQ(
      run_command({ctl, "-store=sqlite:" + db, prefix, "subnets", "get", "172.30.60.0/24"}, &out),
      0)
      << out;
  EXPECT_TRUE(nlohmann::json::parse(out)["expiration"].is_null()) << out;
  EXPECT_EQ(store_->ctl({"migrate"}, &out), 2) << out;
}

INSTANTIATE_TEST_SUITE_P(Stores, MigrateTest, ::testing::Values(LabStore::Kind::kEtcd), KindName);

}  // namespace
}  // namespace flannel::testing
