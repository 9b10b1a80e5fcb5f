// udp: flannel v0.11's userspace overlay (backend/udp). Each host has a TUN device (flannel0,
// IFF_TUN|IFF_NO_PI) carrying <our subnet network address>/32 with MTU = ext MTU - 28 and the
// route <whole Network> dev flannel0; a userspace proxy (UdpProxy) sends every packet the kernel
// routes into the TUN to the owning peer as the raw IPv4 packet in a UDP datagram to
// <peer PublicIP>:Port, and writes what peers send to IfaceAddr:Port back into the TUN.
//
// Config: {"Type":"udp","Port":8285} (Port optional, keys case-insensitive). Lease attrs:
// PublicIP only, exactly {"PublicIP":"x"}. Peers: every lease, whatever its BackendType (v0.11
// does not filter). Every node must use the same Port: a peer is reached at the local Port.
//
// Beyond v0.11: the TUN is opened with IFF_VNET_HDR and TSO/checksum offload (see UdpProxy; the
// wire format does not change), and accept_local is set on it so the proxy's ICMP errors, which
// come from our own TUN address as in v0.11, are not dropped by the kernel as martians.
//
// The TUN is not persistent: it disappears (with its address and route) when the backend is
// destroyed or the process exits, as in v0.11.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/udp/udp_proxy.h"

namespace flannel {

class UdpBackend : public Backend {
 public:
  static constexpr int kDefaultPort = 8285;
  static constexpr int kEncapOverhead = 28;  // outer IPv4 (20) + UDP (8) headers

  UdpBackend() = default;
  ~UdpBackend() override;  // stops the proxy; the TUN goes away with its fd

  std::string type() const override { return "udp"; }
  // Decodes Port and reports {"PublicIP": ext_addr} with MTU = ext MTU - 28. Throws
  // BackendError "error decoding UDP backend config: ..." for a bad Port.
  BackendSetup setup(const Config& config, const ExternalInterface& iface) override;
  // First call: creates the TUN (flannel%d), sets MTU, address <subnet network>/32, up, route
  // <Network> dev TUN, binds the UDP socket to IfaceAddr:Port and starts the proxy; on failure
  // the TUN is closed, which removes it with its address and route, and a later call starts over.
  // Later calls (a re-acquired lease with another subnet) move the /32 and the ICMP source
  // address. Their netlink failures, and a netlink socket that cannot be opened on any call,
  // escape as NetlinkError rather than BackendError (backend.h).
  void lease_acquired(const Lease& ours) override;
  bool wants_peers() const override { return true; }
  // Added -> route the subnet to (PublicIP, Port); Removed -> forget the subnet. One table
  // snapshot per batch. sync() also forgets every known subnet not in the set. Before
  // lease_acquired() the changes are kept and applied when the proxy starts. Never throw for a
  // peer.
  void sync(const std::vector<Lease>& peers) override;
  void apply(const std::vector<PeerEvent>& batch) override;

  // The decoded Port (valid after setup()).
  int port() const { return port_; }
  // The TUN device name ("" before lease_acquired()).
  const std::string& device() const { return tun_name_; }
  // The data path, for metrics and tests (nullptr before lease_acquired()). Owned by the
  // backend; its stats() and lookup() may be called from another thread.
  const UdpProxy* proxy() const { return proxy_.get(); }

 private:
  Config config_;
  ExternalInterface iface_;
  int port_ = kDefaultPort;
  int mtu_ = 0;
  std::string tun_name_;
  int tun_index_ = 0;
  std::unique_ptr<UdpProxy> proxy_;
  std::vector<UdpProxy::RouteChange> pending_;  // peer changes seen before the proxy exists
  std::set<IP4Net> known_;                      // subnets currently routed (or pending)
};

// Decodes the Port of a udp Backend object (compact raw JSON, "" = absent) the way v0.11 does
// (case-insensitive key, last one wins, null keeps the default) and checks it is 1..65535.
// Throws BackendError "error decoding UDP backend config: ...".
int decode_udp_port(const std::string& backend_json);

}  // namespace flannel
