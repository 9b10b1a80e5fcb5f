// The seed documents' workflows, verbatim where the lab allows: their etcd prefix, their config
// JSON written the way they write it, flanneld with their flags, and the lease, subnet.env and
// docker options they show. Each runs on etcd (etcdctl, as the seeds) and on SQLite.
#include <filesystem>
#include <regex>

#include "core/lease.h"
#include "tests/daemon/agent_fixture.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

class SeedFlow : public AgentTest {
 protected:
  // Restarts the lab store under the seed's prefix.
  void use_prefix(const std::string& prefix) {
    store_.reset();
    std::string sub = dir_ + "/seed";
    std::filesystem::create_directories(sub);
    store_ = std::make_unique<LabStore>(GetParam(), *lab_, sub, prefix);
  }
  std::string in_host(int i, const std::vector<std::string>& argv) {
    std::string out;
    run_command(argv, &out, host(i).netns);
    return out;
  }
  // The device's MAC as `ip link` shows it inside host i (sysfs would show the root namespace).
  std::string mac_of(int i, const std::string& dev) {
    std::string out = in_host(i, {"ip", "-o", "link", "show", "dev", dev});
    std::smatch m;
    return std::regex_search(out, m, std::regex("link/ether ([0-9a-f:]+)")) ? m[1].str() : out;
  }
  std::string third_octet(const IP4Net& n) { return std::to_string((n.ip.value >> 8) & 0xff); }
};

// Seed 000: vxlan, prefix /kubernetes/network, etcdctl set with SubnetLen 24.
TEST_P(SeedFlow, Seed000VxlanLeaseCarriesTheDeviceMac) {
  use_prefix("/kubernetes/network");
  set_config(R"({"Network":"172.30.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan"}})");
  start_agent(1);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  std::string mac = mac_of(1, "flannel.1");
  ASSERT_TRUE(std::regex_match(mac, std::regex("([0-9a-f]{2}:){5}[0-9a-f]{2}"))) << mac;
  EXPECT_EQ(lease_value(*subnet),
            R"({"PublicIP":"10.250.0.1","BackendType":"vxlan","BackendData":{"VtepMAC":")" + mac +
                R"("}})");
  EXPECT_EQ(read_file(subnet_file(1)), "FLANNEL_NETWORK=172.30.0.0/16\nFLANNEL_SUBNET=172.30." +
                                           third_octet(*subnet) +
                                           ".1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n");
  // flannel.1 carries the subnet's network address as a /32, as in the seed's ifconfig output.
  EXPECT_NE(
      in_host(1, {"ip", "-4", "addr", "show", "dev", "flannel.1"}).find(subnet->ip.str() + "/32"),
      std::string::npos);
}

// Seed 001: host-gw, prefix /kube-centos/network; mk-docker-opts.sh -k DOCKER_NETWORK_OPTIONS.
TEST_P(SeedFlow, Seed001HostGwAndDockerNetworkOptions) {
  use_prefix("/kube-centos/network");
  set_config(R"({"Network":"172.33.0.0/16","SubnetLen":24,"Backend":{"Type":"host-gw"}})");
  start_agent(1);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  EXPECT_EQ(lease_value(*subnet), R"({"PublicIP":"10.250.0.1","BackendType":"host-gw"})");
  std::string t = third_octet(*subnet);
  EXPECT_EQ(read_file(subnet_file(1)), "FLANNEL_NETWORK=172.33.0.0/16\nFLANNEL_SUBNET=172.33." + t +
                                           ".1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n");
  std::string docker = dir_ + "/docker";
  std::string out;
  ASSERT_EQ(run_command({std::string(FLANNEL_BIN_DIR) + "/mk-docker-opts.sh", "-f", subnet_file(1),
                         "-k", "DOCKER_NETWORK_OPTIONS", "-d", docker},
                        &out),
            0)
      << out;
  EXPECT_EQ(read_file(docker),
            "DOCKER_OPT_BIP=\"--bip=172.33." + t +
                ".1/24\"\nDOCKER_OPT_IPMASQ=\"--ip-masq=true\"\nDOCKER_OPT_MTU=\"--mtu=1500\"\n"
                "DOCKER_NETWORK_OPTIONS=\" --bip=172.33." +
                t + ".1/24 --ip-masq=true --mtu=1500\"\n");
}

// Seed 003: no Backend (udp), prefix /jxdd/network, FLANNEL_OPTIONS="--logtostderr=false
// --log_dir=/var/log/flannel/ --iface=eth0": the log goes to a file in log_dir.
TEST_P(SeedFlow, Seed003DefaultUdpWithGlogFileFlags) {
  use_prefix("/jxdd/network");
  set_config(R"({"Network":"172.17.0.0/16"})");
  std::string log_dir = dir_ + "/flannel-logs/";
  std::filesystem::create_directories(log_dir);
  start_agent(1, {"--logtostderr=false", "--log_dir=" + log_dir, "--iface=eth0"});
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  EXPECT_EQ(lease_value(*subnet), R"({"PublicIP":"10.250.0.1"})");
  EXPECT_EQ(read_file(subnet_file(1)), "FLANNEL_NETWORK=172.17.0.0/16\nFLANNEL_SUBNET=172.17." +
                                           third_octet(*subnet) +
                                           ".1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n");
  // The file log is flushed line by line.
  EXPECT_TRUE(wait_until(
      [&] {
        return read_file(log_dir + "flanneld.INFO").find("Lease acquired: " + subnet->str()) !=
               std::string::npos;
      },
      5s))
      << read_file(log_dir + "flanneld.INFO");
}

// Seed 004: `etcdctl mkdir` then `etcdctl mk` of a config with spaces; mk-docker-opts.sh -i.
TEST_P(SeedFlow, Seed004MkdirMkAndIndividualDockerOpts) {
  use_prefix("/kube-centos/network");
  std::string json =
      R"({ "Network": "172.30.0.0/16", "SubnetLen": 24, "Backend": { "Type": "vxlan" } })";
  if (store_->kind() == LabStore::Kind::kEtcd) {
    std::string out;
    ASSERT_EQ(store_->etcdctl({"mkdir", "/kube-centos/network"}, &out), 0) << out;
    ASSERT_EQ(store_->etcdctl({"mk", "/kube-centos/network/config", json}, &out), 0) << out;
  } else {
    set_config(json);
  }
  start_agent(1);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  std::string docker = dir_ + "/docker_opts.env", out;
  ASSERT_EQ(run_command({std::string(FLANNEL_BIN_DIR) + "/mk-docker-opts.sh", "-i", "-f",
                         subnet_file(1), "-d", docker},
                        &out),
            0)
      << out;
  std::string t = third_octet(*subnet);
  EXPECT_EQ(read_file(docker),
            "DOCKER_OPT_BIP=\"--bip=172.30." + t +
                ".1/24\"\nDOCKER_OPT_IPMASQ=\"--ip-masq=true\"\nDOCKER_OPT_MTU=\"--mtu=1450\"\n");
}

INSTANTIATE_TEST_SUITE_P(Stores, SeedFlow,
                         ::testing::Values(LabStore::Kind::kSqlite, LabStore::Kind::kEtcd),
                         KindName);

}  // namespace
}  // namespace flannel::testing
