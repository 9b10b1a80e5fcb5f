#include "tests/support/lab.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>
#include <stdexcept>

#include "tests/support/process.h"

namespace flannel::testing {

Lab::Lab(const std::string& tag) {
  static int counter = 0;
  prefix_ = "fl" + std::to_string(::getpid()) + "-" + tag + std::to_string(counter++);
  hub_ = prefix_ + "-hub";
  try {
    must({"ip", "netns", "add", hub_});
    namespaces_.push_back(hub_);
    must({"ip", "link", "set", "lo", "up"}, hub_);
    // A fixed MAC: a bridge without one takes the lowest MAC of its ports and changes it when a
    // lower one joins, and hosts whose ARP entry still holds the old MAC lose the hub (and the
    // store in it) until that entry expires, up to 45 s (seen as "host 2 got no lease" on CI).
    must({"ip", "link", "add", "br0", "address", "02:fa:00:00:00:fe", "type", "bridge"}, hub_);
    must({"ip", "addr", "add", "10.250.0.254/24", "dev", "br0"}, hub_);
    must({"ip", "-6", "addr", "add", "fd00:250::fe/64", "dev", "br0", "nodad"}, hub_);
    must({"ip", "link", "set", "br0", "up"}, hub_);
  } catch (...) {
    for (const auto& ns : namespaces_) run_command({"ip", "netns", "del", ns});
    throw;
  }
}

Lab::~Lab() {
  for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it)
    run_command({"ip", "netns", "del", *it});
}

void Lab::must(const std::vector<std::string>& argv, const std::string& netns) {
  std::string out;
  int rc = run_command(argv, &out, netns);
  if (rc != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    throw std::runtime_error("lab: `" + cmd + "`" + (netns.empty() ? "" : " in " + netns) +
                             " failed (" + std::to_string(rc) + "): " + out);
  }
}

const Lab::Host& Lab::add_host() {
  int i = static_cast<int>(hosts_.size()) + 1;
  if (i > 250) throw std::runtime_error("lab: at most 250 hosts");
  IP6 addr6 = IP6::parse("fd00:250::");
  addr6.bytes[15] = static_cast<uint8_t>(i);
  Host h{prefix_ + "-h" + std::to_string(i), IP4{(10u << 24) | (250u << 16) | unsigned(i)}, addr6};
  must({"ip", "netns", "add", h.netns});
  namespaces_.push_back(h.netns);
  must({"ip", "link", "set", "lo", "up"}, h.netns);
  hosts_.push_back(h);
  plug(i);
  return hosts_.back();
}

void Lab::unplug(int host) {
  // std::string("v") + ...: `"v" + std::to_string(i)` trips GCC 12's -Wrestrict false positive
  // at -O3 (operator+(const char*, string&&)).
  must({"ip", "link", "del", std::string("v") + std::to_string(host)}, hub_);
}

void Lab::cable(int a, int b) {
  const Host& ha = hosts_.at(static_cast<size_t>(a - 1));
  const Host& hb = hosts_.at(static_cast<size_t>(b - 1));
  must({"ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", hb.netns},
       ha.netns);
  must({"ip", "addr", "add", "10.251.0." + std::to_string(a) + "/24", "dev", "eth1"}, ha.netns);
  must({"ip", "addr", "add", "10.251.0." + std::to_string(b) + "/24", "dev", "eth1"}, hb.netns);
  must({"ip", "link", "set", "eth1", "up"}, ha.netns);
  must({"ip", "link", "set", "eth1", "up"}, hb.netns);
}

void Lab::plug(int host) {
  const Host& h = hosts_.at(static_cast<size_t>(host - 1));
  std::string hub_side = std::string("v") + std::to_string(host);  // -Wrestrict: see unplug
  must({"ip", "link", "add", hub_side, "type", "veth", "peer", "name", "eth0", "netns", h.netns},
       hub_);
  must({"ip", "link", "set", hub_side, "master", "br0", "up"}, hub_);
  must({"ip", "addr", "add", h.addr.str() + "/24", "dev", "eth0"}, h.netns);
  must({"ip", "link", "set", "eth0", "up"}, h.netns);
  must({"ip", "route", "add", "default", "via", "10.250.0.254"}, h.netns);
  must({"ip", "-6", "addr", "add", h.addr6.str() + "/64", "dev", "eth0", "nodad"}, h.netns);
  must({"ip", "-6", "route", "add", "default", "via", "fd00:250::fe"}, h.netns);
}

Lab::Pod Lab::add_pod(const Host& host, const IP4Net& gateway,
                      const std::optional<IP6Net>& gateway6) {
  std::string out;
  if (run_command({"ip", "link", "show", "cni0"}, &out, host.netns) != 0) {
    // A fixed MAC, like br0 in the hub: the second pod's port must not change the gateway's.
    must({"ip", "link", "add", "cni0", "address", "02:fa:00:00:01:fe", "type", "bridge"},
         host.netns);
    must({"ip", "addr", "add", gateway.str(), "dev", "cni0"}, host.netns);
    if (gateway6) {
      must({"ip", "-6", "addr", "add", gateway6->ip.str() + "/" + std::to_string(gateway6->prefix),
            "dev", "cni0", "nodad"},
           host.netns);
      must({"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"}, host.netns);
    }
    must({"ip", "link", "set", "cni0", "up"}, host.netns);
    must({"sysctl", "-qw", "net.ipv4.ip_forward=1"}, host.netns);
  }
  int k = ++pods_;
  int on_host = 0;
  for (const auto& p : pod_hosts_) on_host += p == host.netns;
  pod_hosts_.push_back(host.netns);
  Pod pod{prefix_ + "-p" + std::to_string(k), IP4{gateway.ip.value + 1 + unsigned(on_host)},
          std::nullopt};
  must({"ip", "netns", "add", pod.netns});
  namespaces_.push_back(pod.netns);
  std::string host_side = std::string("p") + std::to_string(k);  // -Wrestrict: see add_host
  must({"ip", "link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns", pod.netns},
       host.netns);
  must({"ip", "link", "set", host_side, "master", "cni0", "up"}, host.netns);
  must({"ip", "link", "set", "lo", "up"}, pod.netns);
  must({"ip", "addr", "add", pod.addr.str() + "/" + std::to_string(gateway.prefix), "dev", "eth0"},
       pod.netns);
  must({"ip", "link", "set", "eth0", "up"}, pod.netns);
  must({"ip", "route", "add", "default", "via", gateway.ip.str()}, pod.netns);
  if (gateway6) {
    IP6 a = gateway6->ip;
    unsigned add = 1 + unsigned(on_host);
    for (int b = 15; b >= 0 && add; --b) {  // a + add, carrying
      unsigned v = a.bytes[b] + (add & 0xff);
      a.bytes[b] = static_cast<uint8_t>(v);
      add = (add >> 8) + (v >> 8);
    }
    pod.addr6 = a;
    must({"ip", "-6", "addr", "add", a.str() + "/" + std::to_string(gateway6->prefix), "dev",
          "eth0", "nodad"},
         pod.netns);
    must({"ip", "-6", "route", "add", "default", "via", gateway6->ip.str()}, pod.netns);
  }
  return pod;
}

EnterNetns::EnterNetns(const std::string& netns) {
  home_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home_ < 0) throw std::runtime_error("lab: cannot open our own netns");
  int fd = ::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
    if (fd >= 0) ::close(fd);
    ::close(home_);
    throw std::runtime_error("lab: cannot enter netns " + netns);
  }
  ::close(fd);
}

EnterNetns::~EnterNetns() {
  if (::setns(home_, CLONE_NEWNET) != 0) std::perror("lab: cannot return to our netns");
  ::close(home_);
}

void cleanup_stale_labs() {
  std::string out;
  if (run_command({"ip", "netns", "list"}, &out) != 0) return;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::string name = line.substr(0, line.find(' '));
    if (name.rfind("fl", 0) != 0) continue;
    size_t dash = name.find('-');
    if (dash == std::string::npos || dash < 3) continue;
    std::string digits = name.substr(2, dash - 2);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (::kill(pid, 0) == 0 || errno == EPERM) continue;  // still alive
    run_command({"ip", "netns", "del", name});
  }
}

}  // namespace flannel::testing
