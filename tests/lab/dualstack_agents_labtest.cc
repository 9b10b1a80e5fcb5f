// Dual stack with real flanneld processes (issue 12): three lab hosts, each running our flanneld
// with "EnableIPv6":true over the lab's IPv4 and IPv6 underlay, on vxlan and host-gw, sharing a
// SQLite file or a real etcd (v2). One case per combination checks, in order:
//   - both subnets leased, subnet.env's IPv6 lines, both routes to every peer;
//   - pods with an IPv4 and an IPv6 address ping 6/6 and ping6 6/6 across hosts;
//   - with -ip-masq the ip6tables rules are there, and one the test deletes is put back within
//     the -iptables-resync period (1 s here);
//   - restarting one agent changes nothing in any host's kernel (routes of both families,
//     permanent neighbours, vxlan FDB entries, nexthop objects: the same dumps before and after,
//     and no such netlink change at all in the restarted host meanwhile);
//   - a peer that leaves (agent stopped, lease deleted with etcdctl or flannelctl) is removed
//     from the other hosts in both families.
// (The backends alone, without flanneld: dualstack_labtest.cc.)
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "backends/rules/iptables.h"
#include "core/lease.h"
#include "tests/lab/overlay_lab.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using Param = std::tuple<std::string, LabStore::Kind>;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

int count_of(const std::string& hay, const std::string& needle) {
  int n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// `bridge fdb show` lines with a dst: the entries of the vxlan devices (the pods' learned MACs on
// cni0 age and are not ours).
std::string vxlan_fdb(const OverlayLab& lab, int i) {
  std::string out, kept, line;
  run_command({"bridge", "fdb", "show"}, &out, lab.host(i).netns);
  std::istringstream in(out);
  while (std::getline(in, line))
    if (contains(line, " dst ")) kept += line + "\n";
  return kept;
}

// What the agents write into a host's kernel (dynamic neighbour entries left out: their state
// moves on its own).
std::string kernel_dump(const OverlayLab& lab, int i) {
  return "-- ip -4 route\n" + lab.ip(i, {"-4", "route", "show"}) + "-- ip -6 route\n" +
         lab.ip(i, {"-6", "route", "show"}) + "-- ip neigh (permanent)\n" +
         lab.ip(i, {"neigh", "show", "nud", "permanent"}) + "-- ip nexthop\n" +
         lab.ip(i, {"nexthop", "show"}) + "-- bridge fdb (vxlan)\n" + vxlan_fdb(lab, i);
}

// The route, nexthop and permanent-neighbour (incl. vxlan FDB) changes in one lab host while it
// runs, from `ip -o monitor label`. Both ends are fenced by a marker route the test adds and
// deletes in that host (198.51.100.0/25 at the start, .128/25 at the end; TEST-NET-2, never
// contacted), so nothing from before the monitor subscribed is counted and nothing it printed
// late is missed.
class KernelChanges {
 public:
  KernelChanges(const OverlayLab& lab, int i)
      : lab_(lab),
        i_(i),
        log_(lab.dir() + "/monitor-h" + std::to_string(i + 1) + ".log"),
        monitor_(Process::Spec{{"ip", "-o", "monitor", "label", "route", "neigh", "nexthop"},
                               {},
                               {},
                               lab.host(i).netns,
                               log_}) {
    fence(kStart);
  }
  // The changes since the constructor's fence ("" = none).
  std::string stop() {
    fence(kEnd);
    std::istringstream in(read_file(log_));
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    size_t from = 0;  // after the last start marker (the monitor may have seen earlier attempts)
    for (size_t k = 0; k < lines.size(); ++k)
      if (contains(lines[k], std::string("Deleted ") + kStart)) from = k + 1;
    std::string changes;
    for (size_t k = from; k < lines.size() && !contains(lines[k], kEnd); ++k) {
      const std::string& line = lines[k];
      // The kernel's own local-table routes for IPv6 link-local addresses finishing DAD on
      // young devices (eth0, cni0, the pod ports, flannel*) are not the agent's doing.
      if (contains(line, "table local") && contains(line, "fe80::")) continue;
      if (line.rfind("[ROUTE]", 0) == 0 || line.rfind("[NEXTHOP]", 0) == 0 ||
          (line.rfind("[NEIGH]", 0) == 0 && contains(line, "PERMANENT")))
        changes += line + "\n";
    }
    return changes;
  }

 private:
  static constexpr const char* kStart = "198.51.100.0/25";
  static constexpr const char* kEnd = "198.51.100.128/25";
  // Adds and deletes `marker` until the monitor has printed its deletion (it may not have
  // subscribed yet when the first one goes by).
  void fence(const char* marker) {
    const std::string deleted = std::string("Deleted ") + marker;
    const bool seen = wait_until(
        [&] {
          lab_.ip(i_, {"route", "add", marker, "dev", "eth0"});
          lab_.ip(i_, {"route", "del", marker, "dev", "eth0"});
          return wait_until([&] { return contains(read_file(log_), deleted); }, 200ms);
        },
        5s);
    if (seen) return;
    throw std::runtime_error("ip monitor in host " + std::to_string(i_ + 1) +
                             " did not show the marker route " + marker + ":\n" + read_file(log_));
  }
  const OverlayLab& lab_;
  int i_;
  std::string log_;
  Process monitor_;
};

// Checked the moment host 1's subnet.env exists: both families' masquerade and forward rules.
void expect_rules_before_subnet_file(const OverlayLab& lab, const IP4Net& net4,
                                     const IP6Net& net6) {
  const std::string env = read_file(lab.subnet_file(0));
  Iptables ipt({"ip", "netns", "exec", lab.host(0).netns, "iptables"});
  Iptables ip6t({"ip", "netns", "exec", lab.host(0).netns, "ip6tables"});
  auto rules = masq_rules(net4, lab.lease(0), ipt.random_fully_support().supported);
  for (const auto& r : forward_rules(net4)) rules.push_back(r);
  for (const auto& r : rules)
    EXPECT_TRUE(ipt.exists(r)) << "missing when subnet.env appeared: " << r.str();
  const auto lease6 = IP6Net::parse(OverlayLab::env_value(env, "FLANNEL_IPV6_SUBNET"));
  auto rules6 = masq_rules(net6, lease6.network(), ip6t.random_fully_support().supported);
  for (const auto& r : forward_rules(net6)) rules6.push_back(r);
  for (const auto& r : rules6)
    EXPECT_TRUE(ip6t.exists(r)) << "missing when subnet.env appeared: " << r.str();
}

class DualStackAgentsLab : public ::testing::TestWithParam<Param> {};

TEST_P(DualStackAgentsLab, PingBothFamiliesIp6tablesResyncRestartAndLeave) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const std::string backend = std::get<0>(GetParam());
  const LabStore::Kind kind = std::get<1>(GetParam());
  const std::string tag = std::string("d") + (backend == "vxlan" ? "v" : "h") +
                          (kind == LabStore::Kind::kEtcd ? "e" : "s");
  const IP4Net net4 = IP4Net::parse("10.5.0.0/16");
  const IP6Net net6 = IP6Net::parse("fd10:5::/48");
  OverlayLab lab(tag,
                 R"({"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:5::/48",)"
                 R"("Backend":{"Type":")" +
                     backend + R"("}})",
                 3, kind);
  // -v=1 for the "Resync:" line that tells a (re)started agent has listed its peers.
  // Host 1's iptables and ip6tables are slowed down (a wrapper first in its PATH sleeps 0.2 s
  // per call): its rules take over a second, and still must be in place when subnet.env appears.
  char wrap_tmpl[] = "/tmp/flannel-slow-iptables-XXXXXX";
  ASSERT_NE(::mkdtemp(wrap_tmpl), nullptr);
  const std::string wrap_dir = wrap_tmpl;
  for (const std::string name : {"iptables", "ip6tables"}) {
    const std::string path = wrap_dir + "/" + name;
    std::ofstream(path) << "#!/bin/sh\nsleep 0.2\nexec /usr/sbin/" + name + " \"$@\"\n";
    ::chmod(path.c_str(), 0755);
  }
  struct RemoveDir {
    std::string dir;
    ~RemoveDir() { std::filesystem::remove_all(dir); }
  } remove_wrap{wrap_dir};
  lab.customize_start = [&](int i, Process::Spec& spec) {
    for (const char* f : {"-ip-masq", "-iptables-resync=1", "-v=1"}) spec.argv.push_back(f);
    if (i == 0) spec.env_set["PATH"] = wrap_dir + ":" + std::getenv("PATH");
  };
  lab.start_all();
  for (int i = 0; i < 3; ++i) {
    lab.wait_subnet(i);
    if (i == 0) expect_rules_before_subnet_file(lab, net4, net6);
    ASSERT_TRUE(lab.lease6(i)) << "no FLANNEL_IPV6_SUBNET from host " << i + 1 << ":\n"
                               << read_file(lab.subnet_file(i));
    EXPECT_TRUE(net4.contains(lab.lease(i)));
    EXPECT_TRUE(net6.contains(*lab.lease6(i)));
    EXPECT_EQ(lab.lease6(i)->prefix, 64);
    const std::string env = read_file(lab.subnet_file(i));
    EXPECT_EQ(OverlayLab::env_value(env, "FLANNEL_IPV6_NETWORK"), "fd10:5::/48") << env;
    EXPECT_EQ(OverlayLab::env_value(env, "FLANNEL_IPV6_SUBNET"),
              lab.lease6(i)->first_host().str() + "/64")
        << env;
    EXPECT_EQ(OverlayLab::env_value(env, "FLANNEL_IPMASQ"), "true") << env;
  }
  // Each lease publishes the host's IPv6 underlay address.
  auto leases = lab.leases();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(leases.count(lab.lease(i).str())) << lab.dump();
    const auto& v = leases.at(lab.lease(i).str());
    EXPECT_EQ(v.value("PublicIPv6", ""), lab.host(i).addr6.str()) << v.dump();
    EXPECT_EQ(v.contains("BackendV6Data"), backend == "vxlan") << v.dump();
  }

  lab.add_pods();
  ASSERT_TRUE(lab.wait_full_mesh()) << lab.dump();
  // The lab's own IPv6 plumbing first (no flannel part in it): each pod reaches its gateway
  // and each host the others over the underlay, so a slow first neighbour discovery on a new
  // veth or bridge is not taken for a data-plane failure.
  for (int i = 0; i < 3; ++i) {
    const std::string gw6 = lab.lease6(i)->first_host().str();
    EXPECT_TRUE(wait_until(
        [&] {
          return run_command({"ping", "-6", "-c", "1", "-W", "1", gw6}, nullptr,
                             lab.pod(i).netns) == 0;
        },
        10s))
        << "pod " << i + 1 << " cannot reach its gateway " << gw6;
    for (int j = 0; j < 3; ++j) {
      if (i == j) continue;
      const std::string to = lab.host(j).addr6.str();
      EXPECT_TRUE(wait_until(
          [&] {
            return run_command({"ping", "-6", "-c", "1", "-W", "1", to}, nullptr,
                               lab.host(i).netns) == 0;
          },
          10s))
          << "host " << i + 1 << " cannot reach " << to << " over the underlay";
    }
  }
  auto failed = lab.ping_matrix();
  EXPECT_TRUE(failed.empty()) << "ping failed: " << join(failed) << "\n" << lab.dump();
  auto failed6 = lab.ping_matrix(/*v6=*/true);
  EXPECT_TRUE(failed6.empty()) << "ping6 failed: " << join(failed6) << "\n" << lab.dump();
  const std::string via6 =
      backend == "vxlan" ? "dev flannel-v6.1" : "via " + lab.host(1).addr6.str() + " dev eth0";
  EXPECT_TRUE(contains(lab.route(0, *lab.lease6(1)), via6)) << lab.route(0, *lab.lease6(1));

  // ip6tables: masquerade and forward rules for the IPv6 network and this host's IPv6 subnet;
  // a deleted MASQUERADE rule comes back within the 1 s resync.
  Iptables ip6t({"ip", "netns", "exec", lab.host(0).netns, "ip6tables"});
  const auto masq6 = masq_rules(net6, *lab.lease6(0), ip6t.random_fully_support().supported);
  const auto fwd6 = forward_rules(net6);
  auto all_there = [&] {
    for (const auto& r : masq6)
      if (!ip6t.exists(r)) return false;
    for (const auto& r : fwd6)
      if (!ip6t.exists(r)) return false;
    return true;
  };
  EXPECT_TRUE(wait_until(all_there, 5s))
      << ip6t.run({"-t", "nat", "-S"}).out << ip6t.run({"-S"}).out;
  ASSERT_TRUE(ip6t.remove(masq6[1])) << masq6[1].str();
  ASSERT_FALSE(ip6t.exists(masq6[1]));
  auto removed_at = std::chrono::steady_clock::now();
  EXPECT_TRUE(wait_until([&] { return ip6t.exists(masq6[1]); }, 5s))
      << masq6[1].str() << " not restored\n"
      << read_file(lab.log_file(0));
  auto restored_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - removed_at)
                         .count();
  EXPECT_LE(restored_ms, 3000) << "resync period is 1 s";

  // Restart host 1's agent: nothing changes in any host's kernel. The restarted agent's first
  // sync is over once it has handled a later watch event: a reserved lease of another backend
  // type, which every agent logs as ignored and writes nothing for.
  std::vector<std::string> before;
  for (int i = 0; i < 3; ++i) before.push_back(kernel_dump(lab, i));
  KernelChanges changes(lab, 0);
  EXPECT_EQ(lab.stop(0), 0);
  lab.start(0);
  ASSERT_TRUE(wait_until([&] { return count_of(read_file(lab.log_file(0)), "Resync:") >= 2; }, 15s))
      << read_file(lab.log_file(0));
  const std::string marker = "10.5.250.0/24";
  std::string out;
  ASSERT_EQ(lab.ctl({"reserve", marker, "10.250.0.99"}, &out), 0) << out;
  EXPECT_TRUE(wait_until(
      [&] { return contains(read_file(lab.log_file(0)), "ignoring peer " + marker); }, 10s))
      << read_file(lab.log_file(0));
  ASSERT_EQ(lab.ctl({"subnets", "rm", marker}, &out), 0) << out;
  EXPECT_EQ(changes.stop(), "") << "the restarted agent rewrote kernel entries";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(kernel_dump(lab, i), before[i]) << "host " << i + 1;
  const IP4Net before4 = lab.lease(0);
  const IP6Net before6 = *lab.lease6(0);
  EXPECT_EQ(lab.wait_subnet(0).network(), before4);  // subnet.env rewritten with the same lease
  EXPECT_EQ(lab.lease6(0), before6);
  EXPECT_TRUE(lab.ping(0, 1) && lab.ping6(0, 1) && lab.ping6(2, 0)) << lab.dump();

  // Host 3 leaves: its agent stops, its lease is deleted (etcd: etcdctl rm of the whole
  // dual-stack key; SQLite: flannelctl subnets rm by its IPv6 subnet). Hosts 1 and 2 drop every
  // entry pointing at it, in both families.
  const IP4Net gone4 = lab.lease(2);
  const IP6Net gone6 = *lab.lease6(2);
  EXPECT_EQ(lab.stop(2), 0);
  if (lab.store() && lab.store()->is_etcd()) {
    const std::string key =
        lab.store()->prefix() + "/subnets/" + subnet_key(LeaseKey{gone4, gone6});
    ASSERT_EQ(lab.store()->etcdctl({"rm", key}, &out), 0) << out;
  } else {
    ASSERT_EQ(lab.ctl({"subnets", "rm", gone6.str()}, &out), 0) << out;
  }
  EXPECT_EQ(lab.leases().count(gone4.str()), 0u);
  auto gone = [&](int i) {
    const std::string fdb = vxlan_fdb(lab, i);
    return lab.route(i, gone4).empty() && lab.route(i, gone6).empty() &&
           !contains(fdb, "dst " + lab.host(2).addr.str() + " ") &&
           !contains(fdb, "dst " + lab.host(2).addr6.str() + " ") &&
           !contains(lab.ip(i, {"neigh", "show", "nud", "permanent"}), gone6.ip.str() + " ") &&
           !contains(lab.ip(i, {"neigh", "show", "nud", "permanent"}), gone4.ip.str() + " ");
  };
  for (int i = 0; i < 2; ++i)
    EXPECT_TRUE(wait_until([&] { return gone(i); }, 10s)) << "host " << i + 1 << "\n" << lab.dump();
  EXPECT_TRUE(lab.ping6(0, 1) && lab.ping6(1, 0) && lab.ping(1, 0)) << lab.dump();
}

INSTANTIATE_TEST_SUITE_P(BackendsAndStores, DualStackAgentsLab,
                         ::testing::Combine(::testing::Values("vxlan", "host-gw"),
                                            ::testing::Values(LabStore::Kind::kSqlite,
                                                              LabStore::Kind::kEtcd)),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return std::string(std::get<0>(info.param) == "vxlan" ? "Vxlan"
                                                                                 : "HostGw") +
                                  to_string(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace flannel::testing
