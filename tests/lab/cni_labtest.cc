// The flannel CNI plugin in the lab, run exactly as kubelet's runtime runs a conflist: the
// 10-flannel.conflist `flannelctl cni-config` prints, each plugin exec'd inside the lab host's
// namespace with the CNI_* environment and its config (plus "name", "cniVersion", "prevResult")
// on stdin, our plugin installed as `flannel` in a CNI bin dir ahead of Debian's /usr/lib/cni
// (real bridge, host-local, portmap from containernetworking-plugins). flanneld (vxlan or
// host-gw, SQLite store) writes each host's subnet.env; pods on different hosts ping each other.
//
// Safety: pod namespaces carry the Lab's fl<pid>-* prefix and are deleted by a guard on every
// path (and by cleanup_stale_labs() after a crash); every CNI state dir (the plugin's dataDir,
// host-local's dataDir) lives in the lab's temp dir; nothing is done in the root namespace.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "tests/lab/overlay_lab.h"

namespace flannel::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Deletes the pod namespaces it was given, on every exit path (declared after the OverlayLab,
// so it runs first, while the hosts still exist).
struct PodNamespaces {
  std::vector<std::string> names;
  ~PodNamespaces() {
    for (const auto& n : names) run_command({"ip", "netns", "del", n});
  }
};

struct Invocation {
  int rc = -1;
  std::string out, err;
  json result() const { return json::parse(out, nullptr, false); }
};

class CniNode {
 public:
  // Host i of `lab`: its own dataDir and host-local dataDir under the lab's temp dir.
  CniNode(OverlayLab& lab, int i) : lab_(lab), i_(i) {
    base_ = lab.dir() + "/cni-h" + std::to_string(i + 1);
    bin_ = lab.dir() + "/cni-bin";
    fs::create_directories(base_);
    fs::create_directories(bin_);
    std::error_code ec;
    fs::create_symlink(std::string(FLANNEL_BIN_DIR) + "/flannel-cni", bin_ + "/flannel", ec);
    // The conflist, as an operator makes it, pointing at this host's subnet file and dataDir.
    std::string out;
    int rc = run_command({std::string(FLANNEL_BIN_DIR) + "/flannelctl", "cni-config",
                          "--subnet-file=" + lab.subnet_file(i), "--data-dir=" + data_dir()},
                         &out);
    if (rc != 0) throw std::runtime_error("flannelctl cni-config failed: " + out);
    conflist_ = json::parse(out);
    // host-local's state must not go to /var/lib/cni/networks on this machine.
    conflist_["plugins"][0]["ipam"] = {{"dataDir", ipam_dir()}};
  }

  std::string data_dir() const { return base_ + "/flannel"; }
  std::string ipam_dir() const { return base_ + "/ipam"; }
  std::string network() const { return conflist_["name"]; }
  const std::string& netns() const { return lab_.host(i_).netns; }

  // One plugin, as libcni execs it: CNI_* env (CNI_ARGS as containerd sets it for kubelet; PATH,
  // which bridge needs for iptables),
  // config on stdin, result on stdout.
  Invocation exec(const std::string& command, const json& conf, const std::string& id,
                  const std::string& pod_netns) {
    const std::string type = conf["type"];
    std::string plugin = fs::exists(bin_ + "/" + type) ? bin_ + "/" + type : "/usr/lib/cni/" + type;
    std::string tag = base_ + "/call" + std::to_string(calls_++);
    std::ofstream(tag + ".in") << conf.dump();
    std::vector<std::string> argv{
        "env",
        "-i",
        "CNI_COMMAND=" + command,
        "CNI_CONTAINERID=" + id,
        "CNI_NETNS=" + (pod_netns.empty() ? "" : "/var/run/netns/" + pod_netns),
        "CNI_IFNAME=eth0",
        "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + id +
            ";K8S_POD_INFRA_CONTAINER_ID=" + id,
        "CNI_PATH=" + bin_ + ":/usr/lib/cni",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "sh",
        "-c",
        "exec \"$0\" <\"$1\" >\"$2\" 2>\"$3\"",
        plugin,
        tag + ".in",
        tag + ".out",
        tag + ".err"};
    Invocation r;
    r.rc = run_command(argv, nullptr, netns());
    r.out = read_file(tag + ".out");
    r.err = read_file(tag + ".err");
    return r;
  }

  // The conflist's plugin k with what the runtime injects.
  json plugin_conf(size_t k, const json& prev) const {
    json c = conflist_["plugins"][k];
    c["name"] = conflist_["name"];
    c["cniVersion"] = conflist_["cniVersion"];
    if (!prev.is_null()) c["prevResult"] = prev;
    return c;
  }
  size_t plugins() const { return conflist_["plugins"].size(); }

  // ADD of the whole list (libcni AddNetworkList): each plugin gets the previous one's result.
  // Returns the last result; *failure says which plugin failed and how.
  json add(const std::string& id, const std::string& pod, std::string* failure) {
    json prev;
    for (size_t k = 0; k < plugins(); ++k) {
      Invocation r = exec("ADD", plugin_conf(k, prev), id, pod);
      if (r.rc != 0 || r.result().is_discarded()) {
        *failure = "ADD plugin " + std::to_string(k) + " rc=" + std::to_string(r.rc) +
                   " out=" + r.out + " err=" + r.err;
        return nullptr;
      }
      prev = r.result();
    }
    return prev;
  }
  // CHECK and DEL of the whole list (DEL in reverse), with the cached result as prevResult.
  // Returns the first failing invocation, or rc 0.
  Invocation check(const std::string& id, const std::string& pod, const json& result) {
    for (size_t k = 0; k < plugins(); ++k) {
      Invocation r = exec("CHECK", plugin_conf(k, result), id, pod);
      if (r.rc != 0) return r;
    }
    return Invocation{0, "", ""};
  }
  Invocation del(const std::string& id, const std::string& pod, const json& result) {
    for (size_t k = plugins(); k-- > 0;) {
      Invocation r = exec("DEL", plugin_conf(k, result), id, pod);
      if (r.rc != 0) return r;
    }
    return Invocation{0, "", ""};
  }

  // Files host-local keeps per reserved address (everything but its lock and cursor).
  std::set<std::string> reservations() const {
    std::set<std::string> s;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(ipam_dir() + "/" + network(), ec)) {
      std::string n = e.path().filename();
      if (n != "lock" && n.rfind("last_reserved_ip", 0) != 0) s.insert(n);
    }
    return s;
  }
  // Saved delegate configs in the plugin's dataDir.
  std::set<std::string> saved() const {
    std::set<std::string> s;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(data_dir(), ec)) s.insert(e.path().filename());
    return s;
  }
  // Interfaces enslaved to cni0 (the pods' host-side veths).
  std::string bridge_ports() const { return lab_.ip(i_, {"-o", "link", "show", "master", "cni0"}); }

 private:
  OverlayLab& lab_;
  int i_;
  std::string base_, bin_;
  json conflist_;
  int calls_ = 0;
};

std::string pod_exec(const std::string& pod, const std::vector<std::string>& argv) {
  std::string out;
  run_command(argv, &out, pod);
  return out;
}

// Does namespace `ns` have a link named `name`?
bool has_link(const std::string& ns, const std::string& name) {
  return run_command({"ip", "link", "show", name}, nullptr, ns) == 0;
}

std::string pod_ip(const json& result) {
  std::string a = result["ips"][0]["address"];
  return a.substr(0, a.find('/'));
}

bool ping(const std::string& from_pod, const std::string& to_ip) {
  for (int a = 0; a < 5; ++a)
    if (run_command({"ping", "-c", "1", "-W", "1", to_ip}, nullptr, from_pod) == 0) return true;
  return false;
}

class CniLab : public ::testing::TestWithParam<std::string> {};

TEST_P(CniLab, PodsAcrossHostsThroughThePlugin) {
  const std::string backend = GetParam();
  OverlayLab lab(backend == "vxlan" ? "cnivx" : "cnihg",
                 R"({"Network":"10.5.0.0/16","Backend":{"Type":")" + backend + R"("}})", 2);
  PodNamespaces pods;
  lab.start_all();
  for (int i = 0; i < 2; ++i) lab.wait_subnet(i);
  ASSERT_TRUE(lab.wait_full_mesh()) << lab.dump();

  std::vector<std::unique_ptr<CniNode>> nodes;
  std::vector<json> results(2);
  std::vector<std::string> pod(2), id(2);
  for (int i = 0; i < 2; ++i) {
    nodes.push_back(std::make_unique<CniNode>(lab, i));
    pod[i] = lab.lab().prefix() + "-c" + std::to_string(i + 1);
    id[i] = "pod" + std::to_string(i + 1) + "abc";
    ASSERT_EQ(run_command({"ip", "netns", "add", pod[i]}), 0);
    pods.names.push_back(pod[i]);
    std::string failure;
    results[i] = nodes[i]->add(id[i], pod[i], &failure);
    ASSERT_FALSE(results[i].is_null()) << failure << "\n" << lab.dump();

    // The result: 1.0.0 shape, an address in FLANNEL_SUBNET with the bridge as gateway.
    EXPECT_EQ(results[i]["cniVersion"], "1.0.0");
    IP4Net addr = IP4Net::parse_keep_host(results[i]["ips"][0]["address"].get<std::string>());
    EXPECT_TRUE(lab.lease(i).contains(addr.ip)) << results[i].dump();
    EXPECT_EQ(addr.prefix, lab.lease(i).prefix);
    EXPECT_EQ(results[i]["ips"][0]["gateway"], IP4{lab.lease(i).ip.value + 1}.str());
    EXPECT_FALSE(results[i]["ips"][0].contains("version"));
    // The pod: eth0 with that address and FLANNEL_MTU, routes to the network and default.
    // (`ip link`, not /sys: run_command enters the namespace without remounting /sys)
    std::string link = pod_exec(pod[i], {"ip", "-o", "link", "show", "eth0"});
    EXPECT_NE(link.find(" mtu " + std::to_string(lab.mtu(i)) + " "), std::string::npos) << link;
    EXPECT_NE(pod_exec(pod[i], {"ip", "-o", "addr", "show", "eth0"}).find(addr.str()),
              std::string::npos);
    std::string routes = pod_exec(pod[i], {"ip", "route"});
    EXPECT_NE(routes.find("10.5.0.0/16 via " + IP4{lab.lease(i).ip.value + 1}.str()),
              std::string::npos)
        << routes;
    EXPECT_NE(routes.find("default via"), std::string::npos) << routes;
    // The host: cni0 carries the gateway, one port; the saved delegate config names the subnet.
    const std::string gw =
        IP4{lab.lease(i).ip.value + 1}.str() + "/" + std::to_string(lab.lease(i).prefix);
    EXPECT_NE(lab.ip(i, {"-o", "addr", "show", "cni0"}).find(gw), std::string::npos) << gw;
    EXPECT_EQ(nodes[i]->saved(), std::set<std::string>{id[i]});
    json saved = json::parse(read_file(nodes[i]->data_dir() + "/" + id[i]));
    EXPECT_EQ(saved["ipam"]["ranges"][0][0]["subnet"], lab.lease(i).str());
    EXPECT_EQ(saved["mtu"], lab.mtu(i));
    EXPECT_EQ(nodes[i]->reservations(), std::set<std::string>{pod_ip(results[i])});
  }

  // Across hosts, both ways.
  EXPECT_TRUE(ping(pod[0], pod_ip(results[1]))) << lab.dump();
  EXPECT_TRUE(ping(pod[1], pod_ip(results[0]))) << lab.dump();

  // CHECK passes on a healthy pod, and fails (bridge's verdict, passed through) on a broken one.
  for (int i = 0; i < 2; ++i) {
    Invocation c = nodes[i]->check(id[i], pod[i], results[i]);
    EXPECT_EQ(c.rc, 0) << c.out << c.err;
  }
  // (A lost route, not a lost address: bridge's DEL finds the masquerade rules by the address.)
  ASSERT_EQ(run_command({"ip", "route", "del", "default"}, nullptr, pod[1]), 0);
  Invocation broken = nodes[1]->check(id[1], pod[1], results[1]);
  EXPECT_NE(broken.rc, 0);
  EXPECT_TRUE(broken.result().contains("code")) << broken.out;

  // DEL: the veth goes, the address is freed, the saved config removed; a second DEL succeeds.
  for (int i = 0; i < 2; ++i) {
    Invocation d = nodes[i]->del(id[i], pod[i], results[i]);
    ASSERT_EQ(d.rc, 0) << d.out << d.err;
    EXPECT_EQ(nodes[i]->bridge_ports(), "");
    EXPECT_FALSE(has_link(pod[i], "eth0"));
    EXPECT_TRUE(nodes[i]->saved().empty());
    EXPECT_TRUE(nodes[i]->reservations().empty());
    Invocation again = nodes[i]->del(id[i], pod[i], results[i]);
    EXPECT_EQ(again.rc, 0) << again.out << again.err;
    // CHECK of a container we no longer know: code 3.
    Invocation gone = nodes[i]->exec("CHECK", nodes[i]->plugin_conf(0, results[i]), id[i], pod[i]);
    EXPECT_NE(gone.rc, 0);
    EXPECT_EQ(gone.result().value("code", 0), 3) << gone.out;
  }
  // The masquerade rules bridge added for each pod went with it.
  for (int i = 0; i < 2; ++i) {
    std::string nat;
    ASSERT_EQ(run_command({"iptables", "-t", "nat", "-S"}, &nat, lab.host(i).netns), 0) << nat;
    EXPECT_EQ(nat.find("CNI-"), std::string::npos) << nat;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, CniLab, ::testing::Values("vxlan", "host-gw"),
                         [](const auto& info) {
                           return info.param == "vxlan" ? "vxlan" : "hostgw";
                         });

TEST(CniLabChurn, TwentyPodsAddedAndDeletedLeaveNothingBehind) {
  OverlayLab lab("cnich", R"({"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}})", 1);
  PodNamespaces pods;
  lab.start(0);
  lab.wait_subnet(0);
  CniNode node(lab, 0);
  std::vector<json> results;
  std::set<std::string> ips;
  for (int k = 0; k < 20; ++k) {
    std::string p = lab.lab().prefix() + "-c" + std::to_string(k);
    ASSERT_EQ(run_command({"ip", "netns", "add", p}), 0);
    pods.names.push_back(p);
    std::string failure;
    results.push_back(node.add("churn" + std::to_string(k), p, &failure));
    ASSERT_FALSE(results.back().is_null()) << "pod " << k << ": " << failure;
    ips.insert(pod_ip(results.back()));
  }
  EXPECT_EQ(ips.size(), 20u);
  EXPECT_EQ(node.reservations(), ips);
  EXPECT_EQ(node.saved().size(), 20u);
  std::string ports = node.bridge_ports();
  EXPECT_EQ(std::count(ports.begin(), ports.end(), '\n'), 20) << ports;
  // Two pods on the same host reach each other over cni0.
  EXPECT_TRUE(ping(pods.names[0], pod_ip(results[19])));

  for (int k = 0; k < 20; ++k) {
    Invocation d = node.del("churn" + std::to_string(k), pods.names[k], results[k]);
    ASSERT_EQ(d.rc, 0) << "pod " << k << ": " << d.out << d.err;
  }
  EXPECT_EQ(node.bridge_ports(), "");
  EXPECT_TRUE(node.saved().empty());
  EXPECT_TRUE(node.reservations().empty());
  std::string nat;
  run_command({"iptables", "-t", "nat", "-S"}, &nat, lab.host(0).netns);
  EXPECT_EQ(nat.find("CNI-"), std::string::npos) << nat;
  for (const auto& p : pods.names) EXPECT_FALSE(has_link(p, "eth0")) << p;

  // The freed addresses are usable again: a new pod gets one and works.
  std::string failure;
  json again = node.add("churnagain", pods.names[0], &failure);
  ASSERT_FALSE(again.is_null()) << failure;
  EXPECT_TRUE(lab.lease(0).contains(IP4::parse(pod_ip(again))));
  EXPECT_EQ(node.del("churnagain", pods.names[0], again).rc, 0);
  EXPECT_TRUE(node.reservations().empty());
}

}  // namespace
}  // namespace flannel::testing
