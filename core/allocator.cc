#include "core/allocator.h"

#include <algorithm>

namespace flannel {
namespace {

// An inclusive address range of one family as 128-bit numbers (IPv4 in the low 32 bits).
struct Range {
  U128 first, last;
};

Range range_of(const IP4Net& n) {
  U128 first = n.network().ip.value;
  return {first, first + n.size() - 1};
}

Range range_of(const IP6Net& n) {
  U128 first = ip6_to_u128(n.network().ip);
  U128 span = n.prefix <= 0 ? ~U128{0} : (U128{1} << (128 - n.prefix)) - 1;
  return {first, first + span};
}

// The first `kAllocCandidates` free subnet addresses of size 2^host_bits from min to max,
// skipping every taken range. Candidates only move forward, so the ranges starting at or before
// a candidate's end only grow: their largest end tells whether any of them reaches into it.
std::vector<U128> free_candidates(std::vector<Range> taken, U128 min, U128 max, int host_bits) {
  std::sort(taken.begin(), taken.end(),
            [](const Range& a, const Range& b) { return a.first < b.first; });
  const U128 size = U128{1} << host_bits;
  std::vector<U128> out;
  size_t next = 0;
  U128 reach = 0;
  bool any = false;
  for (U128 cand = min; cand <= max && out.size() < kAllocCandidates;) {
    const U128 cand_last = cand + size - 1;
    while (next < taken.size() && taken[next].first <= cand_last) {
      reach = any ? std::max(reach, taken[next].last) : taken[next].last;
      any = true;
      ++next;
    }
    if (any && reach >= cand) {
      // Jump to the first aligned candidate past everything taken so far.
      if (reach >= max) break;
      cand = (reach / size + 1) * size;
      continue;
    }
    out.push_back(cand);
    if (max - cand < size) break;  // the next step would pass max (or wrap)
    cand += size;
  }
  return out;
}

std::vector<IP4Net> free_candidates4(const Config& c, const std::vector<Lease>& leases) {
  std::vector<Range> taken;
  for (const auto& l : leases)
    if (l.key().has_ipv4()) taken.push_back(range_of(l.subnet));
  std::vector<IP4Net> out;
  for (U128 v :
       free_candidates(std::move(taken), c.subnet_min.value, c.subnet_max.value, 32 - c.subnet_len))
    out.push_back(IP4Net{IP4{static_cast<uint32_t>(v)}, c.subnet_len});
  return out;
}

std::vector<IP6Net> free_candidates6(const Config& c, const std::vector<Lease>& leases) {
  std::vector<Range> taken;
  for (const auto& l : leases)
    if (l.ipv6_subnet) taken.push_back(range_of(*l.ipv6_subnet));
  std::vector<IP6Net> out;
  for (U128 v : free_candidates(std::move(taken), ip6_to_u128(c.ipv6_subnet_min),
                                ip6_to_u128(c.ipv6_subnet_max), 128 - c.ipv6_subnet_len))
    out.push_back(IP6Net{ip6_from_u128(v), c.ipv6_subnet_len});
  return out;
}

// True if a lease with key `l` holds any address of `k` in either family.
bool overlaps(const LeaseKey& l, const LeaseKey& k) {
  if (l.has_ipv4() && k.has_ipv4() && l.subnet.overlaps(k.subnet)) return true;
  return l.ipv6_subnet && k.ipv6_subnet && l.ipv6_subnet->overlaps(*k.ipv6_subnet);
}

}  // namespace

bool is_compatible(const Config& c, const IP4Net& s) {
  return s.prefix == c.subnet_len && s.network() == s && c.network.contains(s) &&
         c.subnet_min <= s.ip && s.ip <= c.subnet_max;
}

bool is_compatible_ipv6(const Config& c, const IP6Net& s) {
  return c.enable_ipv6 && s.prefix == c.ipv6_subnet_len && s.network() == s &&
         c.ipv6_network.contains(s) && c.ipv6_subnet_min <= s.ip && s.ip <= c.ipv6_subnet_max;
}

bool is_compatible_key(const Config& c, const LeaseKey& k) {
  if (c.enable_ipv4 ? !is_compatible(c, k.subnet) : k.subnet != kNoIPv4Subnet) return false;
  if (c.enable_ipv6 != k.ipv6_subnet.has_value()) return false;
  return !k.ipv6_subnet || is_compatible_ipv6(c, *k.ipv6_subnet);
}

namespace {

// Who "we" are in the store: by PublicIP, as flannel; an IPv6-only host (whose PublicIP is
// 0.0.0.0, like every other IPv6-only host's) by PublicIPv6.
struct Us {
  const Config& c;
  IP4 public_ip;
  std::optional<IP6> public_ipv6;

  bool holds(const Lease& l) const {
    if (c.enable_ipv4) return l.attrs.public_ip == public_ip;
    return public_ipv6.has_value() && l.attrs.public_ipv6 == public_ipv6;
  }
  std::string str() const {
    if (c.enable_ipv4) return "PublicIP " + public_ip.str();
    return "PublicIPv6 " + (public_ipv6 ? public_ipv6->str() : std::string("(none)"));
  }
};

// Step 1: a compatible lease already holding our address (the one equal to `previous` if
// several). Fills `a` and returns true when there is one; our incompatible leases go to
// a->incompatible either way.
bool reuse_ours(const Us& us, const std::vector<Lease>& existing,
                const std::optional<LeaseKey>& previous, Allocation* a) {
  const Lease* chosen = nullptr;
  std::vector<const Lease*> ours_compatible;
  for (const auto& l : existing) {
    if (!us.holds(l)) continue;
    if (!is_compatible_key(us.c, l.key())) {
      a->incompatible.push_back(l);
      continue;
    }
    ours_compatible.push_back(&l);
    if (!chosen || (previous && l.key() == *previous && chosen->key() != *previous)) chosen = &l;
  }
  if (!chosen) return false;
  for (const Lease* l : ours_compatible)
    if (l != chosen) a->duplicates.push_back(*l);
  a->source = Allocation::Source::kExisting;
  a->subnet = chosen->subnet;
  a->ipv6_subnet = chosen->ipv6_subnet;
  a->existing = *chosen;
  a->reason = "reusing lease " + chosen->key().str() + " already held by our " + us.str();
  return true;
}

// Step 2: the previous subnet(s), only if nobody (of any prefix length) holds any part of them.
// Fills `a` and returns true when they are free; else *note says why not ("" without previous).
bool reuse_previous(const Config& c, const std::vector<Lease>& existing,
                    const std::optional<LeaseKey>& previous, Allocation* a, std::string* note) {
  if (!previous) return false;
  if (!is_compatible_key(c, *previous)) {
    *note = "previous subnet " + previous->str() +
            " from the subnet file does not fit the config (" + c.str() + "); ";
    return false;
  }
  auto holder = std::find_if(existing.begin(), existing.end(),
                             [&](const Lease& l) { return overlaps(l.key(), *previous); });
  if (holder != existing.end()) {
    *note = "previous subnet " + previous->str() + " from the subnet file is held by " +
            holder->attrs.public_ip.str() + " (lease " + holder->key().str() + "); ";
    return false;
  }
  a->source = Allocation::Source::kPrevious;
  a->subnet = previous->subnet;
  a->ipv6_subnet = previous->ipv6_subnet;
  a->reason = "reusing previous subnet " + previous->str() + " from the subnet file";
  return true;
}

// Step 3, IPv4: one of the first free subnets, at random. Throws AllocError when none is free.
IP4Net pick_new4(const Config& c, const std::vector<Lease>& existing, std::mt19937_64& rng,
                 std::string* picked) {
  std::vector<IP4Net> candidates = free_candidates4(c, existing);
  if (candidates.empty()) {
    throw AllocError("IPv4 network exhausted: all " + std::to_string(subnet_count(c)) +
                     " subnets of " + c.network.str() + " between SubnetMin " + c.subnet_min.str() +
                     " and SubnetMax " + c.subnet_max.str() + " are leased (" +
                     std::to_string(existing.size()) + " leases in the store)");
  }
  std::uniform_int_distribution<size_t> pick(0, candidates.size() - 1);
  IP4Net subnet = candidates[pick(rng)];
  *picked = "allocated new subnet " + subnet.str() + " (random among the first " +
            std::to_string(candidates.size()) + " free)";
  return subnet;
}

// Step 3, IPv6: as pick_new4, appending to *picked.
IP6Net pick_new6(const Config& c, const std::vector<Lease>& existing, std::mt19937_64& rng,
                 std::string* picked) {
  std::vector<IP6Net> candidates = free_candidates6(c, existing);
  if (candidates.empty()) {
    const uint64_t n = ipv6_subnet_count(c);
    throw AllocError("IPv6 network exhausted: all " +
                     (n == UINT64_MAX ? std::string("(more than 2^64)") : std::to_string(n)) +
                     " IPv6 subnets of " + c.ipv6_network.str() + " between IPv6SubnetMin " +
                     c.ipv6_subnet_min.str() + " and IPv6SubnetMax " + c.ipv6_subnet_max.str() +
                     " are leased (" + std::to_string(existing.size()) + " leases in the store)");
  }
  std::uniform_int_distribution<size_t> pick(0, candidates.size() - 1);
  IP6Net subnet = candidates[pick(rng)];
  *picked += std::string(picked->empty() ? "allocated" : ", and") + " new IPv6 subnet " +
             subnet.str() + " (random among the first " + std::to_string(candidates.size()) +
             " free)";
  return subnet;
}

}  // namespace

Allocation allocate_subnet(const Config& c, const std::vector<Lease>& existing, IP4 public_ip,
                           std::optional<LeaseKey> previous, std::mt19937_64& rng,
                           std::optional<IP6> public_ipv6) {
  Allocation a;
  if (previous) {
    previous->subnet = previous->subnet.network();
    if (previous->ipv6_subnet) previous->ipv6_subnet = previous->ipv6_subnet->network();
  }
  if (reuse_ours(Us{c, public_ip, public_ipv6}, existing, previous, &a)) return a;
  std::string prev_note;
  if (reuse_previous(c, existing, previous, &a, &prev_note)) return a;

  // 3. New subnets among the first free ones of each family, picked independently (as current
  // flannel). Our own incompatible leases still count as taken (as in flannel, which allocates
  // from the list it read before deleting them): the caller's delete may fail, and a subnet must
  // never be handed out while a lease overlaps it.
  a.source = Allocation::Source::kNew;
  a.subnet = kNoIPv4Subnet;
  std::string picked;
  if (c.enable_ipv4) a.subnet = pick_new4(c, existing, rng, &picked);
  if (c.enable_ipv6) a.ipv6_subnet = pick_new6(c, existing, rng, &picked);
  a.reason = prev_note + picked;
  return a;
}

std::optional<Lease> earlier_rival(const Lease& mine, const std::vector<Lease>& leases) {
  const LeaseKey key = mine.key();
  std::optional<Lease> rival;
  for (const auto& l : leases) {
    if (l.key() == key || l.revision == 0 || l.revision >= mine.revision) continue;
    const bool v4 = key.has_ipv4() && l.key().has_ipv4() && l.subnet.overlaps(mine.subnet);
    const bool v6 = key.ipv6_subnet && l.ipv6_subnet && l.ipv6_subnet->overlaps(*key.ipv6_subnet);
    if ((v4 || v6) && (!rival || l.revision < rival->revision)) rival = l;
  }
  return rival;
}

}  // namespace flannel
