// Thousands of peers through the host-gw and vxlan backends, driven directly (no flanneld) in a
// namespace of their own (tests/support/peer_ns.h): routes through nexthop objects, the forced
// fallback to inline gateways, restarts that change nothing, stale state removed with its
// nexthop, and pipelined batches where one peer's error names that peer and spares the others.
#include <gtest/gtest.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <stdlib.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/hostgw/hostgw.h"
#include "backends/netlink/batch.h"
#include "backends/peer_nexthops.h"
#include "backends/vxlan/vxlan.h"
#include "core/config.h"
#include "tests/support/lab.h"
#include "tests/support/peer_ns.h"

namespace flannel::testing {
namespace {

constexpr size_t kPeers = 2000;

// Sets (or unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_.empty()) unsetenv(name_);
    else setenv(name_, old_.c_str(), 1);
  }

 private:
  const char* name_;
  std::string old_;
};

// Counts route, nexthop and neighbour notifications of the namespace it was opened in.
class ChangeMonitor {
 public:
  ChangeMonitor() {
    sk_ = nl_socket_alloc();
    if (!sk_) throw std::runtime_error("monitor: no socket");
    nl_socket_disable_seq_check(sk_);
    if (nl_connect(sk_, NETLINK_ROUTE) < 0 ||
        nl_socket_add_memberships(sk_, RTNLGRP_IPV4_ROUTE, RTNLGRP_NEIGH, RTNLGRP_NEXTHOP, 0) < 0 ||
        nl_socket_set_nonblocking(sk_) < 0 || nl_socket_set_buffer_size(sk_, 1 << 20, 0) < 0) {
      nl_socket_free(sk_);
      throw std::runtime_error("monitor: cannot subscribe");
    }
  }
  ~ChangeMonitor() { nl_socket_free(sk_); }
  // Notifications queued so far; -1 if the socket overflowed (certainly many).
  long drain() {
    long count = 0;
    nl_cb* base = nl_socket_get_cb(sk_);  // a new reference (nl_cb_get)
    nl_cb* cb = nl_cb_clone(base);
    nl_cb_put(base);
    nl_cb_set(
        cb, NL_CB_VALID, NL_CB_CUSTOM,
        [](nl_msg*, void* arg) -> int {
          ++*static_cast<long*>(arg);
          return NL_OK;
        },
        &count);
    for (;;) {
      int n = nl_recvmsgs_report(sk_, cb);
      if (n > 0) continue;
      if (n == 0 || n == -NLE_AGAIN) break;
      count = -1;
      break;
    }
    nl_cb_put(cb);
    return count;
  }

 private:
  nl_sock* sk_ = nullptr;
};

struct KernelDump {
  std::string routes, nexthops, neighs, fdb;
  bool operator==(const KernelDump&) const = default;
};

KernelDump dump(const PeerNs& ns) {
  return {ns.run({"ip", "route", "show"}), ns.run({"ip", "nexthop", "show"}),
          ns.run({"ip", "neigh", "show"}), ns.run({"bridge", "fdb", "show"})};
}

// `ip -j route show proto boot`, by destination.
std::map<std::string, nlohmann::json> boot_routes(const PeerNs& ns) {
  std::map<std::string, nlohmann::json> out;
  for (auto& r : nlohmann::json::parse(ns.run({"ip", "-j", "route", "show", "proto", "boot"})))
    out[r.at("dst").get<std::string>()] = r;
  return out;
}

std::set<uint32_t> nexthop_ids(const PeerNs& ns) {
  std::set<uint32_t> out;
  std::string text = ns.run({"ip", "-j", "nexthop", "show"});
  if (text.find('[') == std::string::npos) return out;
  for (auto& nh : nlohmann::json::parse(text)) out.insert(nh.at("id").get<uint32_t>());
  return out;
}

bool has_flag(const nlohmann::json& r, const char* flag) {
  if (!r.contains("flags")) return false;
  for (auto& f : r["flags"])
    if (f == flag) return true;
  return false;
}

// Checks that every peer has its route (via and dev shown), through its nexthop or inline.
void expect_routes(const PeerNs& ns, const std::vector<Lease>& peers, const std::string& type,
                   bool nexthops) {
  auto routes = boot_routes(ns);
  EXPECT_EQ(routes.size(), peers.size());
  const NexthopRange& range = type == "vxlan" ? kVxlanNexthops : kHostGwNexthops;
  IP4Net network = IP4Net::parse("10.0.0.0/8");
  size_t bad = 0;
  for (const auto& p : peers) {
    auto it = routes.find(p.subnet.str());
    if (it == routes.end()) {
      if (++bad < 5) ADD_FAILURE() << "no route for " << p.subnet.str();
      continue;
    }
    const auto& r = it->second;
    std::string gw = type == "vxlan" ? p.subnet.ip.str() : p.attrs.public_ip.str();
    std::string dev = type == "vxlan" ? "flannel.1" : "eth0";
    bool ok =
        r.value("gateway", "") == gw && r.value("dev", "") == dev &&
        (type != "vxlan" || has_flag(r, "onlink")) &&
        (nexthops ? r.value("nhid", 0u) == *range.id_for(network, p.subnet) : !r.contains("nhid"));
    if (!ok && ++bad < 5) ADD_FAILURE() << p.subnet.str() << ": unexpected route " << r.dump();
  }
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(nexthop_ids(ns).size(), nexthops ? peers.size() : 0u);
}

// One agent's backend in the namespace: setup, lease acquired, notes collected.
struct Agent {
  std::unique_ptr<Backend> backend;
  std::vector<std::string> notes;

  Agent(const PeerNs& ns, const std::string& type) {
    PeerNs::Enter in(ns);
    if (type == "vxlan") backend = std::make_unique<VxlanBackend>();
    else backend = std::make_unique<HostGwBackend>();
    backend->set_notify([this](const std::string& line) { notes.push_back(line); });
    ExternalInterface ext;
    ext.name = "eth0";
    ext.index = static_cast<int>(if_nametoindex("eth0"));
    ext.mtu = 1500;
    ext.iface_addr = ext.ext_addr = IP4::parse(PeerNs::kEthAddr);
    backend->setup(parse_config(synthetic_config_json(type)), ext);
    backend->lease_acquired(synthetic_own_lease(type));
  }
  void sync(const std::vector<Lease>& peers) { backend->sync(peers); }
  size_t kernel_writes() const {
    if (auto* v = dynamic_cast<VxlanBackend*>(backend.get())) return v->kernel_writes();
    return static_cast<HostGwBackend&>(*backend).kernel_writes();
  }
  bool noted(const std::string& part) const {
    for (const auto& n : notes)
      if (n.find(part) != std::string::npos) return true;
    return false;
  }
};

class ScaleLab : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { cleanup_stale_labs(); }
  std::string type() const { return GetParam(); }
};

TEST_P(ScaleLab, RestartWith2000PeersChangesNothingInTheKernel) {
  ScopedEnv env("FLANNEL_NEXTHOP_OBJECTS", nullptr);
  PeerNs ns("sr");
  auto peers = synthetic_peers(kPeers, type());
  {
    Agent first(ns, type());
    first.sync(peers);
  }
  expect_routes(ns, peers, type(), true);
  KernelDump before = dump(ns);
  if (type() == "vxlan") {
    EXPECT_NE(before.neighs.find("10.1.0.0 dev flannel.1 lladdr 0a:58:00:00:00:00 PERMANENT"),
              std::string::npos);
    EXPECT_NE(before.fdb.find("0a:58:00:00:07:cf dev flannel.1 dst 172.31.8.251 self permanent"),
              std::string::npos)
        << "peer 1999";
  }

  long changes = 0;
  {
    PeerNs::Enter in(ns);
    ChangeMonitor monitor;
    Agent second(ns, type());
    second.sync(peers);
    changes = monitor.drain();
    EXPECT_EQ(second.kernel_writes(), 0u) << "the restarted agent sent write requests";
    // Positive control: the monitor does see a route written in the namespace.
    ns.run({"ip", "route", "add", "192.168.77.0/24", "via", "172.31.0.9"});
    EXPECT_GE(monitor.drain(), 1) << "the change monitor sees nothing";
    ns.run({"ip", "route", "del", "192.168.77.0/24"});
  }
  EXPECT_EQ(changes, 0) << "the restarted agent rewrote kernel entries";
  KernelDump after = dump(ns);
  EXPECT_TRUE(after == before) << "kernel state differs after a restart";
}

TEST_P(ScaleLab, PeerRemovedWhileDownIsCleanedUpWithItsNexthop) {
  ScopedEnv env("FLANNEL_NEXTHOP_OBJECTS", nullptr);
  PeerNs ns("sc");
  auto peers = synthetic_peers(kPeers, type());
  { Agent(ns, type()).sync(peers); }
  const Lease gone = peers[700];
  const uint32_t id = *(type() == "vxlan" ? kVxlanNexthops : kHostGwNexthops)
                           .id_for(IP4Net::parse("10.0.0.0/8"), gone.subnet);
  ASSERT_EQ(nexthop_ids(ns).count(id), 1u);
  peers.erase(peers.begin() + 700);

  Agent restarted(ns, type());
  restarted.sync(peers);
  expect_routes(ns, peers, type(), true);
  EXPECT_EQ(nexthop_ids(ns).count(id), 0u) << "nexthop " << id << " of " << gone.subnet.str();
  EXPECT_EQ(ns.run({"ip", "route", "show", gone.subnet.str()}), "");
  if (type() == "vxlan") {
    EXPECT_EQ(ns.run({"ip", "neigh", "show", gone.subnet.ip.str()}), "");
    EXPECT_EQ(ns.run({"bridge", "fdb", "show", "dev", "flannel.1"}).find("0a:58:00:00:02:bc"),
              std::string::npos);
    EXPECT_EQ(static_cast<VxlanBackend&>(*restarted.backend).reconciled_entries(), 4u);
  } else {
    EXPECT_EQ(static_cast<HostGwBackend&>(*restarted.backend).reconciled_routes(), 2u);
    EXPECT_TRUE(restarted.noted("removed stale nexthop id " + std::to_string(id)));
  }
}

// Leases of /24, /25 and /26 side by side, added and removed in every order. Their indexes at
// their own lengths are all 517, so ids taken that way made them share one nexthop: one lease
// rewrote another's gateway and removing one took the other's route with it.
TEST_P(ScaleLab, LeasesOfMixedLengthsEachKeepTheirOwnNexthop) {
  ScopedEnv env("FLANNEL_NEXTHOP_OBJECTS", nullptr);
  PeerNs ns("sm");
  std::vector<Lease> all;
  int n = 0;
  for (const char* subnet : {"10.1.2.128/25", "10.2.5.0/24", "10.0.129.64/26"}) {
    Lease l;
    l.subnet = IP4Net::parse(subnet);
    l.attrs.public_ip = IP4::parse("172.31.1." + std::to_string(2 + n));
    l.attrs.backend_type = type();
    if (type() == "vxlan")
      l.attrs.backend_data = R"({"VtepMAC":"0a:58:00:00:10:0)" + std::to_string(n) + R"("})";
    all.push_back(l);
    ++n;
  }
  std::vector<int> order{0, 1, 2}, removal{2, 1, 0};
  Agent a(ns, type());
  a.sync({});
  do {
    std::vector<Lease> present;
    for (int i : order) {
      a.backend->apply({PeerEvent{PeerEvent::Type::kAdded, all[i]}});
      present.push_back(all[i]);
      expect_routes(ns, present, type(), true);
    }
    for (int i : removal) {
      a.backend->apply({PeerEvent{PeerEvent::Type::kRemoved, all[i]}});
      std::erase_if(present, [&](const Lease& l) { return l.subnet == all[i].subnet; });
      expect_routes(ns, present, type(), true);
    }
    std::prev_permutation(removal.begin(), removal.end());
  } while (std::next_permutation(order.begin(), order.end()) && !HasFailure());
}

TEST_P(ScaleLab, ForcedFallbackProgramsInlineRoutesAndSwitchesBothWays) {
  PeerNs ns("sf");
  auto peers = synthetic_peers(500, type());
  {
    ScopedEnv env("FLANNEL_NEXTHOP_OBJECTS", "off");
    Agent a(ns, type());
    a.sync(peers);
    EXPECT_FALSE(a.backend->type().empty());
    EXPECT_TRUE(a.noted("nexthop objects disabled by FLANNEL_NEXTHOP_OBJECTS"));
    expect_routes(ns, peers, type(), false);
  }
  {  // an upgrade: the same peers move onto nexthop objects
    ScopedEnv env("FLANNEL_NEXTHOP_OBJECTS", nullptr);
    Agent(ns, type()).sync(peers);
    expect_routes(ns, peers, type(), true);
  }
  {  // and back: inline routes again, our nexthops removed
    ScopedEnv env("FLANNEL_NEXTHOP_OBJECTS", "0");
    Agent(ns, type()).sync(peers);
    expect_routes(ns, peers, type(), false);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, ScaleLab, ::testing::Values("host-gw", "vxlan"),
                         [](const auto& info) {
                           return info.param == "vxlan" ? std::string("Vxlan")
                                                        : std::string("HostGw");
                         });

// host-gw peers whose PublicIP is not on-link cannot be programmed: the kernel refuses the
// nexthop (or, inline, the route). In a pipelined batch that error names the peer and the
// others are all programmed.
TEST(ScaleLabErrors, OneBadPeerInAPipelinedBatchIsNamedAndTheOthersProgrammed) {
  cleanup_stale_labs();
  for (const char* mode : {"on", "off"}) {
    SCOPED_TRACE(std::string("FLANNEL_NEXTHOP_OBJECTS=") + mode);
    ScopedEnv env("FLANNEL_NEXTHOP_OBJECTS", mode);
    PeerNs ns("se");
    auto peers = synthetic_peers(kPeers, "host-gw");
    peers[1234].attrs.public_ip = IP4::parse("192.0.2.9");  // TEST-NET-1, not on eth0
    Agent a(ns, "host-gw");
    std::string what;
    try {
      a.sync(peers);
    } catch (const BackendError& e) { what = e.what(); }
    EXPECT_NE(what.find("1 of 2000 peer changes failed: add " + peers[1234].subnet.str()),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("192.0.2.9"), std::string::npos) << what;
    auto good = peers;
    good.erase(good.begin() + 1234);
    auto routes = boot_routes(ns);
    EXPECT_EQ(routes.size(), good.size());
    EXPECT_EQ(routes.count(peers[1234].subnet.str()), 0u);
    size_t missing = 0;
    for (const auto& p : good) missing += routes.count(p.subnet.str()) == 0;
    EXPECT_EQ(missing, 0u);
  }
}

// The batch itself: acks matched back by sequence number across windows.
TEST(ScaleLabErrors, NetlinkBatchMatchesEveryErrorToItsRequest) {
  cleanup_stale_labs();
  PeerNs ns("sb");
  PeerNs::Enter in(ns);
  NetlinkSession nl;
  int eth0 = static_cast<int>(if_nametoindex("eth0"));
  NetlinkBatch batch(nl, 64);
  const std::set<size_t> bad = {0, 63, 64, 200, 299};
  for (size_t i = 0; i < 300; ++i) {
    Route4 r{IP4Net{IP4{(10u << 24) | uint32_t(i << 8)}, 24},
             bad.count(i) ? IP4::parse("192.0.2.1") : IP4::parse("172.31.0.9"), eth0, false};
    batch.route_replace(r, 1000 + i);
  }
  batch.route_delete(Route4{IP4Net::parse("10.200.0.0/24"), IP4::parse("172.31.0.9"), eth0},
                     7);  // absent: not a failure
  auto failures = batch.commit();
  ASSERT_EQ(failures.size(), bad.size());
  size_t k = 0;
  for (size_t i : bad) {
    EXPECT_EQ(failures[k].tag, 1000 + i);
    std::string dst = IP4Net{IP4{(10u << 24) | uint32_t(i << 8)}, 24}.str();
    EXPECT_NE(failures[k].message().find("route replace " + dst + " via 192.0.2.1"),
              std::string::npos)
        << failures[k].message();
    ++k;
  }
  EXPECT_TRUE(batch.empty());
  size_t present = 0;
  for (const auto& r : nl.routes4()) present += r.protocol == 3;
  EXPECT_EQ(present, 300 - bad.size());
}

// host-gw's single events read no kernel state (only a full sync dumps the table): they write
// from the backend's record of what it programmed. These pin down what that must keep: a new
// peer, a peer whose PublicIP changed (as one added event, and as the remove + add the agent's
// peer cache sends), a removed peer with its nexthop, a route someone else put in a removed
// peer's place left alone, and hand edits repaired by the next full sync. Nexthop objects on and
// off (FLANNEL_NEXTHOP_OBJECTS).
class HostGwEventsLab : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { cleanup_stale_labs(); }
  bool nexthops() const { return GetParam() == "on"; }
};

TEST_P(HostGwEventsLab, SingleEventsAddMoveAndRemovePeersFromTheRecord) {
  ScopedEnv env("FLANNEL_NEXTHOP_OBJECTS", GetParam().c_str());
  PeerNs ns("he");
  auto all = synthetic_peers(201, "host-gw");
  std::vector<Lease> peers(all.begin(), all.begin() + 200);
  Agent a(ns, "host-gw");
  a.sync(peers);
  expect_routes(ns, peers, "host-gw", nexthops());

  // A new peer.
  a.backend->apply({{PeerEvent::Type::kAdded, all[200]}});
  peers.push_back(all[200]);
  expect_routes(ns, peers, "host-gw", nexthops());

  // Peer 5's PublicIP changes, told as one added event; peer 6's as remove old + add new.
  Lease moved5 = peers[5], moved6 = peers[6];
  moved5.attrs.public_ip = IP4::parse("172.31.200.5");
  moved6.attrs.public_ip = IP4::parse("172.31.200.6");
  a.backend->apply({{PeerEvent::Type::kAdded, moved5}});
  a.backend->apply({{PeerEvent::Type::kRemoved, peers[6]}, {PeerEvent::Type::kAdded, moved6}});
  peers[5] = moved5;
  peers[6] = moved6;
  expect_routes(ns, peers, "host-gw", nexthops());
  EXPECT_NE(ns.run({"ip", "route", "show", moved5.subnet.str()}).find("via 172.31.200.5 dev eth0"),
            std::string::npos);
  if (nexthops()) {
    uint32_t id = *kHostGwNexthops.id_for(IP4Net::parse("10.0.0.0/8"), moved5.subnet);
    EXPECT_NE(ns.run({"ip", "nexthop", "show", "id", std::to_string(id)})
                  .find("via 172.31.200.5 dev eth0"),
              std::string::npos);
  }

  // Peer 7 leaves: its route and nexthop go.
  const Lease gone = peers[7];
  a.backend->apply({{PeerEvent::Type::kRemoved, gone}});
  peers.erase(peers.begin() + 7);
  EXPECT_EQ(ns.run({"ip", "route", "show", gone.subnet.str()}), "");
  expect_routes(ns, peers, "host-gw", nexthops());  // also counts the nexthops left

  // Peer 8 leaves after an operator routed its subnet elsewhere: that route is not ours to delete.
  const Lease rerouted = peers[7];  // was peer 8
  ns.run({"ip", "route", "replace", rerouted.subnet.str(), "via", "172.31.200.8", "dev", "eth0",
          "proto", "static"});
  a.backend->apply({{PeerEvent::Type::kRemoved, rerouted}});
  peers.erase(peers.begin() + 7);
  EXPECT_NE(ns.run({"ip", "route", "show", rerouted.subnet.str()}).find("via 172.31.200.8"),
            std::string::npos)
      << "the operator's route was removed";
  expect_routes(ns, peers, "host-gw", nexthops());

  // A removed peer the backend never programmed (e.g. its add failed): its route, if the lease's,
  // goes all the same.
  Lease unknown = all[200];
  unknown.subnet = IP4Net::parse("10.250.0.0/24");
  unknown.attrs.public_ip = IP4::parse("172.31.200.9");
  ns.run({"ip", "route", "add", "10.250.0.0/24", "via", "172.31.200.9", "dev", "eth0"});
  a.backend->apply({{PeerEvent::Type::kRemoved, unknown}});
  EXPECT_EQ(ns.run({"ip", "route", "show", "10.250.0.0/24"}), "");
}

TEST_P(HostGwEventsLab, RoutesChangedOrDeletedByHandAreRepairedByTheNextFullSync) {
  ScopedEnv env("FLANNEL_NEXTHOP_OBJECTS", GetParam().c_str());
  PeerNs ns("hr");
  auto peers = synthetic_peers(200, "host-gw");
  Agent a(ns, "host-gw");
  a.sync(peers);
  expect_routes(ns, peers, "host-gw", nexthops());

  ns.run({"ip", "route", "del", peers[3].subnet.str()});
  ns.run({"ip", "route", "replace", peers[4].subnet.str(), "via", "172.31.200.4", "dev", "eth0"});
  size_t expected = 2;  // the two routes
  if (nexthops()) {     // a deleted nexthop takes its route with it: both come back
    uint32_t id = *kHostGwNexthops.id_for(IP4Net::parse("10.0.0.0/8"), peers[5].subnet);
    ns.run({"ip", "nexthop", "del", "id", std::to_string(id)});
    ASSERT_EQ(ns.run({"ip", "route", "show", peers[5].subnet.str()}), "");
    expected += 2;
  }
  // An event for another peer does not read the table (nor repair it).
  auto more = synthetic_peers(201, "host-gw");
  a.backend->apply({{PeerEvent::Type::kAdded, more[200]}});
  peers.push_back(more[200]);

  size_t writes = a.kernel_writes();
  a.sync(peers);
  expect_routes(ns, peers, "host-gw", nexthops());
  EXPECT_EQ(a.kernel_writes() - writes, expected) << "a sync rewrites only what differs";
}

INSTANTIATE_TEST_SUITE_P(NexthopObjects, HostGwEventsLab, ::testing::Values("on", "off"),
                         [](const auto& info) {
                           return info.param == "on" ? std::string("Nexthops")
                                                     : std::string("Inline");
                         });

// Memory: a full window is sent (and its messages freed) as soon as it is queued, so a sync holds
// at most one window of messages; its failures still come back from commit(), with their tags.
TEST(ScaleLabErrors, NetlinkBatchSendsEachWindowAsSoonAsItIsFull) {
  cleanup_stale_labs();
  PeerNs ns("sw");
  PeerNs::Enter in(ns);
  NetlinkSession nl;
  int eth0 = static_cast<int>(if_nametoindex("eth0"));
  auto boot_routes_here = [&] {
    size_t n = 0;
    for (const auto& r : nl.routes4()) n += r.protocol == 3;
    return n;
  };
  NetlinkBatch batch(nl, 64);
  const size_t bad = 70;  // in the second window
  for (size_t i = 0; i < 2 * 64 + 10; ++i) {
    Route4 r{IP4Net{IP4{(10u << 24) | uint32_t(i << 8)}, 24},
             i == bad ? IP4::parse("192.0.2.1") : IP4::parse("172.31.0.9"), eth0, false};
    batch.route_replace(r, 500 + i);
  }
  EXPECT_EQ(batch.size(), 2u * 64 + 10);
  EXPECT_EQ(boot_routes_here(), 2u * 64 - 1);  // two windows applied before commit()
  EXPECT_EQ(nl.batched_requests(), 2u * 64);
  auto failures = batch.commit();
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].tag, 500 + bad);
  EXPECT_NE(failures[0].message().find("via 192.0.2.1"), std::string::npos)
      << failures[0].message();
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(boot_routes_here(), 2u * 64 + 10 - 1);
  EXPECT_TRUE(batch.commit().empty());  // nothing left over from the first commit
}

}  // namespace
}  // namespace flannel::testing
