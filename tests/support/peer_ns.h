// PeerNs: one network namespace for driving a backend directly (no flanneld) with thousands of
// synthetic peers, for the scale lab tests and bench/peer_sync_bench.
//
//   namespace fl<pid>-<tag><n>: lo up, "eth0" 172.31.0.1/16 up (peer PublicIPs 172.31.x.y are
//   on-link; eth0 is one end of a veth pair whose other end, eth0p, stays in the namespace),
//   nothing else.
//
// The name follows Lab's rule (fl<PID>-*), so cleanup_stale_labs() removes it if the process
// dies; the destructor deletes it on every other path. Nothing touches the root namespace: an
// Enter guard moves the calling thread into the namespace (setns) and back on destruction, so
// netlink sockets opened inside it (a backend's session) program the namespace only.
#pragma once

#include <string>
#include <vector>

#include "core/ip.h"
#include "core/lease.h"

namespace flannel::testing {

class PeerNs {
 public:
  static constexpr const char* kEthAddr = "172.31.0.1";

  explicit PeerNs(const std::string& tag);  // throws std::runtime_error with the command output
  ~PeerNs();
  PeerNs(const PeerNs&) = delete;
  PeerNs& operator=(const PeerNs&) = delete;

  const std::string& name() const { return name_; }

  // Runs `ip -n <ns> ARGS...` (or `bridge -n`, `ip` replaced by argv[0]); returns its output,
  // throws on failure.
  std::string run(std::vector<std::string> argv) const;

  // Moves the calling thread into the namespace until destroyed.
  class Enter {
   public:
    explicit Enter(const PeerNs& ns) : Enter(ns.name()) {}
    // Any namespace under /var/run/netns (a Lab host or hub, for example).
    explicit Enter(const std::string& netns);
    ~Enter();
    Enter(const Enter&) = delete;
    Enter& operator=(const Enter&) = delete;

   private:
    int home_ = -1;
  };

 private:
  std::string name_;
};

// `n` synthetic peers of Network 10.0.0.0/8 with SubnetLen 24: peer i holds 10.(1+i/256).(i%256)
// .0/24 (i < 60000), PublicIP 172.31.(1+i/250).(2+i%250). backend_type "vxlan" peers carry a
// VtepMAC in BackendData.
std::vector<Lease> synthetic_peers(size_t n, const std::string& backend_type);
// The lease of "this host" for those peers: 10.255.255.0/24, PublicIP 172.31.0.1.
Lease synthetic_own_lease(const std::string& backend_type);
// The network config JSON for those peers.
std::string synthetic_config_json(const std::string& backend_type);

}  // namespace flannel::testing
