#include "core/peer_cache.h"

#include <set>

namespace flannel {

void PeerCache::set_own(std::optional<LeaseKey> own) {
  own_ = own;
  if (!own_) return;
  if (auto it = peers_.find(*own_); it != peers_.end()) erase(it);
}

std::map<LeaseKey, Lease>::iterator PeerCache::erase(std::map<LeaseKey, Lease>::iterator it) {
  if (it->first.ipv6_subnet) --ipv6_peers_;
  return peers_.erase(it);
}

void PeerCache::upsert(const Lease& lease, std::vector<PeerEvent>* out) {
  auto it = peers_.find(lease.key());
  if (it == peers_.end()) {
    peers_.emplace(lease.key(), lease);
    if (lease.ipv6_subnet) ++ipv6_peers_;
    out->push_back({PeerEvent::Type::kAdded, lease});
    return;
  }
  if (it->second.attrs != lease.attrs) {
    out->push_back({PeerEvent::Type::kRemoved, it->second});
    out->push_back({PeerEvent::Type::kAdded, lease});
  }
  it->second = lease;  // a renewal only refreshes expiration and revision
}

std::vector<PeerEvent> PeerCache::apply(const std::vector<LeaseEvent>& events) {
  std::vector<PeerEvent> out;
  for (const auto& ev : events) {
    if (own_ && ev.lease.key() == *own_) continue;
    if (ev.type == LeaseEventType::kAdded) {
      upsert(ev.lease, &out);
    } else if (auto it = peers_.find(ev.lease.key()); it != peers_.end()) {
      out.push_back({PeerEvent::Type::kRemoved, it->second});
      erase(it);
    }
  }
  return out;
}

std::vector<PeerEvent> PeerCache::resync(const std::vector<Lease>& snapshot) {
  std::vector<PeerEvent> removed, added;
  std::set<LeaseKey> present;
  for (const auto& l : snapshot) {
    if (own_ && l.key() == *own_) continue;
    present.insert(l.key());
  }
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (!present.count(it->first)) {
      removed.push_back({PeerEvent::Type::kRemoved, it->second});
      it = erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& l : snapshot) {
    if (own_ && l.key() == *own_) continue;
    upsert(l, &added);
  }
  // upsert() may emit a removal for a changed peer; keep all removals ahead of additions.
  for (auto& e : added)
    if (e.type == PeerEvent::Type::kRemoved) removed.push_back(e);
  for (auto& e : added)
    if (e.type == PeerEvent::Type::kAdded) removed.push_back(e);
  return removed;
}

}  // namespace flannel
