// OverlayLab: the shared fixture of the data-plane lab tests. A Lab (tests/support/lab.h) of N
// hosts, one SQLite store file in a temp dir that every host's flanneld shares, one flanneld per
// host running inside that host's namespace, and one pod per host on its cni0 bridge, so a test
// can check routes, devices and real pings between pods on different hosts.
//
// With a LabStore::Kind of kEtcd the hosts share a real etcd (v2 keys API) in the lab's hub
// namespace instead (10.250.0.254:2379, tests/support/lab_store.h), as a cluster that also holds
// flannel v0.11 hosts runs; store() gives the test that etcd.
//
// With a dual-stack config (EnableIPv6) wait_subnet() also reads FLANNEL_IPV6_SUBNET, add_pods()
// gives each pod an IPv6 address too, and ping6()/ping_matrix(true) test that family.
//
// Everything is torn down on every path: the flanneld processes (SIGTERM, then SIGKILL by
// Process), etcd, the namespaces (Lab) and the temp dir.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/ip.h"
#include "tests/support/lab.h"
#include "tests/support/lab_store.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

#ifndef FLANNEL_BIN_DIR
#error "FLANNEL_BIN_DIR must point at the built flanneld/flannelctl"
#endif

namespace flannel::testing {

using namespace std::chrono_literals;

class OverlayLab {
 public:
  OverlayLab(const std::string& tag, const std::string& config_json, int hosts,
             LabStore::Kind store = LabStore::Kind::kSqlite) {
    cleanup_stale_labs();
    db_ = dir_.path + "/store.db";
    lab_ = std::make_unique<Lab>(tag);
    for (int i = 0; i < hosts; ++i) lab_->add_host();
    if (store != LabStore::Kind::kSqlite)
      store_ = std::make_unique<LabStore>(store, *lab_, dir_.path, "/coreos.com/network");
    std::string out;
    int rc = ctl({"config", "set", config_json}, &out);
    if (rc != 0) throw std::runtime_error("flannelctl config set failed: " + out);
    daemons_.resize(hosts);
    subnets_.resize(hosts);
    subnets6_.resize(hosts);
  }

  ~OverlayLab() {
    for (auto& d : daemons_) stop(d);
    daemons_.clear();
    store_.reset();  // etcd runs in the hub namespace: stop it before the namespace goes
    lab_.reset();    // deletes every namespace, taking devices and routes with them
  }

  Lab& lab() { return *lab_; }
  const Lab::Host& host(int i) const { return lab_->hosts()[i]; }
  int size() const { return static_cast<int>(lab_->hosts().size()); }
  const std::string& dir() const { return dir_.path; }
  std::string subnet_file(int i) const { return dir() + "/h" + std::to_string(i + 1) + ".env"; }
  std::string log_file(int i) const { return dir() + "/h" + std::to_string(i + 1) + ".log"; }

  // The etcd store (nullptr with the default SQLite file).
  const LabStore* store() const { return store_.get(); }
  // The flanneld/flannelctl flags that select the shared store.
  std::vector<std::string> store_flags() const {
    if (store_) return store_->flags();
    return {"-store=sqlite:" + db_};
  }

  int ctl(const std::vector<std::string>& args, std::string* out = nullptr) const {
    if (store_) return store_->ctl(args, out);
    std::vector<std::string> argv{std::string(FLANNEL_BIN_DIR) + "/flannelctl",
                                  "-store=sqlite:" + db_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, out);
  }

  // Starts flanneld on host i (0-based) inside its namespace.
  void start(int i) {
    std::vector<std::string> argv{std::string(FLANNEL_BIN_DIR) + "/flanneld"};
    for (const auto& f : store_flags()) argv.push_back(f);
    argv.push_back("-subnet-file=" + subnet_file(i));
    for (const char* f : {"-iface=eth0", "-healthz-port=0"}) argv.push_back(f);
    Process::Spec spec{std::move(argv), {}, {}, host(i).netns, log_file(i)};
    if (customize_start) customize_start(i, spec);
    daemons_[i] = std::make_unique<Process>(std::move(spec));
  }
  // Optional: adjusts the flanneld command of host i before start (a wrapper, environment).
  std::function<void(int i, Process::Spec& spec)> customize_start;
  void start_all() {
    for (int i = 0; i < size(); ++i) start(i);
  }
  // For the wireguard backend (wireguard-go): wireguard-go keeps its UAPI sockets in
  // /run/wireguard, one directory for the whole machine, and every lab host's device is called
  // flannel-wg. So each flanneld runs in its own mount namespace with a private tmpfs on
  // /run/wireguard (`unshare -m` + mount, then exec: daemon(i)->pid() is still flanneld's), which
  // also guarantees no socket survives the host; and with its own key file in dir(). Inspect a
  // device with `nsenter -t <flanneld> -m -n wg show`. Call before start().
  void use_private_wireguard_dirs() {
    std::filesystem::create_directories("/run/wireguard");  // the mount point of each tmpfs
    customize_start = [this](int i, Process::Spec& spec) {
      std::vector<std::string> argv{
          "unshare",
          "-m",
          "--propagation",
          "private",
          "sh",
          "-c",
          "mount -t tmpfs -o mode=0755 flannel-lab-wg /run/wireguard && exec \"$0\" \"$@\""};
      argv.insert(argv.end(), spec.argv.begin(), spec.argv.end());
      spec.argv = argv;
      spec.env_set["WIREGUARD_KEY_FILE"] = dir() + "/h" + std::to_string(i + 1) + ".wgkey";
    };
  }

  // SIGTERM and wait for a clean exit; returns the exit code (nullopt if it had to be killed).
  std::optional<int> stop(int i) { return stop(daemons_[i]); }

  Process* daemon(int i) { return daemons_[i].get(); }

  // Waits until host i's subnet file has FLANNEL_SUBNET; returns it ("10.5.34.1/24").
  IP4Net wait_subnet(int i, std::chrono::milliseconds timeout = 15s) {
    std::string subnet;
    bool ok = wait_until(
        [&] {
          subnet = env_value(read_file(subnet_file(i)), "FLANNEL_SUBNET");
          return !subnet.empty();
        },
        timeout);
    if (!ok)
      throw std::runtime_error("no subnet file from host " + std::to_string(i + 1) +
                               "; flanneld log:\n" + read_file(log_file(i)));
    subnets_[i] = IP4Net::parse_keep_host(subnet);
    subnets6_[i].reset();
    std::string subnet6 = env_value(read_file(subnet_file(i)), "FLANNEL_IPV6_SUBNET");
    if (!subnet6.empty()) subnets6_[i] = IP6Net::parse(subnet6);  // network form
    return subnets_[i];
  }
  // The lease subnet of host i (network address form), after wait_subnet().
  IP4Net lease(int i) const { return subnets_[i].network(); }
  // The IPv6 lease subnet of host i (network form), when its subnet file has one.
  std::optional<IP6Net> lease6(int i) const { return subnets6_[i]; }
  // The FLANNEL_MTU of host i.
  int mtu(int i) const { return std::stoi(env_value(read_file(subnet_file(i)), "FLANNEL_MTU")); }

  // Adds one pod per host, on FLANNEL_SUBNET's gateway (and FLANNEL_IPV6_SUBNET's, if any).
  void add_pods() {
    for (int i = 0; i < size(); ++i) {
      std::optional<IP6Net> gw6;
      if (subnets6_[i]) gw6 = IP6Net{subnets6_[i]->first_host(), subnets6_[i]->prefix};
      pods_.push_back(lab_->add_pod(host(i), subnets_[i], gw6));
    }
  }
  const Lab::Pod& pod(int i) const { return pods_[i]; }

  // `ip route show <dst>` in host i's namespace ("" when there is none).
  std::string route(int i, const IP4Net& dst) const {
    std::string out;
    run_command({"ip", "route", "show", dst.str()}, &out, host(i).netns);
    return out;
  }
  std::string route(int i, const IP6Net& dst) const {
    std::string out;
    run_command({"ip", "-6", "route", "show", dst.str()}, &out, host(i).netns);
    return out;
  }
  // `ip <args...>` in host i's namespace; returns the output.
  std::string ip(int i, const std::vector<std::string>& args) const {
    return ip_output(host(i).netns, args);
  }

  // Waits until every host has a route to every other host's lease (both families when both
  // hosts have an IPv6 subnet).
  bool wait_full_mesh(std::chrono::milliseconds timeout = 15s) const {
    return wait_until(
        [&] {
          for (int i = 0; i < size(); ++i)
            for (int j = 0; j < size(); ++j)
              if (i != j && (route(i, lease(j)).empty() ||
                             (subnets6_[i] && subnets6_[j] && route(i, *subnets6_[j]).empty())))
                return false;
          return true;
        },
        timeout);
  }

  // One ping from pod i to pod j, retried a few times (the first packet may wait for ARP).
  bool ping(int i, int j, int attempts = 3) const {
    for (int a = 0; a < attempts; ++a) {
      if (run_command({"ping", "-c", "1", "-W", "1", pods_[j].addr.str()}, nullptr,
                      pods_[i].netns) == 0)
        return true;
    }
    return false;
  }
  // The same over IPv6 (pods made with an IPv6 subnet; the first packet may wait for ND).
  bool ping6(int i, int j, int attempts = 3) const {
    if (!pods_[j].addr6) return false;
    for (int a = 0; a < attempts; ++a) {
      if (run_command({"ping", "-6", "-c", "1", "-W", "1", pods_[j].addr6->str()}, nullptr,
                      pods_[i].netns) == 0)
        return true;
    }
    return false;
  }
  // Pings every ordered pair of pods on different hosts (IPv6 with `v6`); returns the failed
  // pairs ("1->2").
  std::vector<std::string> ping_matrix(bool v6 = false) const {
    std::vector<std::string> failed;
    for (int i = 0; i < size(); ++i)
      for (int j = 0; j < size(); ++j)
        if (i != j && !(v6 ? ping6(i, j) : ping(i, j)))
          failed.push_back(std::to_string(i + 1) + "->" + std::to_string(j + 1));
    return failed;
  }

  // `flannelctl subnets list --json`, keyed by subnet ("10.5.34.0/24") -> lease value object
  // (key order kept, so dump() shows the bytes as stored).
  std::map<std::string, nlohmann::ordered_json> leases() const {
    std::string out;
    if (ctl({"subnets", "list", "--json"}, &out) != 0)
      throw std::runtime_error("flannelctl subnets list failed: " + out);
    std::map<std::string, nlohmann::ordered_json> m;
    for (const auto& l : nlohmann::ordered_json::parse(out))
      m[l["subnet"].get<std::string>()] = l["value"];
    return m;
  }

  // Everything useful when a test fails: each host's routes, links and flanneld log.
  std::string dump() const {
    std::string s;
    for (int i = 0; i < size(); ++i) {
      s += "---- host " + std::to_string(i + 1) + " (" + host(i).netns + ")\n";
      s += ip(i, {"-d", "link", "show"});
      s += ip(i, {"route", "show"});
      s += ip(i, {"-6", "route", "show"});
      s += ip(i, {"neigh", "show"});
      s += "---- flanneld log\n" + read_file(log_file(i));
    }
    return s;
  }

  static std::string env_value(const std::string& text, const std::string& key) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
    return "";
  }

 private:
  static std::optional<int> stop(std::unique_ptr<Process>& p) {
    if (!p) return std::nullopt;
    std::optional<int> rc;
    if (p->running()) {
      p->signal(SIGTERM);
      rc = p->wait(5s);
    } else {
      rc = p->wait(0ms);
    }
    p.reset();  // SIGKILLs if still running
    return rc;
  }

  // The temp dir (store, subnet files, logs); removed last, also when the constructor throws.
  // FLANNEL_LAB_KEEP=1 keeps it for a post-mortem.
  struct TempDir {
    std::string path;
    TempDir() {
      char tmpl[] = "/tmp/flannel-lab-XXXXXX";
      if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
      path = tmpl;
    }
    ~TempDir() {
      std::error_code ec;
      if (::getenv("FLANNEL_LAB_KEEP") == nullptr) std::filesystem::remove_all(path, ec);
    }
  };

  TempDir dir_;
  std::string db_;
  std::unique_ptr<Lab> lab_;
  std::unique_ptr<LabStore> store_;
  std::vector<std::unique_ptr<Process>> daemons_;
  std::vector<IP4Net> subnets_;
  std::vector<std::optional<IP6Net>> subnets6_;
  std::vector<Lab::Pod> pods_;
};

}  // namespace flannel::testing
