// The wireguard backend end to end on this kernel (no wireguard module, so Debian's wireguard-go):
// three lab hosts running real flanneld processes on a shared SQLite store; pods ping each other
// through the encrypted tunnels; a capture on the lab switch shows only WireGuard UDP; restarts
// keep the key; a leaving peer is removed; a killed wireguard-go is restarted by the supervisor.
//
// UAPI sockets: wireguard-go keeps them in /var/run/wireguard/, one directory for the whole
// machine, and every lab host's device is called flannel-wg (as current flannel). So each lab
// flanneld runs in its own mount namespace with a private tmpfs on /run/wireguard
// (`unshare -m` + mount, OverlayLab::use_private_wireguard_dirs), which also guarantees no socket
// survives the host: the tmpfs goes with the namespace. The test inspects a device with `nsenter -t
// <flanneld> -m -n wg show`.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tests/lab/overlay_lab.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

// Current flannel's config, no field of ours: Implementation "auto" probes the kernel and, on this
// kernel without the module, picks wireguard-go.
const std::string kConfig = R"({"Network":"10.5.0.0/16","Backend":{"Type":"wireguard"}})";
// The pods' ICMP payload pattern (ping -p), searched for in the capture.
const std::string kPatternHex = "f1a77e1f0ca5ab1e";
const std::string kPatternBytes = "\xf1\xa7\x7e\x1f\x0c\xa5\xab\x1e";

struct WgPeer {
  std::string public_key, endpoint, allowed_ips;
  bool operator==(const WgPeer&) const = default;
};

// Packets to or from UDP port 51820 in a capture file.
int udp_lines(const std::string& pcap) {
  std::string out;
  run_command({"tcpdump", "-n", "-r", pcap, "udp port 51820"}, &out);
  int n = 0;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) n += line.find(".51820: UDP") != std::string::npos;
  return n;
}

bool have_tools() {
  return ::access("/usr/bin/wireguard-go", X_OK) == 0 && ::access("/usr/bin/wg", X_OK) == 0 &&
         ::access("/usr/bin/tcpdump", X_OK) == 0 && ::access("/dev/net/tun", R_OK | W_OK) == 0;
}

class WireguardLab : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    if (!have_tools())
      GTEST_SKIP() << "needs wireguard-go, wireguard-tools and tcpdump (scripts/deps.sh)";
    std::filesystem::create_directories("/run/wireguard");  // the mount point of each host's tmpfs
    lab_ = std::make_unique<OverlayLab>("wg", kConfig, 3);
    lab_->use_private_wireguard_dirs();
    lab_->start_all();
    for (int i = 0; i < 3; ++i) lab_->wait_subnet(i);
    lab_->add_pods();
  }
  void TearDown() override {
    if (HasFailure() && lab_) std::cerr << lab_->dump();
    lab_.reset();
  }

  // `wg show flannel-wg dump` of host i's device, peers only.
  std::vector<WgPeer> peers(int i, std::string* raw = nullptr) const {
    std::string out;
    if (!lab_->daemon(i)) return {};
    int rc = run_command({"nsenter", "-t", std::to_string(lab_->daemon(i)->pid()), "-m", "-n", "wg",
                          "show", "flannel-wg", "dump"},
                         &out);
    if (raw) *raw = out;
    std::vector<WgPeer> result;
    if (rc != 0) return result;
    std::istringstream in(out);
    std::string line;
    std::getline(in, line);  // the device line
    while (std::getline(in, line)) {
      std::istringstream f(line);
      WgPeer p;
      std::string psk;
      f >> p.public_key >> psk >> p.endpoint >> p.allowed_ips;
      result.push_back(p);
    }
    std::sort(result.begin(), result.end(),
              [](const WgPeer& a, const WgPeer& b) { return a.public_key < b.public_key; });
    return result;
  }
  std::string lease_key(int i) const {
    auto leases = lab_->leases();
    auto it = leases.find(lab_->lease(i).str());
    if (it == leases.end()) return "";
    EXPECT_EQ(it->second["BackendType"], "wireguard");
    return it->second["BackendData"]["PublicKey"].get<std::string>();
  }
  // Every host's device has exactly the other hosts as peers (key, endpoint, allowed IPs).
  bool mesh_configured(const std::vector<int>& hosts) const {
    for (int i : hosts) {
      std::set<std::string> want, have;
      for (int j : hosts) {
        if (j == i) continue;
        want.insert(lease_key(j) + " " + lab_->host(j).addr.str() + ":51820 " +
                    lab_->lease(j).str());
      }
      for (const auto& p : peers(i))
        have.insert(p.public_key + " " + p.endpoint + " " + p.allowed_ips);
      if (want != have) return false;
    }
    return true;
  }
  bool pings(const std::vector<std::pair<int, int>>& pairs) const {
    for (auto [a, b] : pairs)
      if (!lab_->ping(a, b, 1)) return false;
    return true;
  }
  std::vector<pid_t> children(pid_t pid) const {
    std::vector<pid_t> out;
    std::error_code ec;
    for (const auto& t :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
      std::ifstream in(t.path() / "children");
      pid_t c;
      while (in >> c) out.push_back(c);
    }
    return out;
  }
  pid_t wireguard_go_of(int i) const {
    for (pid_t c : children(lab_->daemon(i)->pid())) {
      std::ifstream in("/proc/" + std::to_string(c) + "/comm");
      std::string comm;
      in >> comm;
      if (comm == "wireguard-go") return c;
    }
    return -1;
  }

  std::unique_ptr<OverlayLab> lab_;
};

TEST_F(WireguardLab, PodsPingEncryptedAndRestartKeepsKey) {
  ASSERT_TRUE(wait_until(
      [&] {
        return mesh_configured({0, 1, 2});
      },
      20s))
      << "device peers never matched the leases";
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(lab_->route(i, IP4Net::parse("10.5.0.0/16")).find("dev flannel-wg"),
              std::string::npos)
        << i;
    EXPECT_EQ(lab_->mtu(i), 1500 - 80);
    EXPECT_EQ(lease_key(i).size(), 44u);
  }
  EXPECT_TRUE(lab_->ping_matrix().empty()) << ::testing::PrintToString(lab_->ping_matrix());

  // A capture on the lab switch while pods send a recognisable payload.
  std::string pcap = lab_->dir() + "/hub.pcap", tlog = lab_->dir() + "/tcpdump.log";
  {
    Process tcpdump(
        {{"tcpdump", "-i", "br0", "-n", "-U", "-w", pcap}, {}, {}, lab_->lab().hub(), tlog});
    ASSERT_TRUE(
        wait_until([&] { return read_file(tlog).find("listening on") != std::string::npos; }, 10s))
        << read_file(tlog);
    for (auto [a, b] : std::vector<std::pair<int, int>>{{0, 1}, {1, 2}, {2, 0}}) {
      EXPECT_EQ(run_command({"ping", "-c", "3", "-i", "0.2", "-W", "1", "-s", "256", "-p",
                             kPatternHex, lab_->pod(b).addr.str()},
                            nullptr, lab_->pod(a).netns),
                0);
    }
    // -U writes each packet as it is captured: wait for all 18 (9 requests, 9 replies).
    wait_until([&] { return udp_lines(pcap) >= 18; }, 5s);
    tcpdump.signal(SIGINT);
    ASSERT_TRUE(tcpdump.wait(5s));
  }
  std::string bytes = read_file(pcap);
  ASSERT_GT(bytes.size(), 24u);
  EXPECT_EQ(bytes.find(kPatternBytes), std::string::npos)
      << "the pods' payload crossed the underlay in clear";
  std::string icmp, wg;
  run_command({"tcpdump", "-n", "-r", pcap, "icmp"}, &icmp);
  run_command({"tcpdump", "-n", "-r", pcap, "udp port 51820"}, &wg);
  EXPECT_EQ(icmp.find(" ICMP "), std::string::npos) << icmp;
  EXPECT_GE(udp_lines(pcap), 18) << "expected WireGuard packets for 9 pings:\n" << wg;

  // Restart host 1: same key in the lease, the others' devices unchanged, pings recover.
  const std::string key = lease_key(0);
  const auto peers2 = peers(1), peers3 = peers(2);
  ASSERT_TRUE(lab_->stop(0).has_value());
  lab_->start(0);
  ASSERT_TRUE(wait_until([&] { return mesh_configured({0, 1, 2}); }, 20s));
  EXPECT_EQ(lease_key(0), key);
  EXPECT_EQ(peers(1), peers2);
  EXPECT_EQ(peers(2), peers3);
  // The others still hold sessions with host 1's previous device; host 1 handshakes with them
  // at start (its key was reused), so traffic *from* them heals at once, not after ~15 s.
  EXPECT_TRUE(wait_until(
      [&] {
        return pings({{1, 0}, {2, 0}});
      },
      5s))
      << "others -> restarted host";
  EXPECT_TRUE(pings({{0, 1}, {0, 2}}));
  std::string log = read_file(lab_->log_file(0));
  EXPECT_NE(log.find("using the private key in"), std::string::npos) << log;
  EXPECT_NE(log.find("no kernel WireGuard on this host (no wireguard module); using userspace"),
            std::string::npos)
      << log;
}

TEST_F(WireguardLab, SupervisorRestartsWireguardGoAndLeavingPeerIsRemoved) {
  ASSERT_TRUE(wait_until([&] { return mesh_configured({0, 1, 2}); }, 20s));
  ASSERT_TRUE(lab_->ping_matrix().empty());
  std::vector<pid_t> all_wg;
  for (int i = 0; i < 3; ++i) all_wg.push_back(wireguard_go_of(i));

  pid_t old_pid = wireguard_go_of(1);
  ASSERT_GT(old_pid, 0);
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
  auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until(
      [&] {
        pid_t p = wireguard_go_of(1);
        return p > 0 && p != old_pid && mesh_configured({0, 1, 2}) &&
               pings({{0, 1}, {1, 0}, {1, 2}});
      },
      5s))
      << "the mesh was not back within 5 s of killing wireguard-go";
  std::cerr << "mesh back "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - killed)
                   .count()
            << " ms after SIGKILL of wireguard-go\n";
  all_wg.push_back(wireguard_go_of(1));
  std::string log = read_file(lab_->log_file(1));
  EXPECT_NE(log.find("killed by signal 9"), std::string::npos) << log;
  EXPECT_NE(log.find("restarted"), std::string::npos) << log;

  // Host 3 leaves: its lease goes, the others drop it from their devices.
  const std::string gone = lease_key(2);
  ASSERT_TRUE(lab_->stop(2).has_value());
  ASSERT_EQ(lab_->ctl({"subnets", "rm", lab_->lease(2).str()}), 0);
  ASSERT_TRUE(wait_until([&] { return mesh_configured({0, 1}); }, 10s));
  for (int i : {0, 1})
    for (const auto& p : peers(i)) EXPECT_NE(p.public_key, gone);
  EXPECT_TRUE(pings({{0, 1}, {1, 0}}));

  // No wireguard-go survives its host.
  lab_.reset();
  EXPECT_TRUE(wait_until(
      [&] {
        for (pid_t p : all_wg) {
          std::ifstream in("/proc/" + std::to_string(p) + "/comm");
          std::string comm;
          if (in >> comm && comm == "wireguard-go") return false;
        }
        return true;
      },
      5s));
}

// "Implementation":"kernel" on this kernel, which has no wireguard module: flanneld stops with the
// clear error and leaves nothing behind: no flannel-wg link, no wireguard-go, no lease. (Kernel
// mode itself cannot run here; its messages are unit-tested in wireguard_genl_test.cc.)
TEST(WireguardKernelMode, ForcedWithoutTheModuleFailsClearlyLeavingNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::filesystem::create_directories("/run/wireguard");
  OverlayLab lab(
      "wgk",
      R"({"Network":"10.5.0.0/16","Backend":{"Type":"wireguard","Implementation":"kernel"}})", 1);
  if (run_command({"ip", "link", "add", "wgprobe0", "type", "wireguard"}, nullptr,
                  lab.host(0).netns) == 0) {
    GTEST_SKIP() << "this kernel has WireGuard: kernel mode would start";
  }
  lab.use_private_wireguard_dirs();
  lab.start(0);
  auto rc = lab.daemon(0)->wait(15s);
  ASSERT_TRUE(rc.has_value())
      << "flanneld kept running with kernel WireGuard forced on a kernel without it";
  EXPECT_NE(*rc, 0);
  std::string log = read_file(lab.log_file(0));
  EXPECT_NE(log.find("kernel WireGuard not available on this host (no wireguard module); use "
                     "\"Implementation\":\"userspace\" (Debian's wireguard-go) or \"auto\" in the "
                     "Backend config"),
            std::string::npos)
      << log;
  EXPECT_EQ(lab.ip(0, {"-o", "link", "show"}).find("flannel-wg"), std::string::npos)
      << lab.ip(0, {"link", "show"});
  EXPECT_TRUE(lab.leases().empty());
  // No wireguard-go in the host's network namespace.
  struct stat netns {};
  ASSERT_EQ(::stat(("/run/netns/" + lab.host(0).netns).c_str(), &netns), 0);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::ifstream in(e.path() / "comm");
    std::string comm;
    struct stat ns {};
    if (in >> comm && comm == "wireguard-go" && ::stat((e.path() / "ns/net").c_str(), &ns) == 0) {
      EXPECT_NE(ns.st_ino, netns.st_ino) << "wireguard-go " << e.path() << " runs in the lab host";
    }
  }
}

// iperf3 (TCP, 2 s) and ping RTT between pods on two hosts for wireguard (wireguard-go), udp and
// vxlan, in one run on the same machine, for bench/README.md's data path table.
TEST(WireguardBench, ThroughputAndRttAgainstUdpAndVxlan) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  if (!have_tools() || ::access("/usr/bin/iperf3", X_OK) != 0)
    GTEST_SKIP() << "needs wireguard-go, wg, iperf3";
  std::filesystem::create_directories("/run/wireguard");
  for (const std::string type : {"wireguard", "udp", "vxlan"}) {
    SCOPED_TRACE(type);
    OverlayLab lab("wgb", R"({"Network":"10.5.0.0/16","Backend":{"Type":")" + type + R"("}})", 2);
    if (type == "wireguard") lab.use_private_wireguard_dirs();
    lab.start_all();
    lab.wait_subnet(0);
    lab.wait_subnet(1);
    lab.add_pods();
    ASSERT_TRUE(wait_until([&] { return lab.ping(0, 1, 1) && lab.ping(1, 0, 1); }, 20s))
        << lab.dump();
    Process server({{"iperf3", "-s", "-B", lab.pod(1).addr.str()},
                    {},
                    {},
                    lab.pod(1).netns,
                    lab.dir() + "/iperf3.log"});
    ASSERT_TRUE(wait_until([&] { return tcp_listening(lab.pod(1).netns, 5201); }, 10s))
        << "iperf3 -s never listened:\n"
        << server.output();
    double bps = 0;
    std::string out;
    for (int attempt = 0; attempt < 20 && bps == 0; ++attempt) {
      // A backoff between retries of a failed run, not synchronisation: the server listens.
      if (attempt) std::this_thread::sleep_for(200ms);
      int rc = run_command({"iperf3", "-c", lab.pod(1).addr.str(), "-t", "2", "-J"}, &out,
                           lab.pod(0).netns);
      auto j =
          nlohmann::json::parse(out.substr(std::min(out.find('{'), out.size())), nullptr, false);
      if (rc == 0 && j.is_object() && j["end"]["sum_received"]["bits_per_second"].is_number())
        bps = j["end"]["sum_received"]["bits_per_second"].get<double>();
    }
    ASSERT_GT(bps, 1e6) << out;
    run_command({"ping", "-q", "-c", "20", "-i", "0.05", lab.pod(1).addr.str()}, &out,
                lab.pod(0).netns);
    auto at = out.find("= ");
    std::string rtt =
        at == std::string::npos ? "?" : out.substr(at + 2, out.find(' ', at + 2) - at - 2);
    std::cout << "[ bench    ] " << type << ": iperf3 pod h1 -> pod h2 "
              << static_cast<long>(bps / 1e6) << " Mbit/s; ping rtt min/avg/max/mdev " << rtt
              << " ms\n";
  }
}

}  // namespace
}  // namespace flannel::testing
