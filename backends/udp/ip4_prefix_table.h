// IP4PrefixTable: a map from IPv4 networks to values with longest-prefix-match lookup, for
// routing tables of thousands of entries (the udp backend's peer table).
//
// One hash map per prefix length in use, searched from the longest length down, so a lookup
// costs one hash probe per distinct prefix length present (one for a cluster whose leases all
// have the same SubnetLen). Pure value type, no I/O. Not synchronized: copy it to publish a
// snapshot to other threads, and only read a snapshot concurrently.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "core/ip.h"

namespace flannel {

template <class V>
class IP4PrefixTable {
 public:
  // Inserts `value` for `net` (its host bits are ignored), replacing any value already there.
  void insert(const IP4Net& net, V value) {
    Level& level = level_for(net.prefix);
    level.entries.insert_or_assign(net.ip.value & level.mask, std::move(value));
  }

  // Removes the entry for exactly `net`; returns false if there was none.
  bool erase(const IP4Net& net) {
    for (auto it = levels_.begin(); it != levels_.end(); ++it) {
      if (it->prefix != net.prefix) continue;
      bool erased = it->entries.erase(net.ip.value & it->mask) > 0;
      if (it->entries.empty()) levels_.erase(it);
      return erased;
    }
    return false;
  }

  // The value of the longest network containing `addr`, or nullptr. The pointer is valid until
  // the table is next modified.
  const V* lookup(IP4 addr) const {
    for (const Level& level : levels_) {
      auto it = level.entries.find(addr.value & level.mask);
      if (it != level.entries.end()) return &it->second;
    }
    return nullptr;
  }

  // The value stored for exactly `net`, or nullptr.
  const V* find(const IP4Net& net) const {
    for (const Level& level : levels_) {
      if (level.prefix != net.prefix) continue;
      auto it = level.entries.find(net.ip.value & level.mask);
      return it == level.entries.end() ? nullptr : &it->second;
    }
    return nullptr;
  }

  size_t size() const {
    size_t n = 0;
    for (const Level& level : levels_) n += level.entries.size();
    return n;
  }
  bool empty() const { return levels_.empty(); }

  // Calls fn(IP4Net, const V&) for every entry, longest prefixes first, unordered within a length.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const Level& level : levels_)
      for (const auto& [ip, value] : level.entries) fn(IP4Net{IP4{ip}, level.prefix}, value);
  }

 private:
  struct Level {
    int prefix = 0;
    uint32_t mask = 0;
    std::unordered_map<uint32_t, V> entries;
  };

  Level& level_for(int prefix) {
    auto it = std::find_if(levels_.begin(), levels_.end(),
                           [&](const Level& l) { return l.prefix <= prefix; });
    if (it != levels_.end() && it->prefix == prefix) return *it;
    Level level;
    level.prefix = prefix;
    level.mask = prefix <= 0    ? 0
                 : prefix >= 32 ? 0xffffffffu
                                : ~((uint32_t{1} << (32 - prefix)) - 1);
    return *levels_.insert(it, std::move(level));
  }

  std::vector<Level> levels_;  // non-empty levels, longest prefix first
};

}  // namespace flannel
