#include "core/admission.h"

#include <algorithm>

namespace flannel {
namespace {

std::optional<Refusal> refuse(RefusalReason reason, std::string detail) {
  return Refusal{reason, std::move(detail)};
}

// The checks every subnet of a key gets, for either family (Net is IP4Net or IP6Net).
template <class Net>
std::optional<Refusal> check_subnet(const Net& subnet, const std::optional<Net>& network,
                                    const std::optional<Net>& own, std::string_view family) {
  // The strings are built only for a refusal: admission runs on every lease of every resync.
  auto s = [&] { return subnet.str(); };
  if (!network) {
    return refuse(RefusalReason::kOutsideNetwork,
                  "subnet " + s() + " is " + std::string(family) + ", which this network has off");
  }
  if (subnet.prefix <= network->prefix) {
    return refuse(RefusalReason::kBadPrefix,
                  "subnet " + s() + ": the prefix must be longer than the network's /" +
                      std::to_string(network->prefix));
  }
  if (subnet.network() != subnet) {
    return refuse(RefusalReason::kHostBits, "subnet " + s() + " has host bits set (the subnet is " +
                                                subnet.network().str() + ")");
  }
  if (!network->contains(subnet)) {
    return refuse(RefusalReason::kOutsideNetwork,
                  "subnet " + s() + " is outside the network " + network->str());
  }
  if (own && own->overlaps(subnet)) {
    return refuse(RefusalReason::kOverlapsOwn,
                  "subnet " + s() + " overlaps this host's subnet " + own->str());
  }
  return std::nullopt;
}

// Why `ip` cannot be a peer's IPv4 underlay address, or "" when it can.
const char* bad_ip4_kind(IP4 ip) {
  const uint32_t v = ip.value;
  if ((v >> 24) == 0) return "unspecified (0.0.0.0/8)";
  if ((v >> 24) == 127) return "loopback";
  if ((v >> 16) == 0xa9fe) return "link-local (169.254.0.0/16)";
  if ((v >> 28) == 0xe) return "multicast";
  if (v == 0xffffffff) return "broadcast";
  return "";
}

const char* bad_ip6_kind(const IP6& ip) {
  static const IP6 kLoopback = IP6::parse("::1");
  const auto& b = ip.bytes;
  if (ip == IP6{}) return "unspecified (::)";
  if (ip == kLoopback) return "loopback";
  if (b[0] == 0xff) return "multicast";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "link-local (fe80::/10)";
  return "";
}

template <class Addr, class Net>
std::optional<Refusal> check_public(std::string_view field, const Addr& ip, const char* kind,
                                    const std::optional<Net>& network,
                                    const std::vector<Addr>& own_addresses) {
  auto s = [&] { return std::string(field) + " " + ip.str(); };
  if (*kind) {
    return refuse(RefusalReason::kBadPublicIP,
                  s() + " is " + kind + "; it must be a unicast address");
  }
  if (network && network->contains(ip)) {
    return refuse(RefusalReason::kBadPublicIP,
                  s() + " is inside the pod network " + network->str());
  }
  if (std::find(own_addresses.begin(), own_addresses.end(), ip) != own_addresses.end()) {
    return refuse(RefusalReason::kOwnAddress, s() + " is this host's own address");
  }
  return std::nullopt;
}

std::optional<Refusal> check_ipv4_side(const Lease& lease, const AdmissionRules& rules) {
  std::optional<IP4Net> own;
  if (rules.own && rules.own->has_ipv4()) own = rules.own->subnet;
  if (auto r = check_subnet(lease.subnet, rules.network, own, "IPv4")) return r;
  const IP4 ip = lease.attrs.public_ip;
  return check_public("PublicIP", ip, bad_ip4_kind(ip), rules.network, rules.own_ip4);
}

std::optional<Refusal> check_ipv6_side(const Lease& lease, const AdmissionRules& rules) {
  const IP6Net& subnet = *lease.ipv6_subnet;
  if (auto r = check_subnet(subnet, rules.ipv6_network,
                            rules.own ? rules.own->ipv6_subnet : std::optional<IP6Net>{}, "IPv6")) {
    return r;
  }
  if (!lease.attrs.public_ipv6) {
    return refuse(RefusalReason::kBadPublicIP,
                  "PublicIPv6 is missing; a lease with the IPv6 subnet " + subnet.str() +
                      " must name its host's IPv6 address");
  }
  const IP6& ip = *lease.attrs.public_ipv6;
  return check_public("PublicIPv6", ip, bad_ip6_kind(ip), rules.ipv6_network, rules.own_ip6);
}

}  // namespace

std::string_view refusal_name(RefusalReason reason) {
  switch (reason) {
    case RefusalReason::kOutsideNetwork: return "outside_network";
    case RefusalReason::kBadPrefix: return "bad_prefix";
    case RefusalReason::kHostBits: return "host_bits";
    case RefusalReason::kOverlapsOwn: return "overlaps_own";
    case RefusalReason::kOverlapsPeer: return "overlaps_peer";
    case RefusalReason::kBadPublicIP: return "bad_public_ip";
    case RefusalReason::kOwnAddress: return "own_address";
    case RefusalReason::kBadBackendData: return "bad_backend_data";
  }
  return "unknown";
}

AdmissionRules AdmissionRules::from_config(const Config& config) {
  AdmissionRules rules;
  if (config.enable_ipv4) rules.network = config.network;
  if (config.enable_ipv6) rules.ipv6_network = config.ipv6_network;
  return rules;
}

std::optional<Refusal> check_peer_lease(const Lease& lease, const AdmissionRules& rules) {
  if (!lease.key().has_ipv4() && !lease.ipv6_subnet) {
    return refuse(RefusalReason::kOutsideNetwork,
                  "key " + subnet_key(lease.key()) + " names no subnet (0.0.0.0/0)");
  }
  if (lease.key().has_ipv4()) {
    if (auto r = check_ipv4_side(lease, rules)) return r;
  }
  if (lease.ipv6_subnet) {
    if (auto r = check_ipv6_side(lease, rules)) return r;
  }
  if (rules.backend_data) {
    if (auto why = rules.backend_data(lease)) return refuse(RefusalReason::kBadBackendData, *why);
  }
  return std::nullopt;
}

bool keys_overlap(const LeaseKey& a, const LeaseKey& b) {
  if (a.has_ipv4() && b.has_ipv4() && a.subnet.overlaps(b.subnet)) return true;
  return a.ipv6_subnet && b.ipv6_subnet && a.ipv6_subnet->overlaps(*b.ipv6_subnet);
}

bool wins_overlap(const Lease& a, const Lease& b) {
  if (a.created != b.created) return a.created < b.created;
  return a.key() < b.key();
}

std::optional<std::string> check_network_for_host(const Config& config, IP4 public_ip,
                                                  std::optional<IP6> public_ipv6) {
  if (config.enable_ipv4 && config.network.prefix == 0) {
    return "Network " + config.network.str() +
           " would take every IPv4 route of the host; use a private range such as 10.5.0.0/16";
  }
  if (config.enable_ipv6 && config.ipv6_network.prefix == 0) {
    return "IPv6Network " + config.ipv6_network.str() +
           " would take every IPv6 route of the host; use a range such as fc00::/48";
  }
  if (config.enable_ipv4 && config.network.contains(public_ip)) {
    return "Network " + config.network.str() + " contains this host's public address " +
           public_ip.str() + "; the pod network must not overlap the hosts' network";
  }
  if (config.enable_ipv6 && public_ipv6 && config.ipv6_network.contains(*public_ipv6)) {
    return "IPv6Network " + config.ipv6_network.str() + " contains this host's public address " +
           public_ipv6->str() + "; the pod network must not overlap the hosts' network";
  }
  return std::nullopt;
}

}  // namespace flannel
