// flanneld with a dual-stack config (current flannel's EnableIPv6), on the alloc backend (no
// kernel side): the lease key and value are current flannel's, subnet.env has the IPv6 lines, a
// restart keeps both subnets, and a v0.11-format lease written by someone else coexists with ours.
#include <filesystem>

#include "core/lease.h"
#include "core/subnet_env.h"
#include "tests/daemon/agent_fixture.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kDualConfig[] =
    R"({"Network":"172.30.0.0/16","EnableIPv6":true,"IPv6Network":"fc00:30::/48","Backend":{"Type":"alloc"}})";

class DualStackAgent : public AgentTest {
 protected:
  std::optional<LeaseKey> wait_key(int i) {
    if (!wait_subnet(i)) return std::nullopt;
    auto env = parse_env_file(read_file(subnet_file(i)));
    return previous_key_from_env(env, parse_config(kDualConfig));
  }
};

TEST_P(DualStackAgent, LeaseKeyValueSubnetEnvAndRestartAreCurrentFlannels) {
  set_config(kDualConfig);
  start_agent(1, {"-public-ipv6=2001:db8::1"});
  auto key = wait_key(1);
  ASSERT_TRUE(key && key->ipv6_subnet) << agent(1).output();
  EXPECT_EQ(key->subnet.prefix, 24);
  EXPECT_EQ(key->ipv6_subnet->prefix, 64);
  EXPECT_TRUE(IP6Net::parse("fc00:30::/48").contains(*key->ipv6_subnet));
  // The value: current flannel's JSON layout (alloc writes no BackendType or data).
  EXPECT_EQ(lease_value(*key), R"({"PublicIP":"10.250.0.1","PublicIPv6":"2001:db8::1"})")
      << agent(1).output();
  const std::string third = std::to_string((key->subnet.ip.value >> 8) & 0xff);
  const std::string env = read_file(subnet_file(1));
  const std::string mtu = parse_env_file(env)["FLANNEL_MTU"];
  EXPECT_EQ(env, "FLANNEL_NETWORK=172.30.0.0/16\nFLANNEL_SUBNET=172.30." + third +
                     ".1/24\nFLANNEL_IPV6_NETWORK=fc00:30::/48\nFLANNEL_IPV6_SUBNET=" +
                     key->ipv6_subnet->first_host().str() + "/64\nFLANNEL_MTU=" + mtu +
                     "\nFLANNEL_IPMASQ=false\n");

  // Someone else's v0.11-format lease (IPv4 only) in the same store.
  Lease other;
  other.subnet = IP4Net::parse("172.30.200.0/24");
  other.attrs.public_ip = IP4::parse("192.0.2.9");
  std::string out;
  if (store_->is_etcd()) {
    std::vector<std::string> put{store_->kind() == LabStore::Kind::kEtcdV3 ? "put" : "set",
                                 store_->prefix() + "/subnets/172.30.200.0-24",
                                 R"({"PublicIP":"192.0.2.9"})"};
    ASSERT_EQ(store_->etcdctl(put, &out), 0) << out;
  } else {
    ASSERT_EQ(store_->ctl({"reserve", "172.30.200.0/24", "192.0.2.9"}, &out), 0) << out;
  }
  ASSERT_EQ(store_->ctl({"subnets", "list"}, &out), 0) << out;
  EXPECT_NE(out.find("IPV6 SUBNET"), std::string::npos) << out;
  EXPECT_NE(out.find(key->ipv6_subnet->str()), std::string::npos) << out;
  EXPECT_NE(out.find("172.30.200.0/24"), std::string::npos) << out;
  ASSERT_EQ(store_->ctl({"subnets", "list", "--json"}, &out), 0) << out;
  EXPECT_NE(out.find("\"key\": \"" + subnet_key(*key) + "\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"key\": \"172.30.200.0-24\""), std::string::npos) << out;
  // The v0.11 lease is read back byte for byte.
  EXPECT_EQ(lease_value(IP4Net::parse("172.30.200.0/24")), R"({"PublicIP":"192.0.2.9"})");

  // A restart (subnet file removed: the lease is found by our PublicIP) keeps both subnets.
  stop_agent(1);
  std::filesystem::remove(subnet_file(1));
  start_agent(1, {"-public-ipv6=2001:db8::1"});
  auto again = wait_key(1);
  ASSERT_TRUE(again) << agent(1).output();
  EXPECT_EQ(*again, *key) << agent(1).output();
}

TEST_P(DualStackAgent, UdpWithIPv6IsAStartupError) {
  set_config(R"({"Network":"172.30.0.0/16","EnableIPv6":true,"IPv6Network":"fc00:30::/48"})");
  Process& p = start_agent(1, {"-public-ipv6=2001:db8::1"});
  EXPECT_EQ(p.wait(10s), 1) << p.output();
  EXPECT_NE(p.output().find("The udp backend is IPv4 only"), std::string::npos) << p.output();
}

INSTANTIATE_TEST_SUITE_P(Stores, DualStackAgent,
                         ::testing::Values(LabStore::Kind::kSqlite, LabStore::Kind::kEtcd,
                                           LabStore::Kind::kEtcdV3),
                         KindName);

}  // namespace
}  // namespace flannel::testing
