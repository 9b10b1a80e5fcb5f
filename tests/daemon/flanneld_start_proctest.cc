// flanneld-start, the wrapper the distributions' flanneld.service runs, with the seeds' own
// /etc/sysconfig/flanneld files (tests/package/sysconfig-seed00N): sourced as systemd's
// EnvironmentFile= does, then `flanneld-start $FLANNEL_OPTIONS`. Changed only where a test must:
// the etcd addresses are the lab's own etcd and --log_dir is a temp dir. The exec'd flanneld's
// argv is read back from /proc and must be exactly what the wrapper promises; it must then get a
// lease from the lab etcd under the seed's prefix (and, for seed 003, log into the log dir).
// -subnet-file comes from FLANNELD_SUBNET_FILE so the argv stays the seed's.
#include <filesystem>
#include <fstream>
#include <regex>

#include "tests/daemon/agent_fixture.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

class FlanneldStart : public AgentTest {
 protected:
  // The seed's sysconfig file with the lab's etcd and `log_dir`, under dir_; restarts the lab
  // store under the seed's prefix.
  std::string lab_sysconfig(const std::string& seed, const std::string& prefix,
                            const std::string& log_dir) {
    store_.reset();
    std::string sub = dir_ + "/seed";
    std::filesystem::create_directories(sub);
    store_ = std::make_unique<LabStore>(GetParam(), *lab_, sub, prefix);
    std::string text = read_file(std::string(FLANNEL_SOURCE_DIR) + "/tests/package/" + seed);
    text = std::regex_replace(text, std::regex(R"(FLANNEL_ETCD_ENDPOINTS="[^"]*")"),
                              "FLANNEL_ETCD_ENDPOINTS=\"" + store_->endpoint() + "\"");
    text =
        std::regex_replace(text, std::regex("--log_dir=/var/log/flannel/"), "--log_dir=" + log_dir);
    std::string path = dir_ + "/" + seed;
    std::ofstream(path) << text;
    return path;
  }
  // What systemd does with EnvironmentFile= and ExecStart=flanneld-start $FLANNEL_OPTIONS.
  Process& start_wrapped(int i, const std::string& sysconfig) {
    const auto& h = host(i);
    std::vector<std::string> argv{"/bin/sh", "-c",
                                  "set -a; . \"$0\"; set +a; exec \"$1\" $FLANNEL_OPTIONS",
                                  sysconfig, std::string(FLANNEL_BIN_DIR) + "/flanneld-start"};
    std::map<std::string, std::string> env{{"FLANNELD_SUBNET_FILE", subnet_file(i)},
                                           {"FLANNELD_IFACE", "eth0"}};
    agents_.erase(i);
    auto p = std::make_unique<Process>(
        Process::Spec{argv, env, {"NOTIFY_SOCKET"}, h.netns, log_file(i)});
    return *(agents_[i] = std::move(p));
  }
  // The argv of the process (after the wrapper's exec: flanneld's).
  std::vector<std::string> cmdline(const Process& p) {
    std::string raw = read_file("/proc/" + std::to_string(p.pid()) + "/cmdline");
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t end; (end = raw.find('\0', start)) != std::string::npos; start = end + 1) {
      out.push_back(raw.substr(start, end - start));
    }
    return out;
  }
};

TEST_P(FlanneldStart, Seed003SysconfigGetsALeaseAndLogsToItsLogDir) {
  std::string log_dir = dir_ + "/flannel-logs/";
  std::filesystem::create_directories(log_dir);
  std::string file = lab_sysconfig("sysconfig-seed003", "/jxdd/network", log_dir);
  set_config(R"({"Network":"172.17.0.0/16"})");
  Process& p = start_wrapped(1, file);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << p.output();
  EXPECT_EQ(cmdline(p), (std::vector<std::string>{
                            std::string(FLANNEL_BIN_DIR) + "/flanneld",
                            "-etcd-endpoints=" + store_->endpoint(), "-etcd-prefix=/jxdd/network",
                            "--logtostderr=false", "--log_dir=" + log_dir, "--iface=eth0"}));
  EXPECT_EQ(lease_subnets(), std::vector<IP4Net>{*subnet});
  EXPECT_TRUE(wait_until(
      [&] {
        return read_file(log_dir + "flanneld.INFO").find("Lease acquired: " + subnet->str()) !=
               std::string::npos;
      },
      5s))
      << read_file(log_dir + "flanneld.INFO");
}

TEST_P(FlanneldStart, Seed004SysconfigWithoutOptionsGetsALease) {
  std::string file = lab_sysconfig("sysconfig-seed004", "/kube-centos/network", dir_);
  set_config(R"({"Network":"172.30.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}})");
  Process& p = start_wrapped(1, file);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << p.output();
  EXPECT_EQ(cmdline(p), (std::vector<std::string>{std::string(FLANNEL_BIN_DIR) + "/flanneld",
                                                  "-etcd-endpoints=" + store_->endpoint(),
                                                  "-etcd-prefix=/kube-centos/network"}));
  EXPECT_EQ(lease_subnets(), std::vector<IP4Net>{*subnet});
}

// The seeds' files name etcd; the wrapper's FLANNEL_STORE path is covered by tests/package.
INSTANTIATE_TEST_SUITE_P(Stores, FlanneldStart, ::testing::Values(LabStore::Kind::kEtcd), KindName);

}  // namespace
}  // namespace flannel::testing
