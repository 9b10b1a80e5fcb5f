#include "backends/wireguard/wireguard.h"

#include <netlink/errno.h>

#include <set>

#include "backends/netlink/netlink.h"
#include "backends/wireguard/genl.h"

namespace flannel {
namespace {

// Tries `ip link add flannel-wg type wireguard`: true (and the link is deleted again) when the
// kernel has WireGuard, false when it does not know the kind (no module).
bool kernel_wireguard_available(NetlinkSession& nl, const std::string& name) {
  int index = 0;
  try {
    index = nl.link_add(name, "wireguard");
  } catch (const NetlinkError& e) {
    if (e.code() == NLE_OPNOTSUPP || e.code() == NLE_NOADDR || e.code() == NLE_INVAL) return false;
    throw BackendError("wireguard: probing for kernel WireGuard (ip link add " + name +
                       " type wireguard) failed: " + e.what());
  }
  nl.link_delete(index);
  return true;
}

}  // namespace

std::string render_wireguard_metrics(const std::vector<WgPeerStats>& stats, int restarts) {
  std::string out;
  out +=
      "# HELP flannel_wireguard_peer_last_handshake_age_seconds Seconds since the last handshake "
      "with the peer (absent: none yet).\n";
  out += "# TYPE flannel_wireguard_peer_last_handshake_age_seconds gauge\n";
  auto labels = [](const WgPeerStats& s) {
    return "{peer=\"" + s.subnet.str() + "\",public_key=\"" + s.public_key + "\"}";
  };
  for (const auto& s : stats) {
    if (s.handshake_age_seconds) {
      char v[32];
      std::snprintf(v, sizeof(v), "%.3f", *s.handshake_age_seconds);
      out += "flannel_wireguard_peer_last_handshake_age_seconds" + labels(s) + " " + v + "\n";
    }
  }
  out += "# HELP flannel_wireguard_peer_rx_bytes Bytes received from the peer by the device.\n";
  out += "# TYPE flannel_wireguard_peer_rx_bytes counter\n";
  for (const auto& s : stats)
    out += "flannel_wireguard_peer_rx_bytes" + labels(s) + " " + std::to_string(s.rx_bytes) + "\n";
  out += "# HELP flannel_wireguard_peer_tx_bytes Bytes sent to the peer by the device.\n";
  out += "# TYPE flannel_wireguard_peer_tx_bytes counter\n";
  for (const auto& s : stats)
    out += "flannel_wireguard_peer_tx_bytes" + labels(s) + " " + std::to_string(s.tx_bytes) + "\n";
  out +=
      "# HELP flannel_wireguard_device_restarts_total Device restarts: wireguard-go died, or the "
      "kernel device was deleted.\n";
  out += "# TYPE flannel_wireguard_device_restarts_total counter\n";
  out += "flannel_wireguard_device_restarts_total " + std::to_string(restarts) + "\n";
  return out;
}

WireguardBackend::~WireguardBackend() {
  if (wg_) wg_->stop();
  if (impl_ == WgImplementation::kKernel && dev_) {  // as flannel: the device goes with the agent
    try {
      NetlinkSession nl;
      if (auto l = nl.link_by_name(kDevice)) {
        nl.link_delete(l->index);
        note(std::string("Removed wireguard device ") + kDevice);
      }
    } catch (const std::exception& e) {
      note(std::string("wireguard: failed to remove device ") + kDevice + ": " + e.what());
    }
  }
}

WgImplementation WireguardBackend::choose_implementation() {
  std::string why;
  auto impl = choose_wg_implementation(
      cfg_.implementation,
      [] {
        NetlinkSession nl;
        return kernel_wireguard_available(nl, kDevice);
      },
      &why);
  note(why);
  return impl;
}

BackendSetup WireguardBackend::setup(const Config& config, const ExternalInterface& iface) {
  cfg_ = decode_wireguard_config(config.backend_json);
  if (config.enable_ipv6) {
    throw BackendError(
        "the wireguard backend of this agent carries IPv4 only; set EnableIPv6 to "
        "false or use vxlan or host-gw");
  }
  if (cfg_.mode == "ipv6") {
    throw BackendError(
        "wireguard Mode \"ipv6\" needs IPv6, which this agent does not support yet "
        "(dual stack is not built); use separate, auto or ipv4");
  }
  // IPv6: with EnableIPv6, Separate mode adds flannel-wg-v6 on ListenPortV6 and BackendV6Data.
  int base = cfg_.mtu > 0 ? cfg_.mtu : iface.mtu;
  mtu_ = base - kOverhead;
  if (mtu_ < 68) {
    throw BackendError("wireguard backend: an MTU of " + std::to_string(base) + " leaves " +
                       std::to_string(mtu_) +
                       " bytes after the 80-byte WireGuard overhead; IPv4 needs at least 68");
  }
  if (!cfg_.psk.empty()) psk_ = WgKey::from_base64(cfg_.psk);
  const std::string key_file = wg_key_file_path();
  bool created = false;
  private_key_ = load_or_create_private_key(key_file, &created);
  public_key_ = private_key_.public_key();
  note(std::string("wireguard: ") +
       (created ? "generated a new private key in " : "using the private key in ") + key_file +
       " (public key " + public_key_.base64() + ")");
  config_ = config;
  iface_ = iface;

  {  // flannel: an existing device is deleted and re-created
    NetlinkSession nl;
    if (auto l = nl.link_by_name(kDevice)) {
      note(std::string("wireguard: \"") + kDevice + "\" already exists; recreating device");
      nl.link_delete(l->index);
    }
  }
  impl_ = choose_implementation();
  start_device();
  // A reused key means peers may still hold sessions with our previous device: handshake with
  // them at once. A new key: nobody knows us yet, and a handshake now would only be dropped and
  // then hold our first packets until its 5 s retry.
  fresh_device_ = !created;

  BackendSetup out;
  out.attrs.public_ip = iface.ext_addr;
  out.attrs.backend_type = "wireguard";
  out.attrs.backend_data = encode_wg_backend_data({public_key_.base64(), cfg_.listen_port});
  // IPv6: out.attrs BackendV6Data = {"PublicKey":...,"Port":ListenPortV6} when EnableIPv6.
  out.mtu = mtu_;
  return out;
}

void WireguardBackend::start_device() {
  if (impl_ == WgImplementation::kKernel) {
    try {  // `ip link add flannel-wg type wireguard mtu <mtu>`
      NetlinkSession nl;
      if (!nl.link_by_name(kDevice)) nl.link_add(kDevice, "wireguard", mtu_);
    } catch (const NetlinkError& e) {
      throw BackendError(std::string("wireguard: failed to create device ") + kDevice + ": " +
                         e.what());
    }
    if (!dev_) dev_ = std::make_unique<GenlDeviceClient>(kDevice);
  } else {
    if (!wg_) wg_ = std::make_unique<WireguardGo>(kDevice);
    wg_->start();
    if (!dev_) dev_ = std::make_unique<UapiDeviceClient>(kDevice);
  }
  UapiSet set;
  set.private_key = private_key_;
  set.listen_port = cfg_.listen_port;
  set.replace_peers = true;  // as flannel's initial config: peers left on the device go
  try {
    dev_->set(set);
    NetlinkSession nl;
    auto link = nl.link_by_name(kDevice);
    if (!link)
      throw BackendError(std::string("wireguard: no ") + kDevice + " device after starting it");
    nl.link_set_mtu(link->index, mtu_);
  } catch (const UapiError& e) {
    throw BackendError(std::string("wireguard: failed to configure device ") + kDevice + ": " +
                       e.what());
  } catch (const NetlinkError& e) {
    throw BackendError(std::string("wireguard: failed to configure device ") + kDevice + ": " +
                       e.what());
  }
}

void WireguardBackend::configure_link() {
  if (!ours_) return;
  try {
    NetlinkSession nl;
    auto link = nl.link_by_name(kDevice);
    if (!link) throw BackendError(std::string("wireguard: device ") + kDevice + " is gone");
    if (link->mtu != mtu_) nl.link_set_mtu(link->index, mtu_);
    nl.ensure_v4_address(link->index, IP4Net{ours_->subnet.network().ip, 32});
    nl.link_set_up(link->index);
    Route4 route;
    route.dst = config_.network;
    route.oif = link->index;
    nl.route_replace(route);  // `ip route replace <Network> dev flannel-wg`
    // IPv6: <v6 subnet>/128 and `route replace <IPv6Network> dev flannel-wg(-v6)`.
  } catch (const NetlinkError& e) {
    throw BackendError("failed to configure wg interface: " + std::string(e.what()));
  }
}

void WireguardBackend::lease_acquired(const Lease& ours) {
  ours_ = ours;
  configure_link();
}

std::optional<std::pair<WgKey, WireguardBackend::Peer>> WireguardBackend::peer_of(
    const Lease& l, std::string* why) const {
  if (l.attrs.backend_type != "wireguard") {
    *why = "Ignoring non-wireguard subnet " + l.subnet.str() + ": type=" + l.attrs.backend_type;
    return std::nullopt;
  }
  auto data = decode_wg_backend_data(l.attrs.backend_data, why);
  if (!data) {
    *why = "wireguard: skipping peer " + l.subnet.str() + ": " + *why;
    return std::nullopt;
  }
  int port = data->port ? data->port : cfg_.listen_port;  // older flannel sent no Port
  // IPv6: the v6 endpoint "[PublicIPv6]:port" and allowed IP <v6 subnet> (per Mode, facts §3.5).
  return std::make_pair(*WgKey::from_base64(data->public_key),
                        Peer{l.subnet, l.attrs.public_ip.str() + ":" + std::to_string(port)});
}

UapiPeerSet WireguardBackend::peer_set(const WgKey& key, const Peer& p) const {
  UapiPeerSet s;
  s.public_key = key;
  s.endpoint = p.endpoint;
  s.keepalive = cfg_.keepalive_seconds;  // always sent: 0 explicitly disables it, as flannel
  s.preshared_key = psk_;
  s.replace_allowed_ips = true;
  s.allowed_ips = {p.subnet};
  return s;
}

void WireguardBackend::sync(const std::vector<Lease>& peers) {
  {
    MutexLock lock(&mu_);
    want_.clear();
    by_subnet_.clear();
    for (const auto& l : peers) {
      std::string why;
      auto p = peer_of(l, &why);
      if (!p) {
        note(why);
        continue;
      }
      want_[p->first] = p->second;
      by_subnet_[l.subnet] = p->first;
    }
  }
  reconcile();
}

void WireguardBackend::reconcile() {
  UapiDevice dev;
  try {
    dev = dev_->get();
  } catch (const UapiError& e) {
    throw BackendError(std::string("wireguard: failed to read device ") + kDevice + ": " +
                       e.what());
  }
  UapiSet set;
  size_t added = 0, removed = 0;
  {
    MutexLock lock(&mu_);
    std::map<WgKey, const UapiPeerStatus*> have;
    for (const auto& p : dev.peers) have[p.public_key] = &p;
    for (const auto& [key, peer] : want_) {
      auto it = have.find(key);
      if (it != have.end()) {
        const UapiPeerStatus& h = *it->second;
        bool right = h.endpoint == peer.endpoint &&
                     h.allowed_ips == std::vector<IP4Net>{peer.subnet} &&
                     h.allowed_ips_v6.empty() && h.keepalive == cfg_.keepalive_seconds &&
                     h.has_preshared_key == psk_.has_value() && (!psk_ || h.preshared_key == *psk_);
        if (right) continue;
      }
      set.peers.push_back(peer_set(key, peer));
      if (!psk_ && it != have.end() && it->second->has_preshared_key)
        set.peers.back().preshared_key = WgKey{};
      ++added;
    }
    for (const auto& p : dev.peers) {
      if (want_.count(p.public_key)) continue;
      UapiPeerSet r;
      r.public_key = p.public_key;
      r.remove = true;
      set.peers.push_back(r);
      ++removed;
    }
  }
  if (set.peers.empty()) return;  // everything is right: the device is not touched
  // A new device (wireguard-go restarted, or the agent restarted with its old key) has no
  // sessions, while the peers still hold sessions with its previous incarnation and would only
  // notice after ~15 s of failed sends.
  // Turning persistent keepalive on makes the device send a keepalive, i.e. a handshake, to each
  // peer right away; with keepalive configured off it is switched off again straight after.
  const bool kick = fresh_device_;
  fresh_device_ = false;
  UapiSet restore;
  if (kick && cfg_.keepalive_seconds == 0) {
    for (auto& p : set.peers) {
      if (p.remove) continue;
      p.keepalive = 1;
      UapiPeerSet off;
      off.public_key = p.public_key;
      off.keepalive = 0;
      restore.peers.push_back(off);
    }
  }
  try {
    dev_->set(set);
    if (!restore.peers.empty()) dev_->set(restore);
  } catch (const UapiError& e) {
    throw BackendError(std::string("wireguard: failed to configure device ") + kDevice + ": " +
                       e.what());
  }
  if (removed)
    note("wireguard: removed " + std::to_string(removed) + " stale peers from " + kDevice);
  (void)added;
}

void WireguardBackend::apply(const std::vector<PeerEvent>& batch) {
  UapiSet set;
  {
    MutexLock lock(&mu_);
    for (const auto& ev : batch) {
      const Lease& l = ev.lease;
      auto old = by_subnet_.find(l.subnet);
      if (ev.type == PeerEvent::Type::kRemoved) {
        if (old == by_subnet_.end()) continue;  // never configured (skipped or unknown)
        UapiPeerSet r;
        r.public_key = old->second;
        r.remove = true;
        set.peers.push_back(r);
        want_.erase(old->second);
        by_subnet_.erase(old);
        continue;
      }
      std::string why;
      auto p = peer_of(l, &why);
      if (!p) {
        note(why);
        continue;
      }
      if (old != by_subnet_.end() && old->second != p->first) {  // the host got a new key
        UapiPeerSet r;
        r.public_key = old->second;
        r.remove = true;
        set.peers.push_back(r);
        want_.erase(old->second);
      }
      want_[p->first] = p->second;
      by_subnet_[l.subnet] = p->first;
      set.peers.push_back(peer_set(p->first, p->second));
    }
  }
  if (set.peers.empty()) return;
  try {
    dev_->set(set);
  } catch (const UapiError& e) {
    throw BackendError(std::string("wireguard: failed to configure device ") + kDevice + ": " +
                       e.what());
  }
}

void WireguardBackend::check() {
  if (!dev_) return;
  if (impl_ == WgImplementation::kKernel) {
    {
      NetlinkSession nl;
      if (nl.link_by_name(kDevice)) return;  // the kernel device cannot die, only be deleted
    }
    note(std::string("wireguard: kernel device ") + kDevice +
         " is gone (deleted by someone); recreating it");
    ++kernel_recreations_;
  } else {
    auto why = wg_->exited();
    if (!why && wg_->pid() > 0) return;  // running
    // Died, or the last restart failed (retried every check until it works).
    note(std::string("wireguard: wireguard-go for ") + kDevice + " " +
         (why ? *why : std::string("is not running (the last start failed)")) + "; restarting it");
  }
  start_device();
  fresh_device_ = true;  // the peers' sessions are with the old device: handshake at once
  configure_link();
  reconcile();
  note(std::string("wireguard: ") + kDevice + " " +
       (wg_ ? "restarted (wireguard-go pid " + std::to_string(wg_->pid()) + ")"
            : std::string("recreated")) +
       ", configuration re-applied");
}

std::vector<WgPeerStats> wg_peer_stats(
    const UapiDevice& dev, const std::function<std::optional<IP4Net>(const WgKey&)>& subnet_of,
    double now_unix) {
  std::vector<WgPeerStats> out;
  for (const auto& p : dev.peers) {
    WgPeerStats s;
    s.public_key = p.public_key.base64();
    if (auto net = subnet_of(p.public_key)) s.subnet = *net;
    if (p.last_handshake_sec > 0) {
      s.handshake_age_seconds =
          std::max(0.0, now_unix - (static_cast<double>(p.last_handshake_sec) +
                                    static_cast<double>(p.last_handshake_nsec) / 1e9));
    }
    s.rx_bytes = p.rx_bytes;
    s.tx_bytes = p.tx_bytes;
    out.push_back(s);
  }
  return out;
}

std::vector<WgPeerStats> WireguardBackend::peer_stats() const {
  if (!dev_) return {};
  UapiDevice dev;
  try {
    dev = dev_->get();
  } catch (const UapiError& e) {
    throw BackendError(std::string("wireguard: failed to read device ") + kDevice + ": " +
                       e.what());
  }
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  MutexLock lock(&mu_);
  return wg_peer_stats(
      dev,
      [this](const WgKey& k) REQUIRES(mu_) -> std::optional<IP4Net> {  // called under `lock`
        auto it = want_.find(k);
        if (it == want_.end()) return std::nullopt;
        return it->second.subnet;
      },
      now);
}

}  // namespace flannel
