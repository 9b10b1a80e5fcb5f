// flanneld on etcd's v3 API: the seed flow on an etcd without v2 (config written with
// `ETCDCTL_API=3 etcdctl put`, flanneld with the default -store), and the detection rule of
// -store=etcd on an etcd that serves both APIs.
#include <filesystem>
#include <regex>

#include "core/lease.h"
#include "tests/daemon/agent_fixture.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kVxlanConfig[] =
    R"({"Network":"172.30.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan"}})";

bool logged(Process& p, const std::string& text) {
  return wait_until([&] { return p.output().find(text) != std::string::npos; }, 5s);
}

class EtcdV3Agent : public AgentTest {};

TEST_P(EtcdV3Agent, SeedFlowOnV3GivesALeaseAndSubnetEnvAndARestartKeepsTheSubnet) {
  set_config(kVxlanConfig);  // ETCDCTL_API=3 etcdctl put <prefix>/config '...'
  start_agent(1);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  EXPECT_TRUE(logged(agent(1), "Using etcd v3 API at " + store_->endpoint())) << agent(1).output();
  // Current flannel's value, in v3.
  const std::string value = lease_value(*subnet);
  EXPECT_TRUE(value.starts_with(
      R"({"PublicIP":"10.250.0.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VtepMAC":")"))
      << value;
  std::string third = std::to_string((subnet->ip.value >> 8) & 0xff);
  EXPECT_EQ(read_file(subnet_file(1)), "FLANNEL_NETWORK=172.30.0.0/16\nFLANNEL_SUBNET=172.30." +
                                           third +
                                           ".1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n");
  // The key carries a v3 lease of 24 h.
  std::string out;
  ASSERT_EQ(store_->etcdctl(
                {"get", store_->prefix() + "/subnets/" + subnet_key(*subnet), "-w", "json"}, &out),
            0)
      << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"("lease":(\d+))"))) << out;
  char hex[32];
  std::snprintf(hex, sizeof hex, "%llx", std::stoull(m[1].str()));
  ASSERT_EQ(store_->etcdctl({"lease", "timetolive", hex}, &out), 0) << out;
  EXPECT_NE(out.find("granted with TTL(86400s)"), std::string::npos) << out;

  stop_agent(1);
  std::filesystem::remove(subnet_file(1));
  start_agent(1);
  auto again = wait_subnet(1);
  ASSERT_TRUE(again) << agent(1).output();
  EXPECT_EQ(*again, *subnet) << "a restart keeps the subnet (found by our PublicIP in v3)";
  EXPECT_EQ(lease_subnets().size(), 1u);
}

TEST_P(EtcdV3Agent, WaitsForTheConfigLoggingTheProbeOnce) {
  start_agent(1);
  ASSERT_TRUE(logged(agent(1), "probed etcd at " + store_->endpoint())) << agent(1).output();
  EXPECT_NE(agent(1).output().find("v3 API answers, no config"), std::string::npos)
      << agent(1).output();
  set_config(kVxlanConfig);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  const std::string log = agent(1).output();
  EXPECT_EQ(log.find("probed etcd"), log.rfind("probed etcd")) << "logged once: " << log;
  EXPECT_NE(log.find("Using etcd v3 API"), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(Stores, EtcdV3Agent, ::testing::Values(LabStore::Kind::kEtcdV3), KindName);

// On an etcd serving both APIs (3.4 with --enable-v2): where the config is decides.
class EtcdDetection : public AgentTest {};

TEST_P(EtcdDetection, ConfigInV2PicksV2) {
  set_config(R"({"Network":"172.31.0.0/16","Backend":{"Type":"host-gw"}})");  // etcdctl set
  start_agent(1);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  EXPECT_TRUE(logged(agent(1), "Using etcd v2 API at " + store_->endpoint())) << agent(1).output();
  EXPECT_EQ(lease_value(*subnet), R"({"PublicIP":"10.250.0.1","BackendType":"host-gw"})");
  std::string out;
  store_->etcdctl3({"get", "--prefix", "--keys-only", store_->prefix() + "/subnets/"}, &out);
  EXPECT_EQ(out.find("subnets"), std::string::npos) << "nothing written with v3: " << out;
}

TEST_P(EtcdDetection, ConfigOnlyInV3PicksV3) {
  std::string out;
  ASSERT_EQ(store_->etcdctl3({"put", store_->prefix() + "/config",
                              R"({"Network":"172.32.0.0/16","Backend":{"Type":"host-gw"}})"},
                             &out),
            0)
      << out;
  start_agent(1);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  EXPECT_TRUE(logged(agent(1), "Using etcd v3 API at " + store_->endpoint())) << agent(1).output();
  ASSERT_EQ(store_->etcdctl3(
                {"get", "--print-value-only", store_->prefix() + "/subnets/" + subnet_key(*subnet)},
                &out),
            0)
      << out;
  EXPECT_EQ(out, R"({"PublicIP":"10.250.0.1","PublicIPv6":null,"BackendType":"host-gw"})"
                 "\n");
}

INSTANTIATE_TEST_SUITE_P(Stores, EtcdDetection, ::testing::Values(LabStore::Kind::kEtcd), KindName);

}  // namespace
}  // namespace flannel::testing
