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

// Leases no agent will program (outside the network, a loopback PublicIP, the younger of two
// that overlap) are listed as such, with the reason, after the table and in the JSON; an honest
// lease carries no mark.
TEST_P(FlannelctlTest, SubnetsListShowsTheLeasesEveryAgentRefusesAndWhy) {
  set_config(R"({"Network":"172.30.0.0/16","Backend":{"Type":"alloc"}})");
  std::string out;
  ASSERT_EQ(store_->ctl({"reserve", "172.30.50.0/24", "10.250.0.9"}, &out), 0) << out;
  ASSERT_EQ(store_->ctl({"reserve", "10.9.0.0/24", "10.250.0.3"}, &out), 0) << out;
  ASSERT_EQ(store_->ctl({"reserve", "172.30.60.0/24", "127.0.0.1"}, &out), 0) << out;
  // Written after 172.30.50.0/24 and over it: the younger of two overlapping leases.
  ASSERT_EQ(store_->ctl({"reserve", "172.30.50.0/23", "10.250.0.4"}, &out), 0) << out;
  ASSERT_EQ(store_->ctl({"subnets", "list"}, &out), 0) << out;
  auto refused = out.find("REFUSED");
  ASSERT_NE(refused, std::string::npos) << out;
  EXPECT_NE(out.find("10.9.0.0-24  outside_network: subnet 10.9.0.0/24 is outside the network "
                     "172.30.0.0/16",
                     refused),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("172.30.60.0-24  bad_public_ip: PublicIP 127.0.0.1 is loopback", refused),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("172.30.50.0-23  overlaps_peer: lease 172.30.50.0/23 overlaps the older "
                     "lease 172.30.50.0/24",
                     refused),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("172.30.50.0-24", refused), std::string::npos) << out;
  ASSERT_EQ(store_->ctl({"subnets", "list", "--json"}, &out), 0) << out;
  size_t marked = 0;
  for (const auto& l : nlohmann::json::parse(out)) {
    if (l["key"] == "172.30.50.0-24") { EXPECT_FALSE(l.contains("refused")) << l.dump(); }
    if (l.contains("refused")) ++marked;
    if (l["key"] == "10.9.0.0-24") { EXPECT_EQ(l["refused"]["reason"], "outside_network"); }
  }
  EXPECT_EQ(marked, 3u) << out;
}

// Dual-stack leases (one key holding both subnets, "A.B.C.D-N&IPV6-M"): `subnets get` and `rm`
// take the whole key, the IPv6 subnet or the IPv4 subnet of such a lease; an IPv6 subnet with
// host bits set is a usage error (it used to be rounded down silently).
TEST_P(FlannelctlTest, DualStackLeasesByKeyOrEitherSubnet) {
  set_config(
      R"({"Network":"172.30.0.0/16","EnableIPv6":true,"IPv6Network":"fc00:30::/48","Backend":{"Type":"alloc"}})");
  std::string out;
  // A reservation under a dual-stack key.
  const std::string rkey = "172.30.50.0-24&fc00:30:0:50::-64";
  ASSERT_EQ(store_->ctl({"reserve", rkey, "10.250.0.9"}, &out), 0) << out;
  ASSERT_EQ(store_->ctl({"subnets", "get", rkey}, &out), 0) << out;
  auto lease = nlohmann::json::parse(out);
  EXPECT_EQ(lease["key"], rkey) << out;
  EXPECT_EQ(lease["subnet"], "172.30.50.0/24") << out;
  EXPECT_EQ(lease["ipv6_subnet"], "fc00:30:0:50::/64") << out;
  EXPECT_EQ(lease["value"].dump(), R"({"PublicIP":"10.250.0.9"})") << out;
  for (const char* by : {"fc00:30:0:50::/64", "172.30.50.0/24", "172.30.50.0-24"}) {
    ASSERT_EQ(store_->ctl({"subnets", "get", by}, &out), 0) << by << ": " << out;
    EXPECT_EQ(nlohmann::json::parse(out)["key"], rkey) << by << ": " << out;
  }

  // An agent's lease: found by its IPv6 subnet, read back with PublicIPv6.
  start_agent(1, {"-public-ipv6=2001:db8::1"});
  ASSERT_TRUE(wait_subnet(1)) << agent(1).output();
  ASSERT_EQ(store_->ctl({"subnets", "list", "--json"}, &out), 0) << out;
  std::string akey, a6;
  for (const auto& l : nlohmann::json::parse(out))
    if (l["key"] != rkey) {
      akey = l["key"].get<std::string>();
      a6 = l["ipv6_subnet"].get<std::string>();
    }
  ASSERT_NE(akey.find('&'), std::string::npos) << out;
  ASSERT_EQ(store_->ctl({"subnets", "get", a6}, &out), 0) << out;
  lease = nlohmann::json::parse(out);
  EXPECT_EQ(lease["key"], akey) << out;
  EXPECT_EQ(lease["value"]["PublicIPv6"], "2001:db8::1") << out;

  // Bad or unknown IPv6 arguments.
  EXPECT_EQ(store_->ctl({"subnets", "get", "fc00:30:0:50::1/64"}, &out), 2) << out;
  EXPECT_NE(out.find("fc00:30:0:50::1/64 has host bits set; did you mean fc00:30:0:50::/64?"),
            std::string::npos)
      << out;
  EXPECT_EQ(store_->ctl({"subnets", "get", "fc00:30:0:99::/64"}, &out), 1) << out;
  EXPECT_NE(out.find("no lease for"), std::string::npos) << out;
  EXPECT_EQ(store_->ctl({"subnets", "rm", "172.30.50.0-24&fc00:30:0:99::-64"}, &out), 1) << out;
  EXPECT_NE(out.find("no lease for 172.30.50.0/24 fc00:30:0:99::/64"), std::string::npos) << out;
  EXPECT_EQ(store_->ctl({"subnets", "get", "172.30.50.0-24&FC00:30:0:50::-64"}, &out), 2) << out;
  EXPECT_NE(out.find("invalid subnet \"172.30.50.0-24&FC00:30:0:50::-64\""), std::string::npos)
      << out;

  // An IPv6 subnet with host bits set is refused, not rounded down to a lease it then deletes.
  EXPECT_EQ(store_->ctl({"subnets", "rm", "fc00:30:0:50::5/64"}, &out), 2) << out;
  EXPECT_NE(out.find("has host bits set"), std::string::npos) << out;
  ASSERT_EQ(store_->ctl({"subnets", "get", rkey}, &out), 0) << out;

  // rm by the whole key, and by the IPv6 subnet (the agent is stopped first: it would re-create
  // it).
  ASSERT_EQ(store_->ctl({"subnets", "rm", rkey}, &out), 0) << out;
  EXPECT_NE(out.find("deleted 172.30.50.0/24 fc00:30:0:50::/64"), std::string::npos) << out;
  EXPECT_EQ(store_->ctl({"subnets", "get", rkey}, &out), 1) << out;
  stop_agent(1);
  ASSERT_EQ(store_->ctl({"subnets", "rm", a6}, &out), 0) << out;
  EXPECT_EQ(store_->ctl({"subnets", "get", akey}, &out), 1) << out;
  ASSERT_EQ(store_->ctl({"subnets", "list", "--json"}, &out), 0) << out;
  EXPECT_TRUE(nlohmann::json::parse(out).empty()) << out;
}

TEST_P(FlannelctlTest, BadUsageExitsTwoWithAHint) {
  std::string out;
  EXPECT_EQ(store_->ctl({"frobnicate"}, &out), 2);
  EXPECT_NE(out.find("unknown command \"frobnicate\""), std::string::npos) << out;
  EXPECT_EQ(store_->ctl({"subnets", "get", "10.0.0.0"}, &out), 2);
  EXPECT_NE(out.find("invalid subnet \"10.0.0.0\""), std::string::npos) << out;
  EXPECT_EQ(run_command({std::string(FLANNEL_BIN_DIR) + "/flannelctl", "-store=zookeeper",
                         "subnets", "list"},
                        &out),
            2);
  EXPECT_NE(out.find("invalid store \"zookeeper\""), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(Stores, FlannelctlTest,
                         ::testing::Values(LabStore::Kind::kSqlite, LabStore::Kind::kEtcd),
                         KindName);

}  // namespace
}  // namespace flannel::testing
