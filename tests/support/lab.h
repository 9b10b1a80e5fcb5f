// Lab: a multi-host network built from network namespaces, for tests and the demo.
//
//   hub namespace  <prefix>-hub : bridge br0 10.250.0.254/24
//   host i         <prefix>-hI  : eth0 10.250.0.I/24 (veth to the hub bridge), default route
//                                 via 10.250.0.254, lo up; IPv6 underlay too: eth0
//                                 fd00:250::I/64 (ULA, hex I, nodad), default route via
//                                 fd00:250::fe (the hub's br0)
//
// Every address and route lives inside namespaces the lab creates; nothing touches the root
// namespace. Names start with "fl<pid>-<tag>" so parallel test processes never collide, and
// cleanup_stale_labs() removes namespaces left by a process that no longer exists. The
// destructor deletes every namespace it made, also when the test failed.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/ip.h"

namespace flannel::testing {

class Lab {
 public:
  struct Host {
    std::string netns;  // namespace name, for Process::Spec::netns and `ip netns exec`
    IP4 addr;           // eth0 address, 10.250.0.I
    IP6 addr6;          // eth0 IPv6 address, fd00:250::I
  };

  // Throws std::runtime_error with the failing command's output if setup fails.
  explicit Lab(const std::string& tag);
  ~Lab();
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  const Host& add_host();  // hosts are numbered from 1

  // The host's underlay cable: unplug() deletes its eth0 (the veth pair to the hub, both ends,
  // with the addresses and routes on it); plug() makes it again as add_host() did (a new link
  // index). Host numbers are 1-based, as in the names.
  void unplug(int host);
  void plug(int host);
  // A second cable, straight between two hosts: eth1 (a veth pair) in each, with 10.251.0.A/24
  // and 10.251.0.B/24. It lives in their namespaces and goes with them.
  void cable(int a, int b);

  // A pod on `host`: the host gets bridge cni0 carrying `gateway` (FLANNEL_SUBNET, e.g.
  // 10.5.34.1/24) and IP forwarding on; a new namespace gets eth0 on that bridge with the next
  // address (10.5.34.2, .3, ...) and a default route via the gateway. Returns the pod.
  // With `gateway6` (FLANNEL_IPV6_SUBNET, e.g. fc00:0:0:1::1/64) cni0 also carries that,
  // IPv6 forwarding is on and the pod gets the next IPv6 address and a v6 default route.
  struct Pod {
    std::string netns;
    IP4 addr;
    std::optional<IP6> addr6;
  };
  Pod add_pod(const Host& host, const IP4Net& gateway,
              const std::optional<IP6Net>& gateway6 = std::nullopt);
  const std::vector<Host>& hosts() const { return hosts_; }
  const std::string& hub() const { return hub_; }
  const std::string& prefix() const { return prefix_; }

 private:
  void must(const std::vector<std::string>& argv, const std::string& netns = "");

  std::string prefix_;
  std::string hub_;
  std::vector<Host> hosts_;
  int pods_ = 0;
  std::vector<std::string> pod_hosts_;  // host netns of each pod, in creation order
  std::vector<std::string> namespaces_;
};

// Moves the calling thread into the named namespace until destroyed (so netlink sockets and
// /proc/sys/net opened meanwhile belong to it); throws std::runtime_error if it cannot.
class EnterNetns {
 public:
  explicit EnterNetns(const std::string& netns);
  ~EnterNetns();
  EnterNetns(const EnterNetns&) = delete;
  EnterNetns& operator=(const EnterNetns&) = delete;

 private:
  int home_ = -1;
};

// Deletes namespaces named fl<PID>-* whose PID is not a live process.
void cleanup_stale_labs();

}  // namespace flannel::testing
