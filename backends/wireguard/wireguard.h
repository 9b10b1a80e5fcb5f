// wireguard: current flannel's WireGuard backend (facts §3), IPv4 only for now.
//
// One device, flannel-wg, listening on ListenPort, with <our subnet network address>/32, MTU =
// (MTU or the external interface MTU) - 80, and one route <Network> dev flannel-wg; WireGuard's
// allowed IPs (one peer per lease: endpoint PublicIP:Port, allowed IP = the peer's subnet,
// keepalive, PSK) choose the peer. Lease: BackendType "wireguard", BackendData
// {"PublicKey":"<base64>","Port":<ListenPort>}. The private key lives in /run/flannel/wgkey
// (WIREGUARD_KEY_FILE), created once and reused, so a restart keeps the public key.
//
// Implementation (backend config field, see config.h; choose_wg_implementation()):
// "kernel" creates the device with `ip link add flannel-wg type wireguard` (rtnetlink) and
// configures it over generic netlink (GenlDeviceClient); check() recreates and reconfigures it if
// someone deletes it. "userspace" runs Debian's wireguard-go for the device (WireguardGo,
// supervised from check(): a dead child is logged with its exit status, restarted, and the whole
// configuration re-applied) and configures it over its UAPI socket (UapiDeviceClient). Both
// clients implement WgDevice (device.h), so the peer logic below is one. "auto" probes
// the kernel (creating and deleting a wireguard link) and picks kernel if it can, else userspace;
// "kernel" on a host without the module is a clear error. The device is deleted on exit in both
// modes (wireguard-go takes its TUN device along; the kernel link is deleted), as flannel does.
//
// IPv6 (dual stack) is not built yet: Mode "ipv6" is refused; the places where flannel-wg-v6
// (ListenPortV6, <v6 subnet>/128, route IPv6Network) and the v6 allowed IPs / endpoint go are
// marked "IPv6:" in wireguard.cc.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/wireguard/config.h"
#include "backends/wireguard/device.h"
#include "backends/wireguard/key.h"
#include "backends/wireguard/wireguard_go.h"
#include "core/thread_annotations.h"

namespace flannel {

// Per-peer figures from the device, for /metrics.
struct WgPeerStats {
  std::string public_key;  // base64
  IP4Net subnet;           // the lease it came from (0.0.0.0/0 if the device has an unknown peer)
  std::optional<double> handshake_age_seconds;  // nullopt = no handshake yet
  uint64_t rx_bytes = 0;
  uint64_t tx_bytes = 0;
};
// Prometheus text for the stats: flannel_wireguard_peer_{last_handshake_age_seconds,rx_bytes,
// tx_bytes}{peer="<subnet>",public_key="..."} and flannel_wireguard_device_restarts_total.
std::string render_wireguard_metrics(const std::vector<WgPeerStats>& stats, int restarts);
// The per-peer figures of a device answer (from either implementation): handshake age against
// now_unix (seconds since the epoch), bytes, and the lease subnet subnet_of() knows for the key.
std::vector<WgPeerStats> wg_peer_stats(
    const UapiDevice& dev, const std::function<std::optional<IP4Net>(const WgKey&)>& subnet_of,
    double now_unix);

class WireguardBackend : public Backend {
 public:
  static constexpr const char* kDevice = "flannel-wg";
  // IPv6: static constexpr const char* kDeviceV6 = "flannel-wg-v6"; (Separate mode)
  static constexpr int kOverhead = 80;  // 40 (IPv6 header, the larger case) + 8 UDP + 32 WireGuard

  WireguardBackend() = default;
  ~WireguardBackend()
      override;  // stops wireguard-go / deletes the kernel link, as flannel deletes it

  std::string type() const override { return "wireguard"; }
  // Deletes an existing flannel-wg, then creates and keys the device (backend.h: not atomic).
  BackendSetup setup(const Config& config, const ExternalInterface& iface) override;
  void lease_acquired(const Lease& ours) override;
  bool wants_peers() const override { return true; }
  // Peers of another BackendType or with bad BackendData are skipped with a note. The changes go
  // to the device as one set request; its failure throws BackendError for the whole batch, while
  // the backend's record of wanted peers already holds the new set (the next sync(), or a
  // device restart in check(), reconciles the device to it; check() does not otherwise compare).
  // sync() and apply() require setup() first (no check: a null device client).
  void sync(const std::vector<Lease>& peers) override;
  void apply(const std::vector<PeerEvent>& batch) override;
  std::chrono::seconds check_interval() const override { return std::chrono::seconds(1); }
  // Recreates a deleted kernel device or restarts a dead wireguard-go, then re-applies the whole
  // configuration.
  void check() override;

  // For /metrics; may be called from another thread (the HTTP thread) while the agent works, but
  // only once setup() has returned: the device client and the wireguard-go handle are set there
  // without a lock. Empty before setup(). Throws BackendError when the device cannot be read. The
  // daemon hook (not wired in yet) is one line in its /metrics handler:
  //   if (auto* wg = dynamic_cast<const WireguardBackend*>(backend)) body += wg->metrics_text();
  std::vector<WgPeerStats> peer_stats() const EXCLUDES(mu_);
  int device_restarts() const { return wg_ ? wg_->restarts() : kernel_recreations_.load(); }
  std::string metrics_text() const {
    return render_wireguard_metrics(peer_stats(), device_restarts());
  }

  const WgConfig& wg_config() const { return cfg_; }
  const WgKey& public_key() const { return public_key_; }
  WgImplementation implementation() const { return impl_; }

 private:
  struct Peer {
    IP4Net subnet;
    std::string endpoint;  // "PublicIP:port"
  };
  // The peer config a lease asks for; nullopt (with *why) for a lease we must skip.
  std::optional<std::pair<WgKey, Peer>> peer_of(const Lease& l, std::string* why) const;
  UapiPeerSet peer_set(const WgKey& key, const Peer& p) const;
  WgImplementation choose_implementation();
  void start_device();    // the device (kernel link or wireguard-go) + private key, listen port,
                          // replace_peers
  void configure_link();  // MTU, address, up, route (after lease_acquired)
  void reconcile() EXCLUDES(mu_);  // the device's peers := want_, touching only what differs

  Config config_;
  ExternalInterface iface_;
  WgConfig cfg_;
  WgKey private_key_;
  WgKey public_key_;
  std::optional<WgKey> psk_;
  int mtu_ = 0;
  WgImplementation impl_ = WgImplementation::kUserspace;
  std::unique_ptr<WireguardGo> wg_;  // userspace only
  std::unique_ptr<WgDevice>
      dev_;  // set by the first start_device(), then fixed (peer_stats reads it)
  std::atomic<int> kernel_recreations_ = 0;
  std::optional<Lease> ours_;
  bool fresh_device_ = false;  // peers get a handshake at the next reconcile (see reconcile())

  mutable Mutex mu_;                            // peer_stats reads want_ from the HTTP thread
  std::map<WgKey, Peer> want_ GUARDED_BY(mu_);  // the peers the device should have
  std::map<IP4Net, WgKey> by_subnet_ GUARDED_BY(mu_);
};

}  // namespace flannel
