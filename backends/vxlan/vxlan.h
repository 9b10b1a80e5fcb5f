// vxlan: flannel v0.11's kernel VXLAN backend (backend/vxlan). One VXLAN device per host,
// flannel.<VNI>, sourcing from IfaceAddr on the external interface with learning off; the control
// plane (this backend) programs, for every peer, what the kernel would otherwise have to learn:
//
//   ip neigh replace <peer subnet .0> lladdr <peer VtepMAC> dev flannel.1 nud permanent
//   bridge fdb replace <peer VtepMAC> dev flannel.1 dst <peer PublicIP> self permanent
//   ip nexthop replace id <ID> via <peer subnet .0> dev flannel.1 onlink
//   ip route replace <peer subnet> nhid <ID>     (`ip route` shows via .0 dev flannel.1 onlink)
//
// (in that order, pipelined with the other peers' requests, netlink/batch.h; when any step of a
// peer fails, its neighbour, FDB entry and nexthop are removed again). Nexthop ids and the
// fallback to v0.11's inline route (`ip route replace <peer subnet> via <peer subnet .0> dev
// flannel.1 onlink`: kernels without nexthop objects, or FLANNEL_NEXTHOP_OBJECTS=off) are
// described in peer_nexthops.h.
// With DirectRouting, a peer whose PublicIP is on-link (its `ip route get` has no gateway) gets
// `ip route replace <subnet> via <PublicIP>` instead, with no encapsulation.
//
// Config (Backend object, keys case-insensitive, last one wins, null keeps the default):
// VNI int (1), Port int (0 = kernel default 8472), GBP bool, DirectRouting bool.
// Lease attrs: {"PublicIP":..,"BackendType":"vxlan","BackendData":{"VtepMAC":"xx:..:xx"}}.
// MTU (subnet.env) = ext MTU - 50, and the device MTU is kept at that value (facts §7.14).
//
// Beyond v0.11:
//  * The VTEP MAC is set explicitly at creation, derived from VNI, IfaceAddr and PublicIP
//    (locally administered), so a re-created device (reboot, incompatible config) keeps its MAC
//    and udev's MACAddressPolicy has nothing to change (§7.13). A reused device keeps its MAC, so
//    an upgrade from v0.11 is hitless. After the device is up its MAC is checked again and put
//    back if something changed it.
//  * A peer's new VtepMAC or PublicIP removes the old FDB entry (§7.11).
//  * TX checksum offload (tx-checksum-ip-generic) per -vxlan-tx-checksum (core/tx_checksum.h,
//    vxlan_checksum.cc): off on kernels before 5.7 by default (flannel's troubleshooting guide
//    leaves that to `ethtool -K` and a udev rule), set on every device created, re-created or
//    reused, on both flannel.<VNI> and flannel-v6.<VNI>.
//  * The first batch after start is the full peer set: neighbour, FDB and route entries on the
//    device that belong to no current peer are removed (§7.11). Entries already correct are left
//    untouched, so a restart causes no change in the kernel.
//
// Dual stack (current flannel, facts §2.6; vxlan_v6.cc): with EnableIPv6 a second device
// flannel-v6.<VNI> (same VNI, Port, GBP, learning off; local = the ext IPv6 address, dev = the
// external interface; accept_ra 0; its own stable MAC; MTU ext - 70) carries the IPv6
// subnets. The lease gets PublicIPv6 and BackendV6Data {"VNI":n,"VtepMAC":".."}; the device
// gets <own v6 subnet address>/128; per peer with an IPv6Subnet:
//
//   ip -6 neigh replace <peer v6 subnet addr> lladdr <peer v6 VtepMAC> dev flannel-v6.1
//       nud permanent
//   bridge fdb replace <peer v6 VtepMAC> dev flannel-v6.1 dst <peer PublicIPv6> self permanent
//   ip -6 route replace <peer v6 subnet> via <peer v6 subnet addr> dev flannel-v6.1 onlink
//
// (inline gateways: no nexthop objects for IPv6), pipelined in the same batch as the IPv4
// requests and reconciled on sync() the same way. A peer whose BackendV6Data or PublicIPv6 is
// missing or bad keeps its IPv4 entries and gets no IPv6 ones (one note). EnableIPv4 false: no
// flannel.<VNI> and no BackendData; only the IPv6 half runs.
// MTU: current flannel asks for ext - 50 on both devices; the kernel caps a vxlan device over
// IPv6 at ext - 70 (it clamps at creation and refuses more later), so flannel-v6.<VNI> gets
// ext - 70, and with IPv6 on the MTU reported for subnet.env is ext - 70 too, so full-size pod
// packets of either family fit (current flannel reports ext - 50).
//
// Thread safety: as Backend (one caller at a time).
#pragma once

#include <map>
#include <memory>
#include <memory_resource>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "backends/netlink/netlink.h"
#include "core/tx_checksum.h"

namespace flannel {

struct VxlanConfig {
  int vni = 1;
  int port = 0;
  bool gbp = false;
  bool direct_routing = false;
};

// Decodes the vxlan keys of a Backend object (compact raw JSON, "" = all defaults) the way v0.11
// does. Throws BackendError "error decoding VXLAN backend config: ..." for a wrong type
// (e.g. "VNI":"1") or an out-of-range value (VNI outside 0..16777215, Port outside 0..65535).
VxlanConfig decode_vxlan_config(const std::string& backend_json);

// The VTEP MAC this host uses for `vni`: locally administered unicast, a hash of VNI, IfaceAddr
// and PublicIP (so two hosts behind NAT sharing an IfaceAddr still differ).
MacAddr stable_vtep_mac(int vni, IP4 iface_addr, IP4 public_ip);
// The same for flannel-v6.<VNI>, from its local and public IPv6 addresses.
MacAddr stable_vtep_mac6(int vni, const IP6& local, const IP6& public_ip);

// The peer's VtepMAC from its BackendData (key case-insensitive, any form Go's ParseMAC takes).
// Throws ParseError when absent or invalid.
MacAddr decode_vtep_mac(const std::string& backend_data);

class VxlanBackend : public Backend {
 public:
  static constexpr int kEncapOverhead = 50;   // outer IPv4 20 + UDP 8 + VXLAN 8 + Ethernet 14
  static constexpr int kEncapOverhead6 = 70;  // outer IPv6 40 + UDP 8 + VXLAN 8 + Ethernet 14

  // `tx_checksum`: -vxlan-tx-checksum, applied to every device this backend creates or reuses
  // (vxlan_checksum.cc; logged once).
  explicit VxlanBackend(TxChecksum tx_checksum = TxChecksum::kAuto);
  ~VxlanBackend() override;  // the device and its entries stay: restarts are hitless

  std::string type() const override { return "vxlan"; }
  // Decodes the config, creates or reuses flannel.<VNI>, and publishes its MAC. An incompatible
  // existing device is deleted before the new one is created: if the create fails, neither is
  // left. Throws BackendError.
  BackendSetup setup(const Config& config, const ExternalInterface& iface) override;
  // Address <subnet network>/32 (the only IPv4 on the device), link up, MAC re-checked; a
  // device deleted since setup() is created again. Throws BackendError (also when called before
  // setup()).
  void lease_acquired(const Lease& ours) override;
  bool wants_peers() const override { return true; }
  // A peer the kernel refuses is rolled back (its entries of this batch removed, its record put
  // back); a device that cannot be read is one failure of the batch (backend.h). Both throw
  // BackendError before setup().
  void sync(const std::vector<Lease>& peers) override;
  void apply(const std::vector<PeerEvent>& batch) override;
  std::optional<std::string> refuse_peer_data(const Lease& peer) const override;
  // flannel.<VNI> (or flannel-v6.<VNI>) no longer at the index it was created with.
  std::optional<std::string> device_gone() const override;

  const std::string& device() const { return name_; }
  const MacAddr& vtep_mac() const { return mac_; }
  // flannel-v6.<VNI> and its MAC ("" and zero when IPv6 is off).
  const std::string& device6() const { return name6_; }
  const MacAddr& vtep_mac6() const { return mac6_; }
  size_t skipped_peers() const { return skipped_; }
  // Why setup() deleted and re-created an existing device ("" if it was reused or new).
  const std::string& recreated_because() const { return recreated_because_; }
  // Stale neighbour/FDB/route/nexthop entries removed by startup reconciliation.
  size_t reconciled_entries() const { return reconciled_; }
  // True when overlay routes point at nexthop objects (false: inline gateways, the fallback).
  bool uses_nexthops() const { return use_nexthops_; }
  // Kernel write requests sent so far (a restart onto a correct kernel sends none).
  size_t kernel_writes() const { return nl_ ? nl_->batched_requests() : 0; }

 private:
  struct Peer {
    MacAddr mac;
    IP4 public_ip;
    bool direct = false;
    uint32_t nhid = 0;  // the nexthop object of the overlay route; 0 = inline gateway
  };
  struct Peer6 {
    MacAddr mac;
    IP6 public_ip;
    bool direct = false;
  };
  struct KernelView;    // one dump of the device's neighbours, FDB and routes
  struct KernelView6 {  // the same for flannel-v6.<VNI>
    bool loaded = false;
    std::map<IP6, MacAddr> neighs;          // permanent entries only
    std::set<std::pair<MacAddr, IP6>> fdb;  // permanent entries only
    std::map<IP6Net, Route6> routes;        // oif == flannel-v6.<VNI>
  };
  // What queue_add()/queue_add6() changed in peers_/peers6_, to put back if the kernel refuses
  // the peer.
  struct Undo {
    IP4Net subnet;
    std::optional<Peer> old;
    std::optional<Peer> added;
    IP6Net subnet6;
    std::optional<Peer6> old6;
    std::optional<Peer6> added6;
  };

  void ensure_device();
  // -vxlan-tx-checksum (vxlan_checksum.cc): decide from the flag and uname() once, in setup();
  // apply to a device after ensure_device()/ensure_device6(). Throws BackendError when a forced
  // value cannot be set (auto: a note).
  void decide_tx_checksum();
  void apply_tx_checksum(int index, const std::string& name);
  bool on_link(IP4 addr);
  // Queue the requests of one peer event (tag = its index in the batch); peers_ is updated at
  // once and put back by apply_batch() from `undo` when the kernel refuses a request.
  void queue_add(const Lease& peer, KernelView* kv, class NetlinkBatch* nb, size_t tag, Undo* undo);
  void queue_remove(const Lease& peer, class NetlinkBatch* nb, size_t tag);
  // Queue the removal of entries no peer wants; each gets tag first_tag + its index in *stale.
  void queue_reconcile(KernelView* kv, class NetlinkBatch* nb, size_t first_tag,
                       std::vector<std::string>* stale);
  void choose_route_form(bool nexthop_dump_ok, const std::string& why);
  // The IPv6 half (vxlan_v6.cc), same roles as the IPv4 functions above.
  void setup6();
  void ensure_device6();
  void lease_acquired6(const Lease& ours);
  bool on_link6(const IP6& addr);
  void load_kernel6(KernelView6* kv);
  void queue_add6(const Lease& peer, KernelView6* kv, class NetlinkBatch* nb, size_t tag,
                  Undo* undo);
  void queue_remove6(const Lease& peer, class NetlinkBatch* nb, size_t tag);
  void queue_reconcile6(KernelView6* kv, class NetlinkBatch* nb, size_t first_tag,
                        std::vector<std::string>* stale);
  void undo6(const Undo& u, class NetlinkBatch* cleanup, size_t tag);
  bool v4() const { return config_.enable_ipv4; }
  bool v6() const { return config_.enable_ipv6; }
  // One pass over `batch`; `full` (sync) reads the device once and removes what peers_ lacks.
  void apply_batch(const std::vector<PeerEvent>& batch, bool full);
  // The steps of apply_batch(). read_kernel: the route form (once) and, for a sync, what both
  // devices hold (load_kernel: flannel.<VNI>), read failures noted in *errors; queue_peer: the v4
  // and v6 requests of one event, tagged `tag`; undo_peer: puts peers_/peers6_ back for a peer
  // the kernel refused and queues the removal of what was added for it.
  void read_kernel(bool full, KernelView* kv, KernelView6* kv6, class BatchErrors* errors);
  void load_kernel(KernelView* kv);
  void queue_peer(const PeerEvent& ev, size_t tag, KernelView* kv, KernelView6* kv6, Undo* undo,
                  class BatchRunner* run);
  void undo_peer(const Undo& u, class NetlinkBatch* cleanup, size_t tag);
  Route4 overlay_route(const IP4Net& subnet) const;

  std::unique_ptr<NetlinkSession> nl_;
  Config config_;
  ExternalInterface iface_;
  VxlanConfig vx_;
  std::string name_;
  int index_ = 0;
  int mtu_ = 0;   // flannel.<VNI>: ext MTU - 50
  int mtu6_ = 0;  // flannel-v6.<VNI>: ext MTU - 70 (the kernel refuses more)
  MacAddr mac_;
  std::optional<IP4Net> own_;
  // The per-peer records live in blocks of their own: a sync allocates them one per peer amid
  // that peer's transient allocations (netlink messages, strings), and on the general heap they
  // keep freed space around them resident (10,000 peers: 0.4 MB more private memory).
  // insert_or_assign, not operator[]: clang 14 cannot default-construct the nested Peer there.
  std::pmr::unsynchronized_pool_resource peer_pool_;
  std::pmr::map<IP4Net, Peer> peers_{&peer_pool_};
  std::string name6_;
  int index6_ = 0;
  MacAddr mac6_;
  std::optional<IP6Net> own6_;
  std::pmr::map<IP6Net, Peer6> peers6_{&peer_pool_};
  bool form_chosen_ = false;
  bool use_nexthops_ = false;
  size_t skipped_ = 0;
  size_t reconciled_ = 0;
  std::string recreated_because_;
  TxChecksum tx_checksum_ = TxChecksum::kAuto;
  std::optional<bool> tx_checksum_on_;  // the value to set; nullopt = leave the kernel's
  std::string tx_checksum_why_;         // for the log line
  bool tx_checksum_logged_ = false;
};

}  // namespace flannel
