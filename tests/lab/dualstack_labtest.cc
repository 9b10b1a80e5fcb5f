// Dual stack data plane (issue 12, facts §2.6/§2.7): the vxlan and host-gw backends driven
// directly (no flanneld) on three lab hosts with IPv4 and IPv6 underlay addresses (Lab), with
// hand-built leases holding both subnets; real pods ping and ping6 each other across hosts.
// Also: IPv6-only vxlan, a second sync that changes nothing in the kernel, a peer that leaves
// is removed from both families, a peer with a bad BackendV6Data is skipped (IPv4 kept), and
// host-gw's route check re-adds a deleted IPv6 route. (udp and wireguard refusing EnableIPv6:
// tests/backends/dualstack_test.cc.)
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/hostgw/hostgw.h"
#include "backends/netlink/netlink.h"
#include "backends/vxlan/vxlan.h"
#include "core/config.h"
#include "tests/support/lab.h"
#include "tests/support/process.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

Config dual_config(const std::string& type, bool v4 = true) {
  Config c;
  c.enable_ipv4 = v4;
  c.enable_ipv6 = true;
  if (v4) {
    c.network = IP4Net::parse("10.5.0.0/16");
    c.subnet_len = 24;
    c.subnet_min = IP4::parse("10.5.1.0");
    c.subnet_max = IP4::parse("10.5.255.0");
  }
  c.ipv6_network = IP6Net::parse("fc00::/48");
  c.ipv6_subnet_len = 64;
  c.ipv6_subnet_min = IP6::parse("fc00:0:0:1::");
  c.ipv6_subnet_max = IP6::parse("fc00:0:0:ffff::");
  c.backend_type = type;
  c.backend_json = "{\"Type\":\"" + type + "\"}";
  return c;
}

IP6Net v6_subnet(int i) { return IP6Net::parse("fc00:0:0:" + std::to_string(i) + "::/64"); }
IP4Net v4_subnet(int i) { return IP4Net::parse("10.5." + std::to_string(i) + ".0/24"); }

// One lab host's backend, set up inside its namespace as flanneld would, holding lease i+1.
struct Node {
  std::unique_ptr<Backend> backend;
  Lease lease;
  std::vector<std::string> notes;
};

class DualStack {
 public:
  // `v4_only_hosts`: hosts (0-based) that run an IPv4-only config, as a v0.11 host would: no
  // IPv6 subnet, PublicIPv6 or BackendV6Data in their lease.
  DualStack(const std::string& tag, const Config& config, int hosts,
            const std::vector<int>& v4_only_hosts = {})
      : config_(config) {
    cleanup_stale_labs();
    lab_ = std::make_unique<Lab>(tag);
    for (int i = 0; i < hosts; ++i) lab_->add_host();
    nodes_.resize(hosts);
    for (int i = 0; i < hosts; ++i) {
      const Lab::Host& h = lab_->hosts()[i];
      EnterNetns in(h.netns);
      Node& n = nodes_[i];
      n.backend = make_backend(config.backend_type);
      n.backend->set_notify([&n](const std::string& line) { n.notes.push_back(line); });
      NetlinkSession nl;
      auto eth = nl.link_by_name("eth0");
      if (!eth) throw std::runtime_error("no eth0 in " + h.netns);
      ExternalInterface ext{"eth0", eth->index, eth->mtu, h.addr, h.addr, h.addr6, h.addr6};
      bool v4_only =
          std::find(v4_only_hosts.begin(), v4_only_hosts.end(), i) != v4_only_hosts.end();
      Config host_config = config;
      if (v4_only) {
        host_config.enable_ipv6 = false;
        ext.iface_v6_addr.reset();
        ext.ext_v6_addr.reset();
        v4_only_.push_back(i);
      }
      BackendSetup s = n.backend->setup(host_config, ext);
      if (!v4_only) mtu_ = s.mtu;
      n.lease.subnet = config.enable_ipv4 ? v4_subnet(i + 1) : IP4Net{};
      if (!v4_only) n.lease.ipv6_subnet = v6_subnet(i + 1);
      n.lease.attrs = s.attrs;
      n.backend->lease_acquired(n.lease);
    }
  }

  ~DualStack() {
    nodes_.clear();  // backends (and their sockets) before the namespaces
    lab_.reset();
  }

  int size() const { return static_cast<int>(nodes_.size()); }
  Node& node(int i) { return nodes_[i]; }
  Lab& lab() { return *lab_; }
  int mtu() const { return mtu_; }

  // Every other node's lease, except those in `gone`.
  std::vector<Lease> peers_of(int i, const std::vector<int>& gone = {}) const {
    std::vector<Lease> out;
    for (int j = 0; j < size(); ++j) {
      if (j == i || std::find(gone.begin(), gone.end(), j) != gone.end()) continue;
      out.push_back(nodes_[j].lease);
    }
    return out;
  }
  void sync_all() {
    for (int i = 0; i < size(); ++i) nodes_[i].backend->sync(peers_of(i));
  }

  void add_pods() {
    for (int i = 0; i < size(); ++i) {
      IP4Net gw4{IP4{v4_subnet(i + 1).ip.value + 1}, 24};
      if (!config_.enable_ipv4)
        gw4 = IP4Net{IP4::parse("10.99." + std::to_string(i + 1) + ".1"), 24};
      std::optional<IP6Net> gw6 =
          IP6Net{IP6::parse("fc00:0:0:" + std::to_string(i + 1) + "::1"), 64};
      if (std::find(v4_only_.begin(), v4_only_.end(), i) != v4_only_.end()) gw6.reset();
      pods_.push_back(lab_->add_pod(lab_->hosts()[i], gw4, gw6));
    }
  }

  bool ping(int i, int j, bool v6) const {
    std::string dst = v6 ? pods_[j].addr6->str() : pods_[j].addr.str();
    for (int a = 0; a < 3; ++a)
      if (run_command({"ping", v6 ? "-6" : "-4", "-c", "1", "-W", "1", dst}, nullptr,
                      pods_[i].netns) == 0)
        return true;
    return false;
  }
  // The ordered pairs that failed ("1->2"); empty = all n*(n-1) pings answered.
  std::vector<std::string> ping_matrix(bool v6) const {
    std::vector<std::string> failed;
    for (int i = 0; i < size(); ++i)
      for (int j = 0; j < size(); ++j)
        if (i != j && !ping(i, j, v6))
          failed.push_back(std::to_string(i + 1) + "->" + std::to_string(j + 1));
    return failed;
  }

  std::string ip(int i, const std::vector<std::string>& args) const {
    return ip_output(lab_->hosts()[i].netns, args);
  }
  // `bridge fdb show`, only the entries with a dst (those of the vxlan devices).
  std::string bridge_fdb(int i) const {
    std::string out, kept, line;
    run_command({"bridge", "fdb", "show"}, &out, lab_->hosts()[i].netns);
    std::istringstream in(out);
    while (std::getline(in, line))
      if (line.find(" dst ") != std::string::npos) kept += line + "\n";
    return kept;
  }
  // Everything the backends write, for "a second sync changes nothing".
  std::string kernel_dump(int i) const {
    return ip(i, {"link", "show"}) + ip(i, {"addr", "show"}) + ip(i, {"route", "show"}) +
           ip(i, {"-6", "route", "show"}) + ip(i, {"neigh", "show", "nud", "permanent"}) +
           ip(i, {"-6", "neigh", "show", "nud", "permanent"}) + bridge_fdb(i);
  }
  std::string dump() const {
    std::string s;
    for (int i = 0; i < size(); ++i)
      s += "---- host " + std::to_string(i + 1) + "\n" + kernel_dump(i);
    return s;
  }

 private:
  Config config_;
  std::unique_ptr<Lab> lab_;
  std::vector<Node> nodes_;
  std::vector<Lab::Pod> pods_;
  std::vector<int> v4_only_;
  int mtu_ = 0;
};

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

TEST(DualStackLab, VxlanThreeHostsPingBothFamiliesResyncAndLeave) {
  DualStack ds("dsvx", dual_config("vxlan"), 3);
  ds.sync_all();
  ds.add_pods();
  ASSERT_TRUE(ds.ping_matrix(false).empty()) << ds.dump();
  auto failed6 = ds.ping_matrix(true);
  ASSERT_TRUE(failed6.empty()) << failed6.size() << " of 6 ping6 failed\n" << ds.dump();

  // The IPv6 device as current flannel makes it, and what the lease publishes.
  auto* vx = static_cast<VxlanBackend*>(ds.node(0).backend.get());
  EXPECT_EQ(vx->device6(), "flannel-v6.1");
  std::string link = ds.ip(0, {"-d", "link", "show", "flannel-v6.1"});
  EXPECT_TRUE(contains(link, "vxlan id 1 local fd00:250::1 dev eth0")) << link;
  EXPECT_TRUE(contains(link, "nolearning")) << link;
  EXPECT_TRUE(contains(link, "mtu 1430")) << link;  // 1500 - 70: the IPv6 outer header
  EXPECT_TRUE(contains(link, vx->vtep_mac6().str())) << link;
  EXPECT_NE(vx->vtep_mac6(), vx->vtep_mac());
  EXPECT_EQ(ds.mtu(), 1430);  // FLANNEL_MTU: what fits both devices
  EXPECT_TRUE(contains(ds.ip(0, {"link", "show", "flannel.1"}), "mtu 1450"));
  const LeaseAttrs& a = ds.node(0).lease.attrs;
  EXPECT_EQ(a.public_ipv6, ds.lab().hosts()[0].addr6);
  EXPECT_EQ(a.backend_v6_data, "{\"VNI\":1,\"VtepMAC\":\"" + vx->vtep_mac6().str() + "\"}");
  EXPECT_EQ(a.backend_data, "{\"VtepMAC\":\"" + vx->vtep_mac().str() + "\"}");
  EXPECT_TRUE(
      contains(ds.ip(0, {"-6", "addr", "show", "dev", "flannel-v6.1"}), "fc00:0:0:1::/128"));
  std::string accept_ra;
  run_command({"sysctl", "-n", "net.ipv6.conf.flannel-v6/1.accept_ra"}, &accept_ra,
              ds.lab().hosts()[0].netns);
  EXPECT_EQ(accept_ra, "0\n");
  std::string r6 = ds.ip(0, {"-6", "route", "show", "fc00:0:0:2::/64"});
  EXPECT_TRUE(contains(r6, "via fc00:0:0:2:: dev flannel-v6.1")) << r6;
  EXPECT_TRUE(contains(r6, "onlink")) << r6;
  auto* vx2 = static_cast<VxlanBackend*>(ds.node(1).backend.get());
  EXPECT_TRUE(
      contains(ds.bridge_fdb(0), vx2->vtep_mac6().str() + " dev flannel-v6.1 dst fd00:250::2"))
      << ds.bridge_fdb(0);
  EXPECT_TRUE(contains(ds.ip(0, {"-6", "neigh", "show", "dev", "flannel-v6.1"}),
                       "fc00:0:0:2:: lladdr " + vx2->vtep_mac6().str() + " PERMANENT"));

  // A second sync with the same set (a restart's first sync): nothing written, nothing changed.
  std::vector<std::string> before;
  for (int i = 0; i < ds.size(); ++i) before.push_back(ds.kernel_dump(i));
  size_t writes = vx->kernel_writes();
  ds.sync_all();
  EXPECT_EQ(vx->kernel_writes(), writes);
  for (int i = 0; i < ds.size(); ++i) EXPECT_EQ(ds.kernel_dump(i), before[i]) << "host " << i + 1;

  // A peer with an IPv6 subnet but a bad BackendV6Data: skipped with a note, IPv4 kept.
  Lease odd = ds.node(2).lease;
  odd.subnet = v4_subnet(9);
  odd.ipv6_subnet = v6_subnet(9);
  odd.attrs.backend_v6_data = "{\"VtepMAC\":\"nonsense\"}";
  ds.node(0).backend->apply({{PeerEvent::Type::kAdded, odd}});
  EXPECT_TRUE(ds.ip(0, {"-6", "route", "show", "fc00:0:0:9::/64"}).empty());
  EXPECT_FALSE(ds.ip(0, {"route", "show", "10.5.9.0/24"}).empty());
  bool noted = false;
  for (auto& n : ds.node(0).notes)
    noted |= contains(n, "fc00:0:0:9::/64") && contains(n, "nonsense");
  EXPECT_TRUE(noted);
  Lease no_pub = odd;
  no_pub.attrs.backend_v6_data = ds.node(2).lease.attrs.backend_v6_data;
  no_pub.attrs.public_ipv6.reset();
  ds.node(0).backend->apply({{PeerEvent::Type::kAdded, no_pub}});
  EXPECT_TRUE(ds.ip(0, {"-6", "route", "show", "fc00:0:0:9::/64"}).empty());
  ds.node(0).backend->apply({{PeerEvent::Type::kRemoved, odd}});

  // Host 3 leaves: hosts 1 and 2 lose every entry of both families pointing at it.
  auto* vx3 = static_cast<VxlanBackend*>(ds.node(2).backend.get());
  ds.node(0).backend->apply({{PeerEvent::Type::kRemoved, ds.node(2).lease}});
  ds.node(1).backend->sync(ds.peers_of(1, {2}));
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(ds.ip(i, {"route", "show", "10.5.3.0/24"}).empty()) << ds.dump();
    EXPECT_TRUE(ds.ip(i, {"-6", "route", "show", "fc00:0:0:3::/64"}).empty()) << ds.dump();
    EXPECT_FALSE(contains(ds.bridge_fdb(i), vx3->vtep_mac6().str())) << ds.bridge_fdb(i);
    EXPECT_FALSE(contains(ds.bridge_fdb(i), vx3->vtep_mac().str())) << ds.bridge_fdb(i);
    EXPECT_FALSE(contains(ds.ip(i, {"-6", "neigh", "show"}), "fc00:0:0:3::")) << ds.dump();
  }
  EXPECT_TRUE(ds.ping(0, 1, true));
  EXPECT_TRUE(ds.ping(1, 0, false));
}

TEST(DualStackLab, VxlanStaleIpv6EntriesRemovedOnSync) {
  DualStack ds("dsvs", dual_config("vxlan"), 3);
  ds.sync_all();
  // Host 1 "restarts" while host 3's lease vanished: a fresh backend's sync removes its entries.
  const Lab::Host& h = ds.lab().hosts()[0];
  auto* old = static_cast<VxlanBackend*>(ds.node(0).backend.get());
  MacAddr mac6 = old->vtep_mac6();
  {
    EnterNetns in(h.netns);
    auto fresh = make_backend("vxlan");
    NetlinkSession nl;
    auto eth = nl.link_by_name("eth0");
    ExternalInterface ext{"eth0", eth->index, eth->mtu, h.addr, h.addr, h.addr6, h.addr6};
    BackendSetup s = fresh->setup(dual_config("vxlan"), ext);
    EXPECT_EQ(s.attrs.backend_v6_data, ds.node(0).lease.attrs.backend_v6_data);  // device reused
    fresh->lease_acquired(ds.node(0).lease);
    fresh->sync(ds.peers_of(0, {2}));
    auto* vx = static_cast<VxlanBackend*>(fresh.get());
    EXPECT_EQ(vx->vtep_mac6(), mac6);
    EXPECT_GE(vx->reconciled_entries(), 6u);  // v4 and v6: route, neighbour, FDB entry each
  }
  EXPECT_TRUE(ds.ip(0, {"-6", "route", "show", "fc00:0:0:3::/64"}).empty()) << ds.dump();
  EXPECT_FALSE(ds.ip(0, {"-6", "route", "show", "fc00:0:0:2::/64"}).empty()) << ds.dump();
  EXPECT_FALSE(contains(ds.bridge_fdb(0), "dst fd00:250::3")) << ds.bridge_fdb(0);
  EXPECT_TRUE(contains(ds.bridge_fdb(0), "dst fd00:250::2")) << ds.bridge_fdb(0);
}

TEST(DualStackLab, VxlanIpv6Only) {
  DualStack ds("dsv6", dual_config("vxlan", /*v4=*/false), 3);
  ds.sync_all();
  ds.add_pods();
  auto failed6 = ds.ping_matrix(true);
  ASSERT_TRUE(failed6.empty()) << failed6.size() << " of 6 ping6 failed\n" << ds.dump();
  std::string links = ds.ip(0, {"-o", "link", "show"});
  EXPECT_FALSE(contains(links, " flannel.1:")) << links;
  EXPECT_TRUE(contains(links, " flannel-v6.1:")) << links;
  EXPECT_EQ(ds.mtu(), 1430);
  EXPECT_EQ(ds.node(0).lease.attrs.backend_data, "");
  EXPECT_NE(ds.node(0).lease.attrs.backend_v6_data, "");
}

// A v0.11-style IPv4-only host (lease without any IPv6 part) beside two dual-stack hosts: IPv4
// pods ping across all three, IPv6 pods between the dual-stack two, and nobody gets IPv6 entries
// for the IPv4-only host.
TEST(DualStackLab, VxlanMixedWithAnIpv4OnlyHost) {
  DualStack ds("dsmx", dual_config("vxlan"), 3, {2});
  ds.sync_all();
  ds.add_pods();
  auto failed = ds.ping_matrix(false);
  ASSERT_TRUE(failed.empty()) << failed.size() << " of 6 pings failed\n" << ds.dump();
  EXPECT_TRUE(ds.ping(0, 1, true)) << ds.dump();
  EXPECT_TRUE(ds.ping(1, 0, true)) << ds.dump();
  EXPECT_FALSE(ds.node(2).lease.ipv6_subnet.has_value());
  EXPECT_EQ(ds.node(2).lease.attrs.backend_v6_data, "");
  std::string links = ds.ip(2, {"-o", "link", "show"});
  EXPECT_FALSE(contains(links, "flannel-v6.1")) << links;
  EXPECT_TRUE(ds.ip(0, {"-6", "route", "show", "fc00:0:0:3::/64"}).empty());
  EXPECT_TRUE(ds.node(0).notes.empty()) << ds.node(0).notes.front();
}

TEST(DualStackLab, HostGwThreeHostsPingBothFamiliesCheckAndLeave) {
  DualStack ds("dshg", dual_config("host-gw"), 3);
  ds.sync_all();
  ds.add_pods();
  ASSERT_TRUE(ds.ping_matrix(false).empty()) << ds.dump();
  auto failed6 = ds.ping_matrix(true);
  ASSERT_TRUE(failed6.empty()) << failed6.size() << " of 6 ping6 failed\n" << ds.dump();
  std::string r6 = ds.ip(0, {"-6", "route", "show", "fc00:0:0:2::/64"});
  EXPECT_TRUE(contains(r6, "via fd00:250::2 dev eth0")) << r6;
  EXPECT_EQ(ds.node(0).lease.attrs.public_ipv6, ds.lab().hosts()[0].addr6);

  // A second sync changes nothing.
  std::vector<std::string> before;
  for (int i = 0; i < ds.size(); ++i) before.push_back(ds.kernel_dump(i));
  auto* hg = static_cast<HostGwBackend*>(ds.node(0).backend.get());
  size_t writes = hg->kernel_writes();
  ds.sync_all();
  EXPECT_EQ(hg->kernel_writes(), writes);
  for (int i = 0; i < ds.size(); ++i) EXPECT_EQ(ds.kernel_dump(i), before[i]) << "host " << i + 1;

  // The route check re-adds a deleted IPv6 route.
  ds.ip(0, {"-6", "route", "del", "fc00:0:0:2::/64"});
  ASSERT_TRUE(ds.ip(0, {"-6", "route", "show", "fc00:0:0:2::/64"}).empty());
  ds.node(0).backend->check();
  EXPECT_TRUE(contains(ds.ip(0, {"-6", "route", "show", "fc00:0:0:2::/64"}), "via fd00:250::2"));

  // Host 3 leaves: removed from both families (by event on host 1, by sync on host 2).
  ds.node(0).backend->apply({{PeerEvent::Type::kRemoved, ds.node(2).lease}});
  ds.node(1).backend->sync(ds.peers_of(1, {2}));
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(ds.ip(i, {"route", "show", "10.5.3.0/24"}).empty()) << ds.dump();
    EXPECT_TRUE(ds.ip(i, {"-6", "route", "show", "fc00:0:0:3::/64"}).empty()) << ds.dump();
  }
  EXPECT_TRUE(ds.ping(0, 1, true));
}

}  // namespace
}  // namespace flannel::testing
