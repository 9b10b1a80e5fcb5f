// Lease admission: what a peer lease may claim before anything programs it. Pure logic.
//
// Anyone with write access to the store can write any key and value, and an honest host never
// writes a lease outside the network, over another host's subnet, or naming a gateway that is not
// a unicast host. check_peer_lease() says whether a lease read from the store may reach the
// backends; a refused lease is skipped (never deleted: it is not ours) with its reason.
// check_network_for_host() refuses a network config no host can live in safely.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/lease.h"

namespace flannel {

enum class RefusalReason {
  kOutsideNetwork,  // a subnet not inside Network / IPv6Network, or of a family that is off
  kBadPrefix,       // a prefix not longer than the network's
  kHostBits,        // a subnet with host bits set
  kOverlapsOwn,     // shares addresses with our own subnet(s)
  kOverlapsPeer,    // shares addresses with an older peer lease (the older one wins)
  kBadPublicIP,     // PublicIP / PublicIPv6 missing, not unicast, or inside the pod network
  kOwnAddress,      // PublicIP / PublicIPv6 is one of this host's addresses
  kBadBackendData,  // BackendData the lease's backend cannot use
};
inline constexpr size_t kRefusalReasons = 8;  // the number of RefusalReason values
static_assert(static_cast<size_t>(RefusalReason::kBadBackendData) + 1 == kRefusalReasons);

// The stable name of a reason, for /metrics labels and flannelctl: "outside_network",
// "bad_prefix", "host_bits", "overlaps_own", "overlaps_peer", "bad_public_ip", "own_address",
// "bad_backend_data".
std::string_view refusal_name(RefusalReason reason);

struct Refusal {
  RefusalReason reason;
  std::string detail;  // names the bad value and what would be valid, for one log line
  bool operator==(const Refusal&) const = default;
};

// What a peer lease is checked against.
struct AdmissionRules {
  std::optional<IP4Net> network;       // nullopt: IPv4 off (EnableIPv4 false)
  std::optional<IP6Net> ipv6_network;  // nullopt: IPv6 off
  std::optional<LeaseKey> own;         // our lease, once we hold one
  std::vector<IP4> own_ip4;            // this host's addresses
  std::vector<IP6> own_ip6;
  // The backend's judgement of a lease's BackendData / BackendV6Data: nullopt when usable,
  // else why not. Unset: any BackendData is accepted.
  std::function<std::optional<std::string>(const Lease&)> backend_data;

  // Network and IPv6Network from `config` (each only when its family is on); the rest unset.
  static AdmissionRules from_config(const Config& config);
};

// nullopt when `lease` may be programmed as a peer, else the first reason it may not. Checks
// each subnet of the key (family on, inside its network, prefix longer than the network's, host
// bits clear, no overlap with rules.own), then each public address the lease needs (PublicIP when
// it has an IPv4 subnet, PublicIPv6 when it has an IPv6 subnet: unicast, not unspecified,
// loopback, multicast, broadcast or link-local, not inside the pod network, not one of this
// host's), then rules.backend_data. Overlaps between peers are not judged here (see
// wins_overlap).
std::optional<Refusal> check_peer_lease(const Lease& lease, const AdmissionRules& rules);

// True when the two keys share an IPv4 address or an IPv6 address.
bool keys_overlap(const LeaseKey& a, const LeaseKey& b);

// Of two overlapping peer leases, whether `a` is kept: the one created first (lower
// Lease::created; renewals keep it, so the winner never flips) wins; equal creation revisions
// (unknown 0) fall back to the smaller key, so every host decides the same way. A lease whose
// creation is unknown (a row from before the store recorded it) counts as the oldest.
bool wins_overlap(const Lease& a, const Lease& b);

// nullopt when a host whose public addresses are `public_ip` / `public_ipv6` may use `config`,
// else why not: Network 0.0.0.0/0 or IPv6Network ::/0 (every route would be the pod network's),
// or a network that contains the host's own public address.
std::optional<std::string> check_network_for_host(const Config& config, IP4 public_ip,
                                                  std::optional<IP6> public_ipv6);

}  // namespace flannel
