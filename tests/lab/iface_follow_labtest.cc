// The agent follows its host (issue 21): three lab hosts in a mesh, and host 1's underlay changes
// under its running flanneld.
//  - Address change (vxlan, host-gw, wireguard, udp): eth0's 10.250.0.1 becomes 10.250.0.101. Every
//    peer's entry for host 1 (host-gw route, vxlan FDB with the new VTEP MAC, wireguard
//    endpoint) points at the new address within 2 s; the same flanneld, the same subnet,
//    subnet.env byte for byte the same; pods ping 6/6.
//  - Link deleted and recreated (vxlan: the kernel deletes flannel.1 with its underlay), and set
//    down and up (host-gw: the kernel drops the routes through it): /readyz goes 503 and back to
//    200, host 1's entries for every peer are back within 2 s of the link's return, pods ping 6/6.
//  - Default route moved to another link (host 1 without -iface): the route notification alone
//    moves the agent to that link.
// The follow times are printed ("[ follow ]") for the note and the README.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "tests/lab/overlay_lab.h"
#include "tests/lab/rules_lab.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

const char* const kNewAddr = "10.250.0.101";

const char* const kNewAddr6 = "fd00:250::101";

std::string config(const std::string& backend) {
  if (backend == "vxlan-dual")
    return R"({"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:5::/48",)"
           R"("Backend":{"Type":"vxlan"}})";
  return R"({"Network":"10.5.0.0/16","Backend":{"Type":")" + backend + R"("}})";
}

bool have_wireguard_tools() {
  return ::access("/usr/bin/wireguard-go", X_OK) == 0 && ::access("/usr/bin/wg", X_OK) == 0 &&
         ::access("/dev/net/tun", R_OK | W_OK) == 0;
}

class IfaceFollowLab : public ::testing::TestWithParam<std::string> {
 protected:
  // `customize` (optional) changes each host's flanneld command line.
  void start(const std::string& backend,
             std::function<void(int, Process::Spec&)> customize = nullptr) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    if (backend == "wireguard" && !have_wireguard_tools())
      GTEST_SKIP() << "needs wireguard-go and wireguard-tools (scripts/deps.sh)";
    dual_ = backend == "vxlan-dual";
    backend_ = dual_ ? "vxlan" : backend;
    lab_ = std::make_unique<OverlayLab>("fo", config(backend), 3);
    if (backend == "wireguard") lab_->use_private_wireguard_dirs();
    auto wrap = lab_->customize_start;
    lab_->customize_start = [wrap, customize](int i, Process::Spec& spec) {
      spec.argv.push_back("-healthz-port=" + std::to_string(kHealthzPort));
      if (wrap) wrap(i, spec);
      if (customize) customize(i, spec);
    };
    lab_->start_all();
    for (int i = 0; i < 3; ++i) lab_->wait_subnet(i);
    lab_->add_pods();
    ASSERT_TRUE(wait_until([&] { return has_every_peer(0) && has_every_peer(1); }, 15s));
    ASSERT_TRUE(pods_ping());
  }
  void TearDown() override {
    if (HasFailure() && lab_) std::cerr << lab_->dump();
    lab_.reset();
  }

  std::string in_host(int i, const std::vector<std::string>& argv) const {
    std::string out;
    run_command(argv, &out, lab_->host(i).netns);
    return out;
  }
  // Host j's entry for host i's subnet names `addr` as where host i is.
  bool peer_points_at(int j, int i, const std::string& addr) const {
    const std::string subnet = lab_->lease(i).str();
    if (backend_ == "host-gw")
      return contains(in_host(j, {"ip", "route", "show", subnet}), "via " + addr + " ");
    if (backend_ == "vxlan") {
      const std::string mac = lab_->leases().at(subnet)["BackendData"]["VtepMAC"];
      return contains(in_host(j, {"bridge", "fdb", "show", "dev", "flannel.1"}),
                      mac + " dst " + addr + " ");
    }
    // udp: the peer table is flanneld's own; a pod's packet reaches host i only if host j sends
    // it to where host i is (its old address is gone).
    if (backend_ == "udp")  // one short ping: a lost one costs 100 ms of the measurement, not 1 s
      return run_command({"ping", "-c", "1", "-W", "0.1", lab_->pod(i).addr.str()}, nullptr,
                         lab_->pod(j).netns) == 0;
    std::string out;  // wireguard: the device lives in flanneld's mount namespace (its UAPI)
    run_command({"nsenter", "-t", std::to_string(lab_->daemon(j)->pid()), "-m", "-n", "wg", "show",
                 "flannel-wg", "endpoints"},
                &out);
    return contains(out, addr + ":51820");
  }
  // Host i has an entry for every other host at its address (and, but for wireguard's and
  // udp's one route to the whole network, a route to its subnet).
  bool has_every_peer(int i) const {
    for (int j = 0; j < 3; ++j) {
      if (j == i) continue;
      if (!peer_points_at(i, j, lab_->host(j).addr.str())) return false;
      const bool one_route = backend_ == "wireguard" || backend_ == "udp";
      if (!one_route && lab_->route(i, lab_->lease(j)).empty()) return false;
    }
    return true;
  }
  bool pods_ping() const {
    std::vector<std::string> failed;
    bool ok = wait_until(
        [&] {
          failed = lab_->ping_matrix();
          if (dual_ && failed.empty()) failed = lab_->ping_matrix(true);
          return failed.empty();
        },
        10s);
    if (!ok) ADD_FAILURE() << "pings failed: " << join(failed, ", ");
    return ok;
  }
  int readyz(int i) const { return http_get(*lab_, i, "/readyz"); }
  void print(const char* what, long long ms) const {
    std::printf("[ follow ] %s, %s: %lld ms\n", backend_.c_str(), what, ms);
  }

  // Host 1's link goes away (`lose`: deleted, or down) and comes back (`give_back`): not ready
  // meanwhile, `back` (every peer entry) within 2 s of its return, the same flanneld and
  // subnet.env, ready again.
  void lose_and_return(const std::function<void()>& lose, const std::function<void()>& give_back,
                       const char* what, const std::function<bool()>& back) {
    const pid_t pid = lab_->daemon(0)->pid();
    const std::string env_before = read_file(lab_->subnet_file(0));
    lose();
    EXPECT_TRUE(wait_until([&] { return readyz(0) == 503; }, 5s)) << "still ready without eth0";
    EXPECT_TRUE(lab_->daemon(0)->running());
    give_back();
    const auto returned = Clock::now();
    ASSERT_TRUE(wait_until(back, 2s)) << "peers not back 2 s after eth0 returned";
    print(what, ms_since(returned));
    EXPECT_TRUE(wait_until([&] { return readyz(0) == 200; }, 5s));
    EXPECT_EQ(lab_->daemon(0)->pid(), pid);
    EXPECT_EQ(read_file(lab_->subnet_file(0)), env_before);
  }

  std::string backend_;
  bool dual_ = false;
  std::unique_ptr<OverlayLab> lab_;
};

TEST_P(IfaceFollowLab, AddressChangeIsFollowedWithoutARestart) {
  ASSERT_NO_FATAL_FAILURE(start(GetParam()));
  if (IsSkipped()) return;
  const pid_t pid = lab_->daemon(0)->pid();
  const IP4Net subnet = lab_->lease(0);
  const std::string env_before = read_file(lab_->subnet_file(0));
  const std::string old_addr = lab_->host(0).addr.str();

  // A new primary address on eth0, the old one removed (promoted secondary: the prefix route
  // stays), as DHCP renumbering a host leaves it.
  const std::string& ns = lab_->host(0).netns;
  ASSERT_EQ(run_command({"sysctl", "-qw", "net.ipv4.conf.eth0.promote_secondaries=1"}, nullptr, ns),
            0);
  ASSERT_EQ(
      run_command({"ip", "addr", "add", std::string(kNewAddr) + "/24", "dev", "eth0"}, nullptr, ns),
      0);
  const auto changed = Clock::now();
  ASSERT_EQ(run_command({"ip", "addr", "del", old_addr + "/24", "dev", "eth0"}, nullptr, ns), 0);
  run_command({"ip", "route", "replace", "default", "via", kHub4}, nullptr, ns);

  const bool followed = wait_until(
      [&] { return peer_points_at(1, 0, kNewAddr) && peer_points_at(2, 0, kNewAddr); }, 2s);
  const long long ms = ms_since(changed);
  ASSERT_TRUE(followed) << "peers still route to " << old_addr << " after 2 s";
  print("address change, every peer at the new address", ms);

  EXPECT_EQ(lab_->leases().at(subnet.str())["PublicIP"], kNewAddr);
  EXPECT_TRUE(lab_->daemon(0)->running());
  EXPECT_EQ(lab_->daemon(0)->pid(), pid);
  EXPECT_EQ(read_file(lab_->subnet_file(0)), env_before);  // same subnet, MTU: not rewritten
  const std::string log = read_file(lab_->log_file(0));
  EXPECT_TRUE(contains(log, "External interface eth0")) << log;
  EXPECT_TRUE(contains(log, "is now eth0")) << log;
  EXPECT_TRUE(contains(log, kNewAddr)) << log;
  EXPECT_TRUE(has_every_peer(0));
  EXPECT_TRUE(pods_ping());
  EXPECT_EQ(readyz(0), 200);
}

INSTANTIATE_TEST_SUITE_P(Backends, IfaceFollowLab,
                         ::testing::Values("vxlan", "host-gw", "wireguard", "udp"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::erase(n, '-');
                           return n;
                         });

using IfaceLossLab = IfaceFollowLab;

TEST_F(IfaceLossLab, VxlanLinkDeletedAndRecreated) {
  ASSERT_NO_FATAL_FAILURE(start("vxlan"));
  if (IsSkipped()) return;
  lose_and_return([&] { lab_->lab().unplug(1); }, [&] { lab_->lab().plug(1); },
                  "link deleted and recreated, every peer back", [&] { return has_every_peer(0); });
  EXPECT_TRUE(pods_ping());
}

TEST_F(IfaceLossLab, HostGwLinkDownAndUp) {
  ASSERT_NO_FATAL_FAILURE(start("host-gw"));
  if (IsSkipped()) return;
  const std::string& ns = lab_->host(0).netns;
  lose_and_return(
      [&] {
        run_command({"ip", "link", "set", "eth0", "down"}, nullptr, ns);
      },
      [&] {
        run_command({"ip", "link", "set", "eth0", "up"}, nullptr, ns);
        run_command({"ip", "route", "replace", "default", "via", kHub4}, nullptr, ns);
      },
      "link down and up, every peer back", [&] { return has_every_peer(0); });
  EXPECT_TRUE(pods_ping());
}

// Someone deletes flannel.1 (the underlay stays): the agent notices the deletion, sets the
// backend up again and programs every peer, as current flannel does only when the underlay
// returns (and without re-adding peers, facts-2 §4).
TEST_F(IfaceLossLab, VxlanDeviceDeletedIsRecreatedWithItsPeers) {
  ASSERT_NO_FATAL_FAILURE(start("vxlan"));
  if (IsSkipped()) return;
  const pid_t pid = lab_->daemon(0)->pid();
  ASSERT_EQ(run_command({"ip", "link", "del", "flannel.1"}, nullptr, lab_->host(0).netns), 0);
  const auto deleted = Clock::now();
  ASSERT_TRUE(wait_until([&] { return has_every_peer(0); }, 2s)) << "flannel.1 not back in 2 s";
  print("flannel.1 deleted, recreated with every peer", ms_since(deleted));
  EXPECT_EQ(lab_->daemon(0)->pid(), pid);
  EXPECT_TRUE(contains(read_file(lab_->log_file(0)), "device flannel.1 was deleted"));
  EXPECT_TRUE(pods_ping());
}

// Dual stack: the IPv6 address changes; the lease's PublicIPv6 and every peer's flannel-v6.1 FDB
// entry follow, the IPv4 side stays as it was.
TEST_F(IfaceLossLab, DualStackIPv6AddressChangeIsFollowed) {
  ASSERT_NO_FATAL_FAILURE(start("vxlan-dual"));
  if (IsSkipped()) return;
  const pid_t pid = lab_->daemon(0)->pid();
  const std::string subnet = lab_->lease(0).str();
  const std::string env_before = read_file(lab_->subnet_file(0));
  const std::string& ns = lab_->host(0).netns;
  ASSERT_EQ(run_command(
                {"ip", "-6", "addr", "add", std::string(kNewAddr6) + "/64", "dev", "eth0", "nodad"},
                nullptr, ns),
            0);
  const auto changed = Clock::now();
  ASSERT_EQ(
      run_command({"ip", "-6", "addr", "del", lab_->host(0).addr6.str() + "/64", "dev", "eth0"},
                  nullptr, ns),
      0);
  run_command({"ip", "-6", "route", "replace", "default", "via", kHub6}, nullptr, ns);
  auto at_new_address = [&](int j) {
    const std::string mac = lab_->leases().at(subnet)["BackendV6Data"]["VtepMAC"];
    return contains(in_host(j, {"bridge", "fdb", "show", "dev", "flannel-v6.1"}),
                    mac + " dst " + kNewAddr6 + " ");
  };
  ASSERT_TRUE(wait_until([&] { return at_new_address(1) && at_new_address(2); }, 2s));
  print("IPv6 address change (dual stack), every peer at the new address", ms_since(changed));
  auto lease = lab_->leases().at(subnet);
  EXPECT_EQ(lease["PublicIPv6"], kNewAddr6);
  EXPECT_EQ(lease["PublicIP"], lab_->host(0).addr.str());
  EXPECT_EQ(lab_->daemon(0)->pid(), pid);
  EXPECT_EQ(read_file(lab_->subnet_file(0)), env_before);
  EXPECT_TRUE(pods_ping());
}

// Host 1 runs without -iface: its interface is its default route's (eth0). A second cable to
// host 2 (eth1, 10.251.0.1) comes, and the default route moves to it, with no link or address
// event on eth0: the route notification alone makes the agent choose eth1, republish
// 10.251.0.1, and every peer follow; pods of hosts 1 and 2 ping each other (host 3 has no
// route to 10.251.0.0/24).
TEST_F(IfaceLossLab, DefaultRouteMovedToAnotherLinkIsFollowed) {
  ASSERT_NO_FATAL_FAILURE(start("vxlan", [](int i, Process::Spec& spec) {
    if (i == 0) std::erase(spec.argv, std::string("-iface=eth0"));
  }));
  if (IsSkipped()) return;
  const pid_t pid = lab_->daemon(0)->pid();
  const std::string subnet = lab_->lease(0).str();
  const std::string env_before = read_file(lab_->subnet_file(0));
  lab_->lab().cable(1, 2);
  const std::string new_addr = "10.251.0.1";
  // eth0's link-local address ends its duplicate detection about a second after the link came
  // up, and that address event would make the agent look again by itself: let it pass first.
  ASSERT_TRUE(wait_until(
      [&] {
        return in_host(0, {"ip", "-6", "addr", "show", "dev", "eth0", "tentative"}).empty();
      },
      5s));
  ASSERT_EQ(run_command({"ip", "route", "replace", "default", "via", "10.251.0.2", "dev", "eth1"},
                        nullptr, lab_->host(0).netns),
            0);
  const auto moved = Clock::now();
  ASSERT_TRUE(wait_until(
      [&] { return peer_points_at(1, 0, new_addr) && peer_points_at(2, 0, new_addr); }, 2s))
      << "peers still route to " << lab_->host(0).addr.str()
      << " 2 s after the default route moved";
  print("default route moved to another link, every peer at its address", ms_since(moved));
  EXPECT_EQ(lab_->leases().at(subnet)["PublicIP"], new_addr);
  EXPECT_EQ(lab_->daemon(0)->pid(), pid);
  EXPECT_EQ(read_file(lab_->subnet_file(0)), env_before);
  EXPECT_TRUE(contains(read_file(lab_->log_file(0)), "is now eth1"));
  EXPECT_TRUE(lab_->ping(0, 1) && lab_->ping(1, 0)) << "pods of hosts 1 and 2";
}

}  // namespace
}  // namespace flannel::testing
