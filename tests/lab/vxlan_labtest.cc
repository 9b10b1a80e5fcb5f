// vxlan in the lab: three hosts, one flanneld each, pods pinging across hosts through
// flannel.1; the VtepMAC published in the store is the device's MAC; stopping an agent leaves
// the data plane in place (hitless restart) and a restart keeps the subnet, the device and its
// MAC; a re-created device (reboot) gets the same MAC again; a restarted agent removes the
// entries of leases that vanished while it was down.
#include <gtest/gtest.h>

#include "backends/vxlan/vxlan.h"
#include "tests/lab/overlay_lab.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

constexpr const char* kConfig = R"({"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}})";

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

// `ip -j -d link show flannel.1` in host i: the link object, or null when there is none.
nlohmann::json vxlan_link(const OverlayLab& lab, int i) {
  std::string out = lab.ip(i, {"-j", "-d", "link", "show", "flannel.1"});
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (!j.is_array() || j.empty()) return nullptr;
  return j[0];
}

std::string vxlan_mac(const OverlayLab& lab, int i) {
  auto l = vxlan_link(lab, i);
  return l.is_null() ? "" : l["address"].get<std::string>();
}

// Counts how often flanneld on host i logged that it holds its lease.
int leases_acquired(const OverlayLab& lab, int i) {
  std::string log = read_file(lab.log_file(i));
  int n = 0;
  for (size_t p = log.find("Lease acquired"); p != std::string::npos;
       p = log.find("Lease acquired", p + 1))
    ++n;
  return n;
}

long long ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
      .count();
}

TEST(VxlanLab, PodsReachEachOtherAndRestartsAreHitless) {
  auto t0 = std::chrono::steady_clock::now();
  OverlayLab lab("vx", kConfig, 3);
  lab.start_all();
  for (int i = 0; i < 3; ++i) lab.wait_subnet(i);
  long long t_leases = ms_since(t0);

  // The device: flannel.1, VNI 1 on eth0 from the host's address, learning off, MTU ext - 50,
  // carrying exactly <lease network>/32; the lease publishes its MAC, byte-exact as v0.11.
  auto leases = lab.leases();
  std::vector<std::string> macs(3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(lab.mtu(i), 1450);
    auto link = vxlan_link(lab, i);
    ASSERT_FALSE(link.is_null()) << lab.dump();
    macs[i] = link["address"].get<std::string>();
    EXPECT_EQ(link["mtu"], 1450);
    const auto& data = link["linkinfo"]["info_data"];
    EXPECT_EQ(data["id"], 1);
    EXPECT_EQ(data["local"], lab.host(i).addr.str());
    EXPECT_EQ(data["learning"], false);
    EXPECT_EQ(data["port"], 8472);
    int mac0 = std::stoi(macs[i].substr(0, 2), nullptr, 16);
    EXPECT_EQ(mac0 & 3, 2) << "VTEP MAC " << macs[i] << " should be locally administered unicast";
    std::string addrs = lab.ip(i, {"-4", "-o", "addr", "show", "dev", "flannel.1"});
    EXPECT_NE(addrs.find("inet " + lab.lease(i).ip.str() + "/32"), std::string::npos) << addrs;
    EXPECT_EQ(leases.at(lab.lease(i).str()).dump(),
              R"({"PublicIP":")" + lab.host(i).addr.str() +
                  R"(","BackendType":"vxlan","BackendData":{"VtepMAC":")" + macs[i] + R"("}})");
  }

  lab.add_pods();
  ASSERT_TRUE(lab.wait_full_mesh()) << lab.dump();
  long long t_mesh = ms_since(t0);
  // Per peer: route via <subnet>.0 onlink, a permanent ARP entry and an FDB entry to its host.
  for (int i = 0; i < 3; ++i) {
    std::string fdb;
    run_command({"bridge", "fdb", "show", "dev", "flannel.1"}, &fdb, lab.host(i).netns);
    for (int j = 0; j < 3; ++j) {
      if (i == j) continue;
      std::string gw = lab.lease(j).ip.str();
      EXPECT_NE(lab.route(i, lab.lease(j)).find("via " + gw + " dev flannel.1 onlink"),
                std::string::npos)
          << lab.route(i, lab.lease(j));
      std::string neigh = lab.ip(i, {"neigh", "show", gw, "dev", "flannel.1"});
      EXPECT_NE(neigh.find("lladdr " + macs[j] + " PERMANENT"), std::string::npos) << neigh;
      EXPECT_NE(fdb.find(macs[j] + " dst " + lab.host(j).addr.str() + " self permanent"),
                std::string::npos)
          << fdb;
    }
  }
  auto failed = lab.ping_matrix();
  EXPECT_TRUE(failed.empty()) << "failed pings: " << join(failed) << "\n" << lab.dump();
  long long t_ping = ms_since(t0);

  // Hitless restart: SIGTERM leaves the device, routes and entries; traffic keeps flowing.
  std::string index_before = lab.ip(0, {"-o", "link", "show", "flannel.1"});
  index_before = index_before.substr(0, index_before.find(':'));
  EXPECT_EQ(lab.stop(0), 0);
  EXPECT_EQ(vxlan_mac(lab, 0), macs[0]) << "device gone after SIGTERM";
  EXPECT_FALSE(lab.route(0, lab.lease(1)).empty());
  EXPECT_TRUE(lab.ping(0, 1) && lab.ping(1, 0)) << "traffic stopped with the agent\n" << lab.dump();
  // Someone lowers the MTU while the agent is down: the restart puts ext - 50 back (§7.14).
  lab.ip(0, {"link", "set", "flannel.1", "mtu", "1400"});
  IP4Net subnet_before = lab.lease(0);
  auto t_restart = std::chrono::steady_clock::now();
  lab.start(0);
  ASSERT_TRUE(wait_until([&] { return leases_acquired(lab, 0) >= 2; }, 15s)) << lab.dump();
  long long restart_ms = ms_since(t_restart);
  EXPECT_EQ(lab.wait_subnet(0).network(), subnet_before);
  EXPECT_EQ(vxlan_mac(lab, 0), macs[0]);
  std::string index_after = lab.ip(0, {"-o", "link", "show", "flannel.1"});
  EXPECT_EQ(index_after.substr(0, index_after.find(':')), index_before) << "device was re-created";
  EXPECT_TRUE(wait_until([&] { return vxlan_link(lab, 0)["mtu"] == 1450; }, 5s)) << lab.dump();
  leases = lab.leases();
  EXPECT_NE(leases.at(subnet_before.str()).dump().find(macs[0]), std::string::npos);
  failed = lab.ping_matrix();
  EXPECT_TRUE(failed.empty()) << "after restart: " << join(failed) << "\n" << lab.dump();

  // A reboot: the device is gone; the new one gets the same MAC, so peers need no update.
  EXPECT_EQ(lab.stop(0), 0);
  lab.ip(0, {"link", "del", "flannel.1"});
  ASSERT_EQ(vxlan_mac(lab, 0), "");
  lab.start(0);
  ASSERT_TRUE(wait_until([&] { return leases_acquired(lab, 0) >= 3; }, 15s)) << lab.dump();
  EXPECT_EQ(vxlan_mac(lab, 0), macs[0]) << "a re-created device must keep the VTEP MAC";
  EXPECT_TRUE(lab.wait_full_mesh(5s)) << lab.dump();
  EXPECT_TRUE(lab.ping(0, 1) && lab.ping(2, 0)) << lab.dump();

  // Host 3 is decommissioned while host 1's agent is down: host 2 drops the entries at once,
  // host 1 when it starts again (startup reconciliation, §7.11).
  EXPECT_EQ(lab.stop(2), 0);
  EXPECT_EQ(lab.stop(0), 0);
  std::string out;
  ASSERT_EQ(lab.ctl({"subnets", "rm", lab.lease(2).str()}, &out), 0) << out;
  auto gone = [&](int i) {
    std::string fdb;
    run_command({"bridge", "fdb", "show", "dev", "flannel.1"}, &fdb, lab.host(i).netns);
    return lab.route(i, lab.lease(2)).empty() &&
           lab.ip(i, {"neigh", "show", lab.lease(2).ip.str(), "dev", "flannel.1"}).empty() &&
           fdb.find(macs[2]) == std::string::npos;
  };
  EXPECT_TRUE(wait_until([&] { return gone(1); }, 10s)) << lab.dump();
  EXPECT_FALSE(gone(0)) << "host 1's agent is down and cannot have reacted";
  lab.start(0);
  EXPECT_TRUE(wait_until([&] { return gone(0); }, 10s)) << lab.dump();
  EXPECT_TRUE(lab.ping(0, 1) && lab.ping(1, 0)) << lab.dump();

  std::printf(
      "vxlan lab timings: leases %lld ms, full mesh %lld ms, 6 pings %lld ms, "
      "restart to lease %lld ms, total %lld ms\n",
      t_leases, t_mesh - t_leases, t_ping - t_mesh, restart_ms, ms_since(t0));
}

// VNI and Port from the config: the device is flannel.<VNI> and sends to that UDP port.
TEST(VxlanLab, VniAndPortFromConfig) {
  OverlayLab lab("vxp",
                 R"({"Network":"10.5.0.0/16","Backend":{"Type":"VXLAN","vni":7,"PORT":4789}})", 2);
  lab.start_all();
  for (int i = 0; i < 2; ++i) lab.wait_subnet(i);
  auto link =
      nlohmann::json::parse(lab.ip(0, {"-j", "-d", "link", "show", "flannel.7"}), nullptr, false);
  ASSERT_TRUE(link.is_array() && !link.empty()) << lab.dump();
  EXPECT_EQ(link[0]["linkinfo"]["info_data"]["id"], 7);
  EXPECT_EQ(link[0]["linkinfo"]["info_data"]["port"], 4789);
  lab.add_pods();
  ASSERT_TRUE(lab.wait_full_mesh()) << lab.dump();
  EXPECT_NE(lab.route(0, lab.lease(1)).find("dev flannel.7 onlink"), std::string::npos);
  auto failed = lab.ping_matrix();
  EXPECT_TRUE(failed.empty()) << join(failed) << "\n" << lab.dump();
}

// DirectRouting: peers on the same L2 segment are routed via their PublicIP without
// encapsulation and without ARP/FDB entries on the VXLAN device.
TEST(VxlanLab, DirectRoutingSkipsTheTunnelForOnLinkPeers) {
  OverlayLab lab("vxd",
                 R"({"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","DirectRouting":true}})", 2);
  lab.start_all();
  for (int i = 0; i < 2; ++i) lab.wait_subnet(i);
  lab.add_pods();
  ASSERT_TRUE(lab.wait_full_mesh()) << lab.dump();
  for (int i = 0; i < 2; ++i) {
    int j = 1 - i;
    EXPECT_NE(lab.route(i, lab.lease(j)).find("via " + lab.host(j).addr.str() + " dev eth0"),
              std::string::npos)
        << lab.route(i, lab.lease(j));
    EXPECT_EQ(lab.ip(i, {"neigh", "show", "dev", "flannel.1"}), "");
  }
  auto failed = lab.ping_matrix();
  EXPECT_TRUE(failed.empty()) << join(failed) << "\n" << lab.dump();
  // A removed lease takes its direct route with it.
  EXPECT_EQ(lab.stop(1), 0);
  std::string out;
  ASSERT_EQ(lab.ctl({"subnets", "rm", lab.lease(1).str()}, &out), 0) << out;
  EXPECT_TRUE(wait_until([&] { return lab.route(0, lab.lease(1)).empty(); }, 10s)) << lab.dump();
}

// A config the backend cannot use stops flanneld with v0.11's message.
TEST(VxlanLab, BadBackendConfigIsReported) {
  OverlayLab lab("vxb", R"({"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","VNI":"1"}})", 1);
  lab.start(0);
  auto rc = lab.daemon(0)->wait(10s);
  ASSERT_TRUE(rc.has_value()) << read_file(lab.log_file(0));
  EXPECT_EQ(*rc, 1);
  EXPECT_NE(read_file(lab.log_file(0))
                .find("error decoding VXLAN backend config: json: cannot unmarshal string into Go "
                      "struct field .VNI of type int"),
            std::string::npos)
      << read_file(lab.log_file(0));
  EXPECT_NE(run_command({"ip", "link", "show", "flannel.1"}, nullptr, lab.host(0).netns), 0)
      << "no device for a config that was refused";
}

// Pure pieces of the backend (no kernel needed).
TEST(VxlanConfig, DecodesLikeGo) {
  VxlanConfig d = decode_vxlan_config("");
  EXPECT_EQ(d.vni, 1);
  EXPECT_EQ(d.port, 0);
  EXPECT_FALSE(d.gbp);
  EXPECT_FALSE(d.direct_routing);
  VxlanConfig c = decode_vxlan_config(
      R"({"Type":"vxlan","vni":2,"VNI":3,"port":4789,"gbp":true,"directrouting":true})");
  EXPECT_EQ(c.vni, 3);  // last match wins
  EXPECT_EQ(c.port, 4789);
  EXPECT_TRUE(c.gbp);
  EXPECT_TRUE(c.direct_routing);
  EXPECT_EQ(decode_vxlan_config(R"({"Type":"vxlan","VNI":0})").vni, 0);  // explicit 0 stays
  EXPECT_EQ(decode_vxlan_config(R"({"Type":"vxlan","VNI":null})").vni, 1);
  auto err = [](const std::string& json) {
    try {
      decode_vxlan_config(json);
    } catch (const BackendError& e) { return std::string(e.what()); }
    return std::string("no error");
  };
  EXPECT_EQ(err(R"({"VNI":"1"})"),
            "error decoding VXLAN backend config: json: cannot unmarshal string into Go struct "
            "field .VNI of type int");
  EXPECT_EQ(err(R"({"Port":1.5})"),
            "error decoding VXLAN backend config: json: cannot unmarshal number 1.5 into Go struct "
            "field .Port of type int");
  EXPECT_EQ(err(R"({"GBP":1})"),
            "error decoding VXLAN backend config: json: cannot unmarshal number 1 into Go struct "
            "field .GBP of type bool");
  EXPECT_NE(err(R"({"VNI":16777216})").find("VNI 16777216 is out of range"), std::string::npos);
  EXPECT_NE(err(R"({"Port":-1})").find("Port -1 is out of range"), std::string::npos);
}

TEST(VxlanConfig, VtepMacIsStableAndLocal) {
  IP4 a = IP4::parse("10.250.0.1"), b = IP4::parse("10.250.0.2");
  MacAddr m = stable_vtep_mac(1, a, a);
  EXPECT_EQ(m, stable_vtep_mac(1, a, a));
  EXPECT_NE(m, stable_vtep_mac(2, a, a));
  EXPECT_NE(m, stable_vtep_mac(1, b, b));
  EXPECT_NE(m, stable_vtep_mac(1, a, b));
  EXPECT_EQ(m.bytes[0] & 3, 2);
  EXPECT_EQ(decode_vtep_mac(R"({"VtepMAC":"82:4B:B6:2F:54:4E"})").str(), "82:4b:b6:2f:54:4e");
  EXPECT_EQ(decode_vtep_mac(R"({"vtepmac":"824b.b62f.544e"})").str(), "82:4b:b6:2f:54:4e");
  EXPECT_THROW(decode_vtep_mac(R"({"VtepMAC":"82:4b"})"), ParseError);
  EXPECT_THROW(decode_vtep_mac(""), ParseError);
  EXPECT_THROW(decode_vtep_mac("[]"), ParseError);
}

}  // namespace
}  // namespace flannel::testing
