// DisjointSpans: address ranges that never share an address, each with a value, ordered by
// first address. The peer cache keeps its peers' IPv6 subnets in one (admitted peers never
// overlap) and sorts out overlapping leases of a snapshot with others, asking what a new subnet
// would overlap in O(log n + the overlaps found). Pure logic, header only.
//
// Thread safety: none.
#pragma once

#include <cstdint>
#include <iterator>
#include <map>
#include <utility>

#include "core/ip.h"

namespace flannel {

// The first and last address of a subnet, as numbers (host bits of `net.ip` ignored).
inline std::pair<uint32_t, uint32_t> span_of(const IP4Net& net) {
  const uint32_t first = net.ip.value & net.mask();
  return {first, first | ~net.mask()};
}
inline std::pair<U128, U128> span_of(const IP6Net& net) {
  const U128 first = ip6_to_u128(net.network().ip);
  const U128 host = net.prefix >= 128 ? 0 : (~U128{0} >> net.prefix);
  return {first, first | host};
}

template <class Addr, class T>
class DisjointSpans {
 public:
  // Calls f(value) for each range that shares an address with [first, last], in address order.
  template <class F>
  void for_each_overlap(Addr first, Addr last, F&& f) const {
    auto it = ranges_.upper_bound(first);
    if (it != ranges_.begin()) {
      auto before =
          std::prev(it);  // the only range starting at or before `first` that can reach it
      if (before->second.last >= first) f(before->second.value);
    }
    for (; it != ranges_.end() && it->first <= last; ++it) f(it->second.value);
  }
  // True when some range shares an address with [first, last].
  bool overlaps(Addr first, Addr last) const {
    bool any = false;
    for_each_overlap(first, last, [&](const T&) { any = true; });
    return any;
  }
  // Precondition: [first, last] overlaps no range here (for_each_overlap found none).
  void insert(Addr first, Addr last, T value) {
    ranges_.emplace(first, Range{last, std::move(value)});
  }
  void erase(Addr first) { ranges_.erase(first); }
  void clear() { ranges_.clear(); }
  size_t size() const { return ranges_.size(); }

 private:
  struct Range {
    Addr last;
    T value;
  };
  std::map<Addr, Range> ranges_;
};

}  // namespace flannel
