// Leases no honest host writes (issue 18), written into the store of a running three-host mesh:
// a default route through another machine on the LAN (0.0.0.0-0), the underlay's own prefix, a
// subnet outside the Network, gateways that are loopback, multicast, unspecified or inside the pod
// network, and (vxlan) a lease without a VtepMAC. Before admission these replaced every host's
// default route or took the whole vxlan mesh down. Now: every host's kernel is exactly as before
// (routes, and on vxlan its neighbours and FDB), pods still ping 6/6, every agent is alive, and
// each agent logged every refused lease.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "stores/sqlite/sqlite_store.h"
#include "tests/lab/overlay_lab.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

struct Hostile {
  const char* subnet;
  const char* public_ip;
  const char* backend_data;  // "" = the backend's usual data
};

std::string kernel(const OverlayLab& lab, int i, bool vxlan) {
  std::string out = lab.ip(i, {"-4", "route", "show", "table", "all"});
  if (vxlan) {
    out += lab.ip(i, {"neigh", "show", "dev", "flannel.1"});
    std::string fdb;
    run_command({"bridge", "fdb", "show", "dev", "flannel.1"}, &fdb, lab.host(i).netns);
    out += fdb;
  }
  return out;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class HostileLeasesLab : public ::testing::TestWithParam<std::string> {};

TEST_P(HostileLeasesLab, LeasesNoHonestHostWritesChangeNothingOnAnyHost) {
  const std::string backend = GetParam();
  const bool vxlan = backend == "vxlan";
  OverlayLab lab(vxlan ? "hlv" : "hlh",
                 R"({"Network":"10.5.0.0/16","Backend":{"Type":")" + backend + R"("}})", 3);
  lab.start_all();
  for (int i = 0; i < 3; ++i) lab.wait_subnet(i);
  lab.add_pods();
  ASSERT_TRUE(lab.wait_full_mesh()) << lab.dump();
  ASSERT_TRUE(lab.ping_matrix().empty()) << lab.dump();
  std::vector<std::string> before;
  for (int i = 0; i < 3; ++i) before.push_back(kernel(lab, i, vxlan));

  std::vector<Hostile> hostile = {
      {"0.0.0.0/0", "10.250.0.254", ""},    // every host's default route, via the hub
      {"10.250.0.0/24", "10.250.0.2", ""},  // the underlay's own prefix
      {"10.6.1.0/24", "10.250.0.3", ""},    // outside the Network
      {"10.5.201.0/24", "127.0.0.1", ""},   // loopback gateway
      {"10.5.202.0/24", "224.0.0.5", ""},   // multicast gateway
      {"10.5.203.0/24", "0.0.0.0", ""},     // unspecified gateway
      {"10.5.204.0/24", "10.5.77.1", ""},   // a gateway inside the pod network
  };
  if (vxlan) hostile.push_back({"10.5.205.0/24", "10.250.0.2", "{}"});  // no VtepMAC
  SqliteOptions o;
  o.path = lab.dir() + "/store.db";
  auto store = SqliteStore::open(o);
  for (const auto& h : hostile) {
    Lease l;
    l.subnet = IP4Net::parse(h.subnet);
    l.attrs.public_ip = IP4::parse(h.public_ip);
    l.attrs.backend_type = backend;
    l.attrs.backend_data = *h.backend_data ? h.backend_data
                           : vxlan         ? R"({"VtepMAC":"0a:58:0a:05:c9:01"})"
                                           : "";
    Lease created;
    ASSERT_TRUE(store->create_lease(l, 0s, &created).ok()) << h.subnet;
  }
  // Each agent reports each hostile lease once.
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(wait_until(
        [&] { return count(read_file(lab.log_file(i)), "Refusing lease") >= hostile.size(); }, 10s))
        << "host " << i + 1 << ":\n"
        << read_file(lab.log_file(i));
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(kernel(lab, i, vxlan), before[i]) << "host " << i + 1 << "\n" << lab.dump();
    EXPECT_TRUE(lab.daemon(i)->running()) << "host " << i + 1 << " agent died";
  }
  auto failed = lab.ping_matrix();
  EXPECT_TRUE(failed.empty()) << failed.size() << " pings failed\n" << lab.dump();
  // Nothing was deleted: the leases are not the agents' to remove.
  LeaseList list;
  ASSERT_TRUE(store->list_leases(&list).ok());
  EXPECT_EQ(list.leases.size(), 3 + hostile.size());
  // And nobody logs them again: one line each, not one per resync.
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(count(read_file(lab.log_file(i)), "Refusing lease"), hostile.size());
}

INSTANTIATE_TEST_SUITE_P(Backends, HostileLeasesLab, ::testing::Values("host-gw", "vxlan"),
                         [](const auto& info) {
                           return info.param == "vxlan" ? std::string("Vxlan")
                                                        : std::string("HostGw");
                         });

}  // namespace
}  // namespace flannel::testing
