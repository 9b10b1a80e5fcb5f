#include "core/allocator.h"

#include <algorithm>

namespace flannel {
namespace {

struct Range {
  uint64_t first, last;  // inclusive, in host order; uint64 so "last + 1" cannot wrap
};

Range range_of(const IP4Net& n) {
  uint64_t first = n.network().ip.value;
  return {first, first + n.size() - 1};
}

// The first `kAllocCandidates` free subnets from SubnetMin to SubnetMax.
std::vector<IP4Net> free_candidates(const Config& c, const std::vector<Lease>& leases) {
  std::vector<Range> taken;
  taken.reserve(leases.size());
  for (const auto& l : leases) taken.push_back(range_of(l.subnet));
  std::sort(taken.begin(), taken.end(), [](const Range& a, const Range& b) { return a.first < b.first; });

  const uint64_t size = uint64_t{1} << (32 - c.subnet_len);
  const uint64_t max = c.subnet_max.value;
  std::vector<IP4Net> out;
  // Candidates only move forward, so the leases starting at or before a candidate's end only
  // grow: their largest end tells whether any of them reaches into the candidate.
  size_t next = 0;
  uint64_t reach = 0;
  bool any = false;
  for (uint64_t cand = c.subnet_min.value; cand <= max && out.size() < kAllocCandidates;) {
    const uint64_t cand_last = cand + size - 1;
    while (next < taken.size() && taken[next].first <= cand_last) {
      reach = any ? std::max(reach, taken[next].last) : taken[next].last;
      any = true;
      ++next;
    }
    if (any && reach >= cand) {
      // Jump to the first aligned candidate past everything leased so far.
      cand = (reach + 1 + size - 1) / size * size;
      continue;
    }
    out.push_back(IP4Net{IP4{static_cast<uint32_t>(cand)}, c.subnet_len});
    cand += size;
  }
  return out;
}

}  // namespace

bool is_compatible(const Config& c, const IP4Net& s) {
  return s.prefix == c.subnet_len && s.network() == s && c.network.contains(s) &&
         c.subnet_min <= s.ip && s.ip <= c.subnet_max;
}

Allocation allocate_subnet(const Config& c, const std::vector<Lease>& existing, IP4 public_ip,
                           std::optional<IP4Net> previous, std::mt19937_64& rng) {
  Allocation a;
  if (previous) previous = previous->network();

  // 1. Leases already holding our PublicIP.
  const Lease* chosen = nullptr;
  std::vector<const Lease*> ours_compatible;
  for (const auto& l : existing) {
    if (l.attrs.public_ip != public_ip) continue;
    if (!is_compatible(c, l.subnet)) {
      a.incompatible.push_back(l);
      continue;
    }
    ours_compatible.push_back(&l);
    if (!chosen || (previous && l.subnet == *previous && chosen->subnet != *previous)) chosen = &l;
  }
  if (chosen) {
    for (const Lease* l : ours_compatible)
      if (l != chosen) a.duplicates.push_back(*l);
    a.source = Allocation::Source::kExisting;
    a.subnet = chosen->subnet;
    a.existing = *chosen;
    a.reason = "reusing lease " + chosen->subnet.str() + " already held by our PublicIP " + public_ip.str();
    return a;
  }

  // 2. The previous subnet, only if nobody (of any prefix length) holds any part of it.
  std::string prev_note;
  if (previous) {
    if (!is_compatible(c, *previous)) {
      prev_note = "previous subnet " + previous->str() + " from the subnet file does not fit the config (" +
                  c.str() + "); ";
    } else {
      const Lease* holder = nullptr;
      for (const auto& l : existing) {
        if (l.subnet.overlaps(*previous)) {
          holder = &l;
          break;
        }
      }
      if (!holder) {
        a.source = Allocation::Source::kPrevious;
        a.subnet = *previous;
        a.reason = "reusing previous subnet " + previous->str() + " from the subnet file";
        return a;
      }
      prev_note = "previous subnet " + previous->str() + " from the subnet file is held by " +
                  holder->attrs.public_ip.str() + " (lease " + holder->subnet.str() + "); ";
    }
  }

  // 3. A new subnet among the first free ones. Our own incompatible leases still count as taken
  // (as in flannel, which allocates from the list it read before deleting them): the caller's
  // delete may fail, and a subnet must never be handed out while a lease overlaps it.
  std::vector<IP4Net> candidates = free_candidates(c, existing);
  if (candidates.empty()) {
    throw AllocError("network exhausted: all " + std::to_string(subnet_count(c)) + " subnets of " +
                     c.network.str() + " between SubnetMin " + c.subnet_min.str() + " and SubnetMax " +
                     c.subnet_max.str() + " are leased (" + std::to_string(existing.size()) +
                     " leases in the store)");
  }
  std::uniform_int_distribution<size_t> pick(0, candidates.size() - 1);
  a.source = Allocation::Source::kNew;
  a.subnet = candidates[pick(rng)];
  a.reason = prev_note + "allocated new subnet " + a.subnet.str() + " (random among the first " +
             std::to_string(candidates.size()) + " free)";
  return a;
}

}  // namespace flannel
