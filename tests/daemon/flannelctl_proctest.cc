// flannelctl against both stores: config round trip and validation, subnets list/get/rm, and
// reservations (a lease without TTL that flanneld on that PublicIP adopts and never expires).
#include <nlohmann/json.hpp>

#include "tests/daemon/agent_fixture.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;
using FlannelctlTest = AgentTest;

TEST_P(FlannelctlTest, ConfigSetValidatesAndGetReturnsItVerbatim) {
  std::string out;
  EXPECT_EQ(store_->ctl({"config", "get"}, &out), 1);
  EXPECT_NE(out.find("no network config"), std::string::npos) << out;

  EXPECT_EQ(store_->ctl({"config", "set", R"({"Network":"10.0.0.0/16","SubnetLen":31})"}, &out), 2);
  EXPECT_NE(out.find("SubnetLen must be less than /31"), std::string::npos) << out;
  EXPECT_EQ(store_->ctl({"config", "get"}, &out), 1) << "an invalid config must not be written";

  const std::string json = R"({"Network":"10.7.0.0/16", "Backend": {"Type": "alloc"}})";
  ASSERT_EQ(store_->ctl({"config", "set", json}, &out), 0) << out;
  ASSERT_EQ(store_->ctl({"config", "get"}, &out), 0) << out;
  EXPECT_EQ(out, json + "\n");
}

TEST_P(FlannelctlTest, ReservationIsAdoptedByItsHostAndKeepsNoTtl) {
  set_config(R"({"Network":"172.30.0.0/16","Backend":{"Type":"alloc"}})");
  std::string out;
  ASSERT_EQ(store_->ctl({"reserve", "172.30.50.0/24", "10.250.0.1"}, &out), 0) << out;
  EXPECT_EQ(store_->ctl({"reserve", "172.30.50.0/24", "10.250.0.2"}, &out), 1);
  EXPECT_NE(out.find("already leased"), std::string::npos) << out;
  EXPECT_EQ(store_->ctl({"reserve", "172.30.50.7/24", "10.250.0.2"}, &out), 2) << out;
  EXPECT_EQ(store_->ctl({"reserve", "172.30.51.0/24", "nope"}, &out), 2) << out;

  start_agent(1);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  EXPECT_EQ(*subnet, IP4Net::parse("172.30.50.0/24"));
  ASSERT_EQ(store_->ctl({"subnets", "get", "172.30.50.0-24"}, &out), 0) << out;
  auto lease = nlohmann::json::parse(out);
  EXPECT_TRUE(lease["expiration"].is_null()) << out;
  EXPECT_EQ(lease["value"].dump(), R"({"PublicIP":"10.250.0.1"})");

  ASSERT_EQ(store_->ctl({"subnets", "list"}, &out), 0) << out;
  EXPECT_NE(out.find("SUBNET"), std::string::npos);
  EXPECT_NE(out.find("172.30.50.0/24"), std::string::npos);
  EXPECT_NE(out.find("never"), std::string::npos) << out;

  ASSERT_EQ(store_->ctl({"subnets", "rm", "172.30.50.0/24"}, &out), 0) << out;
  EXPECT_EQ(store_->ctl({"subnets", "rm", "172.30.99.0/24"}, &out), 1) << out;
  EXPECT_NE(out.find("no lease"), std::string::npos) << out;
}

TEST_P(FlannelctlTest, BadUsageExitsTwoWithAHint) {
  std::string out;
  EXPECT_EQ(store_->ctl({"frobnicate"}, &out), 2);
  EXPECT_NE(out.find("unknown command \"frobnicate\""), std::string::npos) << out;
  EXPECT_EQ(store_->ctl({"subnets", "get", "10.0.0.0"}, &out), 2);
  EXPECT_NE(out.find("invalid subnet \"10.0.0.0\""), std::string::npos) << out;
  EXPECT_EQ(run_command({std::string(FLANNEL_BIN_DIR) + "/flannelctl", "-store=zookeeper", "subnets", "list"}, &out), 2);
  EXPECT_NE(out.find("invalid store \"zookeeper\""), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(Stores, FlannelctlTest,
                         ::testing::Values(LabStore::Kind::kSqlite, LabStore::Kind::kEtcd), KindName);

}  // namespace
}  // namespace flannel::testing
