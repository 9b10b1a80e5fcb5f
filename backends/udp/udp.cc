#include "backends/udp/udp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "backends/netlink/netlink.h"
#include "backends/udp/ipv4_offload.h"
#include "core/json_util.h"

namespace flannel {
namespace {

constexpr const char* kTunTemplate = "flannel%d";  // the kernel picks flannel0, flannel1, ...
constexpr int kSocketBuffer = 4 << 20;             // room for bursts at multi-Gbit/s rates

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

[[noreturn]] void config_error(const std::string& why) {
  throw BackendError("error decoding UDP backend config: " + why);
}

// Opens a new, non-persistent TUN device named from kTunTemplate; returns its fd, sets *name and
// *vnet_hdr (true when the device exchanges virtio-net headers, which carry the TSO and checksum
// offloads the proxy uses; without them the proxy moves plain packets).
UniqueFd open_tun(std::string* name, bool* vnet_hdr) {
  UniqueFd fd;
  for (bool vnet : {true, false}) {
    fd.reset(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    if (!fd.valid()) {
      throw BackendError(sys_error("udp backend: cannot open /dev/net/tun") +
                         " (is the tun module loaded, and do we have CAP_NET_ADMIN?)");
    }
    ifreq ifr{};
    ifr.ifr_flags = static_cast<short>(IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0));
    std::strncpy(ifr.ifr_name, kTunTemplate, IFNAMSIZ - 1);
    if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0) {
      if (vnet && errno == EINVAL) continue;
      throw BackendError(
          sys_error(std::string("udp backend: cannot create TUN device ") + kTunTemplate));
    }
    *name = std::string(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
    *vnet_hdr = vnet;
    if (vnet) {
      int hdr_len = static_cast<int>(ipv4::VnetHeader::kLen);
      unsigned offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN;
      // Without these the kernel hands us ordinary finished packets behind a zero header.
      if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr_len) == 0)
        (void)::ioctl(fd.get(), TUNSETOFFLOAD, offloads);
    }
    break;
  }
  return fd;
}

void set_buffer(int fd, int force_opt, int opt) {
  int size = kSocketBuffer;
  // The *FORCE options ignore net.core.[rw]mem_max (needs CAP_NET_ADMIN); fall back to the capped
  // ones. A smaller buffer only costs drops under bursts, so failures are not fatal.
  if (::setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof(size)) < 0) {
    (void)::setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size));
  }
}

// Lets the kernel accept packets from the TUN whose source is one of our own addresses. The
// proxy's ICMP errors (net unreachable, time exceeded) come from our TUN address, as in v0.11,
// and without this the kernel drops them as martians, so senders never hear of them. Failure
// (e.g. a read-only /proc/sys) is not fatal: only those ICMP errors are lost.
void accept_local(const std::string& device) {
  std::string path = "/proc/sys/net/ipv4/conf/" + device + "/accept_local";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.valid()) (void)!::write(fd.get(), "1\n", 2);
}

// An AF_INET datagram socket bound to addr:port.
UniqueFd open_udp(IP4 addr, int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw BackendError(sys_error("udp backend: cannot create UDP socket"));
  set_buffer(fd.get(), SO_RCVBUFFORCE, SO_RCVBUF);
  set_buffer(fd.get(), SO_SNDBUFFORCE, SO_SNDBUF);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(addr.value);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) < 0) {
    std::string hint =
        errno == EADDRINUSE ? " (is another flanneld running, or the Port in use?)" : "";
    throw BackendError(sys_error("udp backend: cannot bind UDP socket to " + addr.str() + ":" +
                                 std::to_string(port)) +
                       hint);
  }
  return fd;
}

}  // namespace

int decode_udp_port(const std::string& backend_json) {
  int port = UdpBackend::kDefaultPort;
  if (backend_json.empty()) return port;
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(backend_json);
  } catch (const nlohmann::json::parse_error& e) { config_error(json_util::describe(e)); }
  if (!doc.is_object()) config_error("expected an object like {\"Type\":\"udp\",\"Port\":8285}");
  std::optional<std::string_view> raw;  // Go's decoder: case-insensitive, the last match wins
  for (const auto& m : json_util::object_members(backend_json)) {
    if (json_util::iequals(m.key, "Port")) raw = m.value;
  }
  if (!raw) return port;
  using Kind = json_util::IntField::Kind;
  json_util::IntField f = json_util::decode_int_field(*raw, 1, 65535);
  switch (f.kind) {
    case Kind::kNull: return port;
    case Kind::kNotInteger:
      config_error("Port must be an integer like 8285, got " + std::string(*raw));
    case Kind::kOutOfRange:
      config_error("Port must be between 1 and 65535, got " + std::string(*raw));
    case Kind::kOk: break;
  }
  return static_cast<int>(f.value);
}

UdpBackend::~UdpBackend() {
  if (proxy_) proxy_->stop();
}

BackendSetup UdpBackend::setup(const Config& config, const ExternalInterface& iface) {
  port_ = decode_udp_port(config.backend_json);
  if (config.enable_ipv6) {
    throw BackendError(
        "the udp backend carries IPv4 only; set EnableIPv6 to false or use vxlan "
        "or host-gw");
  }
  if (!config.enable_ipv4)
    throw BackendError("the udp backend carries IPv4 only; EnableIPv4 must stay true with it");
  mtu_ = iface.mtu - kEncapOverhead;
  if (mtu_ < 68) {  // the IPv4 minimum (RFC 791)
    throw BackendError("udp backend: the MTU of " + iface.name + " (" + std::to_string(iface.mtu) +
                       ") leaves " + std::to_string(mtu_) +
                       " bytes after the 28-byte UDP encapsulation; IPv4 needs at least 68");
  }
  config_ = config;
  iface_ = iface;
  BackendSetup out;
  out.attrs.public_ip = iface.ext_addr;  // PublicIP only: {"PublicIP":"..."}, as v0.11
  out.mtu = mtu_;
  return out;
}

void UdpBackend::lease_acquired(const Lease& ours) {
  const IP4Net tun_addr{ours.subnet.network().ip, 32};
  NetlinkSession nl;
  if (proxy_) {
    // Re-acquired with another subnet: move the address; the device, route and socket stay.
    nl.ensure_v4_address(tun_index_, tun_addr);
    proxy_->set_tun_addr(tun_addr.ip);
    proxy_->set_local_subnet(ours.subnet);
    return;
  }

  std::string name;
  bool vnet_hdr = false;
  UniqueFd tun = open_tun(&name, &vnet_hdr);  // closing it on any failure below removes the device
  try {
    auto link = nl.link_by_name(name);
    if (!link) throw BackendError("udp backend: TUN device " + name + " vanished after creation");
    nl.link_set_mtu(link->index, mtu_);
    nl.ensure_v4_address(link->index, tun_addr);
    accept_local(name);
    nl.link_set_up(link->index);
    Route4 route;
    route.dst = config_.network;
    route.oif = link->index;
    nl.route_replace(route);  // `ip route replace <Network> dev flannel0`
    tun_index_ = link->index;
  } catch (const NetlinkError& e) {
    throw BackendError("udp backend: cannot configure " + name + ": " + e.what());
  }
  UniqueFd udp = open_udp(iface_.iface_addr, port_);

  auto proxy = std::make_unique<UdpProxy>(std::move(tun), std::move(udp), tun_addr.ip, vnet_hdr);
  proxy->set_local_subnet(ours.subnet);
  proxy->apply(pending_);
  proxy->start();
  pending_.clear();
  pending_.shrink_to_fit();
  proxy_ = std::move(proxy);
  tun_name_ = name;
}

void UdpBackend::sync(const std::vector<Lease>& peers) {
  std::set<IP4Net> want;
  for (const auto& p : peers) want.insert(p.subnet);
  std::vector<PeerEvent> batch;
  batch.reserve(peers.size());
  for (const auto& subnet : known_) {
    if (!want.count(subnet)) {
      Lease gone;
      gone.subnet = subnet;
      batch.push_back({PeerEvent::Type::kRemoved, gone});
    }
  }
  for (const auto& p : peers) batch.push_back({PeerEvent::Type::kAdded, p});
  apply(batch);
}

void UdpBackend::apply(const std::vector<PeerEvent>& batch) {
  std::vector<UdpProxy::RouteChange> changes;
  changes.reserve(batch.size());
  for (const auto& ev : batch) {
    if (ev.type == PeerEvent::Type::kAdded) {
      // v0.11 sends to the peer's PublicIP at the locally configured port.
      changes.push_back(
          {ev.lease.subnet, UdpEndpoint{ev.lease.attrs.public_ip, static_cast<uint16_t>(port_)}});
      known_.insert(ev.lease.subnet);
    } else {
      changes.push_back({ev.lease.subnet, std::nullopt});
      known_.erase(ev.lease.subnet);
    }
  }
  if (proxy_) {
    proxy_->apply(changes);
  } else {
    pending_.insert(pending_.end(), changes.begin(), changes.end());
  }
}

}  // namespace flannel
