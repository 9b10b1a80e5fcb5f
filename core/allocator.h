// Subnet allocation: the pure decision of which subnet this host should hold.
//
// This is flannel v0.11's tryAcquireLease (local_manager.go) without the store calls, and without
// its lease theft: the caller lists the leases, calls allocate_subnet, then performs the writes it
// asks for (delete `incompatible`, then create or CAS-renew `subnet`) and calls again on a race.
// No I/O, no globals: randomness comes from the caller's generator, so tests are deterministic.
#pragma once

#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/lease.h"

namespace flannel {

// Thrown when no subnet is free. what() names the network and the SubnetMin..SubnetMax range.
class AllocError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// True if `subnet` may be held under `config`: prefix == SubnetLen, network address aligned
// (no host bits), inside Network, and SubnetMin <= address <= SubnetMax. (v0.11 checks only the
// range and the prefix; the extra checks reject leases left over from a different Network.)
bool is_compatible(const Config& config, const IP4Net& subnet);
// The same for an IPv6 subnet against the IPv6 fields (false when IPv6 is off).
bool is_compatible_ipv6(const Config& config, const IP6Net& subnet);
// A whole lease key (current flannel's rule, facts 1.6): the v4 part compatible when IPv4 is on
// (and the 0.0.0.0/0 placeholder when it is off); the v6 part present exactly when IPv6 is on,
// and then compatible.
bool is_compatible_key(const Config& config, const LeaseKey& key);

struct Allocation {
  enum class Source {
    kExisting,  // a compatible lease already holds our PublicIP: renew it in place
    kPrevious,  // the subnet from subnet.env is compatible and free: create it
    kNew,       // picked at random among the first <= 100 free subnets: create it
  };
  Source source = Source::kNew;
  IP4Net subnet;                      // kNoIPv4Subnet when IPv4 is off
  std::optional<IP6Net> ipv6_subnet;  // set exactly when IPv6 is on
  LeaseKey key() const { return LeaseKey{subnet, ipv6_subnet}; }
  // For kExisting, the lease being reused (its revision is the CAS guard for the renewal, and an
  // absent expiration marks a reservation, which must stay without TTL). nullopt otherwise.
  std::optional<Lease> existing;
  // Leases holding our PublicIP that do not fit the config. flannel deletes these; so should
  // the caller, before writing. Never contains another host's lease.
  std::vector<Lease> incompatible;
  // Further compatible leases holding our PublicIP besides the one reused (a crash between two
  // writes, or a hand edit). Safe to delete; they would otherwise live until their TTL.
  std::vector<Lease> duplicates;
  // One line for the log explaining the decision, e.g. "previous subnet 10.5.34.0/24 from the
  // subnet file is held by 10.0.0.2; allocated a new subnet".
  std::string reason;
};

// Decides which subnet(s) this host (public_ip) should hold, given every lease in the store.
// "Ours" means holding public_ip; with IPv4 off, holding public_ipv6 instead (every IPv6-only
// host advertises PublicIP 0.0.0.0).
//  1. Reuse: a compatible (is_compatible_key) lease of ours (the one equal to previous if
//     several, else the first in `existing` order).
//  2. Previous: `previous` (from subnet.env: FLANNEL_SUBNET and FLANNEL_IPV6_SUBNET, network
//     addresses; v4 part kNoIPv4Subnet with IPv4 off) if it is compatible and no lease overlaps
//     either part. A previous subnet held by another host is never taken (v0.11 took it).
//  3. New: per enabled family, walk Min..Max in SubnetLen steps, skip candidates overlapping any
//     lease (of any prefix length), collect the first 100 free ones, pick one uniformly with
//     `rng` (the two families independently, as current flannel).
// Throws AllocError naming the family when step 3 finds nothing; nothing is returned then, and
// `rng` may have been advanced (a dual-stack pick draws the IPv4 subnet before it finds the
// IPv6 range full). O(n log n) in the number of leases; the walk jumps over leased ranges, so it
// does not depend on the size of the network. Pure: safe from any thread that owns `rng`.
Allocation allocate_subnet(const Config& config, const std::vector<Lease>& existing, IP4 public_ip,
                           std::optional<LeaseKey> previous, std::mt19937_64& rng,
                           std::optional<IP6> public_ipv6 = std::nullopt);

// A lease key with an IPv6 part ("A-N&B-M", or "0.0.0.0-0&B-M" IPv6-only) is created only if
// that exact key is absent, so two hosts creating at once can end up holding the same IPv4 or
// the same IPv6 subnet under different keys (and a v0.11 host the same IPv4 subnet under its
// plain key). The agent lists again after such a create: this returns a lease other than
// `mine` that holds one of its subnets (an IPv4 part counts only when both keys have one) and
// was written before it (lower revision), i.e. `mine` lost the race and must go. A rival
// written after `mine` is not returned: that host finds `mine` the same way and yields. Of
// several rivals, the earliest. Leases with revision 0 (unknown) never count as rivals, and
// with mine.revision == 0 nothing is returned.
std::optional<Lease> earlier_rival(const Lease& mine, const std::vector<Lease>& leases);

// How many free candidates step 3 collects before choosing (flannel's value).
inline constexpr size_t kAllocCandidates = 100;

}  // namespace flannel
