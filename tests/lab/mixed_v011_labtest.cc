// A mixed cluster: our flanneld on two lab hosts, and one host that stands for a flannel v0.11
// node, sharing one real etcd (v2 keys API) in the lab's hub namespace; on vxlan and on host-gw
// every pod pings every other pod, our agents program the v0.11 host as a peer, and its lease
// stays exactly as v0.11 wrote it.
//
// No v0.11 binary exists here (no Go toolchain, no distro package), so the v0.11 host runs NO
// flanneld: the test does by hand, step for step, what v0.11 does according to
// /work/shared/reference/flannel-v0.11-facts.md:
//   * etcd (§2.2-2.5): reads <prefix>/config and lists <prefix>/subnets with v0.11's GETs
//     (quorum=true), allocates like v0.11 (random among the first <= 100 free subnets from
//     SubnetMin) and creates the lease with v0.11's exact request: PUT
//     <prefix>/subnets/A.B.C.D-N?prevExist=false, form body ttl=86400&value=<LeaseAttrs JSON>,
//     the JSON byte-for-byte as Go's json.Marshal writes it (§2.3);
//   * vxlan (§3.2): device flannel.1 created before the lease (VNI 1, local = eth0's address,
//     dev eth0, nolearning, no port = kernel default 8472, txqueuelen 0, no MTU and no MAC, so the
//     kernel gives ext - 50 and a random MAC), VtepMAC = the MAC read back; after the lease
//     exactly <subnet network address>/32 on it, then up; per peer lease, in v0.11's order:
//     `ip neigh replace <peer .0> lladdr MAC nud permanent`, `bridge fdb replace MAC dst PublicIP
//     self permanent`, `ip route replace <subnet> via <peer .0> dev flannel.1 onlink`;
//   * host-gw (§3.1): per peer lease `ip route add <subnet> via <PublicIP> dev eth0`;
//   * both: the FORWARD accept rules (§4, --iptables-forward-rules defaults to true) and the
//     4-line subnet.env (§5.1); peers are filtered on the exact BackendType string (§3.0).
// v0.11's lease watch is played by calling sync_peers() after each change the watch would
// report; its renewal (23 h away) and iptables resync loop are out of the test's time span.
#include <gtest/gtest.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <random>

#include "tests/lab/overlay_lab.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

constexpr const char* kNetwork = "10.5.0.0/16";
constexpr const char* kPrefix =
    "/coreos.com/network";  // OverlayLab's etcd prefix (v0.11's default)

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

// "<prefix>/subnets/10.5.34.0-24" -> 10.5.34.0/24.
IP4Net subnet_of_key(const std::string& key) {
  std::string name = key.substr(key.rfind('/') + 1);
  size_t dash = name.rfind('-');
  if (dash == std::string::npos) throw std::runtime_error("not a subnet key: " + key);
  return IP4Net::parse(name.substr(0, dash) + "/" + name.substr(dash + 1));
}

// The v0.11 host of a lab: which host it is, and what it holds.
class V011Host {
 public:
  V011Host(OverlayLab& lab, int index, std::string backend)
      : lab_(lab), i_(index), backend_(std::move(backend)) {}

  // v0.11's start (§6.5 steps 9-14): config, device (vxlan), lease, address, rules, subnet.env,
  // then the initial snapshot of peers.
  void start() {
    auto config = get("/config?quorum=true&recursive=false&sorted=false");
    auto cfg = nlohmann::json::parse(config.at("node").at("value").get<std::string>());
    if (cfg.at("Network") != kNetwork) throw std::runtime_error("unexpected config " + cfg.dump());
    if (backend_ == "vxlan") {
      // RTM_NEWLINK kind vxlan: ID 1, LINK eth0, LOCAL IfaceAddr, LEARNING 0, no PORT, TXQLEN 0.
      must({"ip", "link", "add", "flannel.1", "txqueuelen", "0", "type", "vxlan", "id", "1",
            "local", addr().str(), "dev", "eth0", "nolearning"});
      auto link = nlohmann::json::parse(run({"ip", "-j", "link", "show", "flannel.1"}));
      mac_ = link.at(0).at("address").get<std::string>();
      value_ = R"({"PublicIP":")" + addr().str() +
               R"(","BackendType":"vxlan","BackendData":{"VtepMAC":")" + mac_ + R"("}})";
    } else {
      value_ = R"({"PublicIP":")" + addr().str() + R"(","BackendType":"host-gw"})";
    }
    acquire_lease();
    if (backend_ == "vxlan") {
      must({"ip", "addr", "add", subnet_.ip.str() + "/32", "dev", "flannel.1"});
      must({"ip", "link", "set", "flannel.1", "up"});
    }
    for (const char* dir : {"-s", "-d"})
      must({"iptables", "--wait", "-t", "filter", "-A", "FORWARD", dir, kNetwork, "-j", "ACCEPT"});
    write_subnet_env();
    sync_peers();
  }

  // v0.11's handling of "Added" for every other lease (the watch's events, replayed from a
  // snapshot): program what is missing, as the backend would.
  void sync_peers() {
    for (const auto& node : list()) {
      std::string key = node.at("key").get<std::string>();
      IP4Net subnet = subnet_of_key(key);
      if (subnet == subnet_) continue;  // events for the own subnet are dropped
      auto attrs = nlohmann::json::parse(node.at("value").get<std::string>());
      if (attrs.value("BackendType", "") != backend_) continue;  // exact match, else ignored
      std::string public_ip = attrs.at("PublicIP").get<std::string>();
      if (backend_ == "vxlan") {
        std::string mac = attrs.at("BackendData").at("VtepMAC").get<std::string>();
        std::string gw = subnet.ip.str();
        must({"ip", "neigh", "replace", gw, "lladdr", mac, "dev", "flannel.1", "nud", "permanent"});
        must({"bridge", "fdb", "replace", mac, "dev", "flannel.1", "dst", public_ip, "self",
              "permanent"});
        must({"ip", "route", "replace", subnet.str(), "via", gw, "dev", "flannel.1", "onlink"});
      } else if (run({"ip", "route", "show", subnet.str()}).empty()) {
        must({"ip", "route", "add", subnet.str(), "via", public_ip, "dev", "eth0"});
      }
    }
  }

  // The lease node as etcd holds it now (GET as v0.11's own-lease snapshot does).
  nlohmann::json lease_node() const {
    return get("/subnets/" + key_name() + "?quorum=true&recursive=false&sorted=false").at("node");
  }
  const IP4Net& subnet() const { return subnet_; }
  const std::string& value() const { return value_; }
  const std::string& mac() const { return mac_; }
  int64_t created_index() const { return created_index_; }
  std::string key_name() const { return subnet_.ip.str() + "-" + std::to_string(subnet_.prefix); }

 private:
  IP4 addr() const { return lab_.host(i_).addr; }
  const std::string& netns() const { return lab_.host(i_).netns; }

  std::string run(const std::vector<std::string>& argv) const {
    std::string out;
    run_command(argv, &out, netns());
    return out;
  }
  void must(const std::vector<std::string>& argv) const {
    std::string out;
    if (run_command(argv, &out, netns()) != 0)
      throw std::runtime_error("v0.11 host: `" + join(argv) + "` failed: " + out);
  }

  // One etcd v2 keys API request from the hub namespace (the only place etcd listens), never
  // through a proxy; returns the parsed answer (error answers too).
  nlohmann::json request(const std::string& method, const std::string& path,
                         const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> argv{"curl",
                                  "-sS",
                                  "--noproxy",
                                  "*",
                                  "-X",
                                  method,
                                  lab_.store()->endpoint() + "/v2/keys" + kPrefix + path};
    argv.insert(argv.end(), extra.begin(), extra.end());
    std::string out;
    if (run_command(argv, &out, lab_.lab().hub()) != 0)
      throw std::runtime_error("curl " + method + " " + path + " failed: " + out);
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_discarded()) throw std::runtime_error("etcd answered " + out);
    return j;
  }
  nlohmann::json get(const std::string& path) const {
    auto j = request("GET", path);
    if (j.contains("errorCode")) throw std::runtime_error("GET " + path + ": " + j.dump());
    return j;
  }
  // The direct children of <prefix>/subnets (none when the directory does not exist yet).
  nlohmann::json list() const {
    auto j = request("GET", "/subnets?quorum=true&recursive=true&sorted=false");
    if (j.contains("errorCode")) {
      if (j["errorCode"] == 100) return nlohmann::json::array();
      throw std::runtime_error("list: " + j.dump());
    }
    return j["node"].value("nodes", nlohmann::json::array());
  }

  // §2.5: up to 10 attempts of snapshot, pick a random subnet among the first <= 100 free ones
  // from SubnetMin (10.5.1.0 for a /16 with SubnetLen 24), create with prevExist=false.
  void acquire_lease() {
    std::mt19937 rng(static_cast<unsigned>(::getpid()) ^ static_cast<unsigned>(time(nullptr)));
    for (int attempt = 0; attempt < 10; ++attempt) {
      std::vector<IP4Net> taken;
      for (const auto& node : list())
        taken.push_back(subnet_of_key(node.at("key").get<std::string>()));
      std::vector<IP4Net> bag;
      for (uint32_t ip = IP4::parse("10.5.1.0").value;
           ip <= IP4::parse("10.5.255.0").value && bag.size() < 100; ip += 256) {
        IP4Net candidate{IP4{ip}, 24};
        bool free = true;
        for (const auto& t : taken) free = free && !candidate.overlaps(t);
        if (free) bag.push_back(candidate);
      }
      if (bag.empty()) throw std::runtime_error("out of subnets");
      subnet_ = bag[std::uniform_int_distribution<size_t>(0, bag.size() - 1)(rng)];
      // Go's url.Values.Encode: keys sorted (ttl, value), QueryEscape'd; curl sends the same
      // application/x-www-form-urlencoded body.
      auto j = request("PUT", "/subnets/" + key_name() + "?prevExist=false",
                       {"-d", "ttl=86400", "--data-urlencode", "value=" + value_});
      if (j.contains("errorCode")) continue;  // any etcd error: retry from the snapshot
      created_index_ = j.at("node").at("createdIndex").get<int64_t>();
      return;
    }
    throw std::runtime_error("Max retries reached trying to acquire a subnet");
  }

  // §5.1: four lines, written to a dot-file and renamed over the target.
  void write_subnet_env() const {
    std::string path = lab_.subnet_file(i_);
    std::string tmp = lab_.dir() + "/.h" + std::to_string(i_ + 1) + ".env";
    {
      std::ofstream f(tmp);
      f << "FLANNEL_NETWORK=" << kNetwork << "\n"
        << "FLANNEL_SUBNET=" << IP4{subnet_.ip.value + 1}.str() << "/" << subnet_.prefix << "\n"
        << "FLANNEL_MTU=" << (backend_ == "vxlan" ? 1450 : 1500) << "\n"
        << "FLANNEL_IPMASQ=false\n";
    }
    std::filesystem::rename(tmp, path);
  }

  OverlayLab& lab_;
  int i_;
  std::string backend_;
  IP4Net subnet_;
  std::string mac_;
  std::string value_;
  int64_t created_index_ = 0;
};

// `Lease acquired` lines in host i's flanneld log.
int leases_acquired(const OverlayLab& lab, int i) {
  std::string log = read_file(lab.log_file(i));
  int n = 0;
  for (size_t p = log.find("Lease acquired"); p != std::string::npos;
       p = log.find("Lease acquired", p + 1))
    ++n;
  return n;
}

class MixedV011Lab : public ::testing::TestWithParam<std::string> {};

// Hosts 1 and 3 run our flanneld; host 2 is the v0.11 host. Host 1 starts first, host 2 joins
// while it runs (our agent learns it from the watch), host 3 starts last (from its snapshot).
TEST_P(MixedV011Lab, MeshPingsAndTheV011LeaseIsLeftAlone) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const std::string backend = GetParam();
  OverlayLab lab(backend == "vxlan" ? "mxv" : "mxh",
                 R"({"Network":"10.5.0.0/16","Backend":{"Type":")" + backend + R"("}})", 3,
                 LabStore::Kind::kEtcd);
  constexpr int kOld = 1;  // 0-based index of the v0.11 host
  V011Host old(lab, kOld, backend);

  lab.start(0);
  lab.wait_subnet(0);
  old.start();
  lab.wait_subnet(kOld);  // reads the subnet.env the v0.11 host wrote
  ASSERT_EQ(lab.lease(kOld), old.subnet());
  if (backend == "vxlan") {  // the simulation itself: the device v0.11 would have made
    auto link = nlohmann::json::parse(lab.ip(kOld, {"-j", "-d", "link", "show", "flannel.1"}));
    const auto& data = link.at(0).at("linkinfo").at("info_data");
    EXPECT_EQ(data.at("id"), 1);
    EXPECT_EQ(data.at("local"), lab.host(kOld).addr.str());
    EXPECT_EQ(data.at("port"), 8472);
    EXPECT_EQ(data.at("learning"), false);
    EXPECT_EQ(link.at(0).at("mtu"), 1450);
    std::string addrs = lab.ip(kOld, {"-4", "-o", "addr", "show", "dev", "flannel.1"});
    EXPECT_NE(addrs.find("inet " + old.subnet().ip.str() + "/32"), std::string::npos) << addrs;
    EXPECT_EQ(addrs.find("inet "), addrs.rfind("inet ")) << "exactly one address: " << addrs;
  }
  lab.start(2);
  lab.wait_subnet(2);
  old.sync_peers();  // v0.11's watch reports host 3's new lease
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < i; ++j) ASSERT_FALSE(lab.lease(i).overlaps(lab.lease(j))) << lab.dump();
  lab.add_pods();
  ASSERT_TRUE(lab.wait_full_mesh()) << lab.dump();

  // Our agents hold the v0.11 host as a peer, with v0.11's own entries.
  std::string old_ip = lab.host(kOld).addr.str();
  for (int i : {0, 2}) {
    std::string r = lab.route(i, old.subnet());
    if (backend == "vxlan") {
      std::string gw = old.subnet().ip.str();
      EXPECT_NE(r.find("via " + gw + " dev flannel.1 onlink"), std::string::npos) << r;
      std::string neigh = lab.ip(i, {"neigh", "show", gw, "dev", "flannel.1"});
      EXPECT_NE(neigh.find("lladdr " + old.mac() + " PERMANENT"), std::string::npos) << neigh;
      std::string fdb;
      run_command({"bridge", "fdb", "show", "dev", "flannel.1"}, &fdb, lab.host(i).netns);
      EXPECT_NE(fdb.find(old.mac() + " dst " + old_ip + " self permanent"), std::string::npos)
          << fdb;
    } else {
      EXPECT_NE(r.find("via " + old_ip + " dev eth0"), std::string::npos) << r;
    }
  }
  // What the v0.11 host reads of ours: its own byte format, and (vxlan) the devices' real MACs.
  auto leases = lab.leases();
  for (int i : {0, 2}) {
    std::string data;
    if (backend == "vxlan") {
      auto link = nlohmann::json::parse(lab.ip(i, {"-j", "link", "show", "flannel.1"}));
      data =
          R"(,"BackendData":{"VtepMAC":")" + link.at(0).at("address").get<std::string>() + R"("})";
    }
    EXPECT_EQ(leases.at(lab.lease(i).str()).dump(), R"({"PublicIP":")" + lab.host(i).addr.str() +
                                                        R"(","BackendType":")" + backend + "\"" +
                                                        data + "}");
  }

  for (int i : {0, 2})  // both of ours chose etcd's v2 keys API, where the v0.11 host lives
    EXPECT_NE(read_file(lab.log_file(i)).find("Using etcd v2 API"), std::string::npos)
        << read_file(lab.log_file(i));

  auto failed = lab.ping_matrix();
  EXPECT_TRUE(failed.empty()) << backend << " failed pings: " << join(failed) << "\n" << lab.dump();

  // The v0.11 lease: same key, same bytes, never written again, TTL still running.
  auto untouched = [&](const char* when) {
    auto node = old.lease_node();
    EXPECT_EQ(node.at("key"), std::string(kPrefix) + "/subnets/" + old.key_name()) << when;
    EXPECT_EQ(node.at("value"), old.value()) << when;
    EXPECT_EQ(node.at("modifiedIndex").get<int64_t>(), old.created_index())
        << when << ": rewritten: " << node.dump();
    EXPECT_EQ(node.at("createdIndex").get<int64_t>(), old.created_index()) << when;
    ASSERT_TRUE(node.contains("ttl") && node.contains("expiration")) << when << ": " << node.dump();
    EXPECT_GT(node["ttl"].get<int64_t>(), 86400 - 600) << when;
    EXPECT_LE(node["ttl"].get<int64_t>(), 86400) << when;
  };
  untouched("after the mesh");

  // Our host 1 restarts (startup reconciliation runs): the v0.11 peer keeps its entries and
  // traffic, and its lease is still not touched.
  EXPECT_EQ(lab.stop(0), 0);
  lab.start(0);
  ASSERT_TRUE(wait_until([&] { return leases_acquired(lab, 0) >= 2; }, 15s)) << lab.dump();
  EXPECT_FALSE(lab.route(0, old.subnet()).empty()) << lab.dump();
  EXPECT_TRUE(lab.ping(0, kOld) && lab.ping(kOld, 0)) << lab.dump();
  untouched("after a restart of host 1");
}

INSTANTIATE_TEST_SUITE_P(Backends, MixedV011Lab, ::testing::Values("vxlan", "host-gw"),
                         [](const auto& info) {
                           return info.param == "vxlan" ? "Vxlan" : "HostGw";
                         });

}  // namespace
}  // namespace flannel::testing
