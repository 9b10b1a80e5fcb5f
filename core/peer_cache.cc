#include "core/peer_cache.h"

#include <algorithm>
#include <utility>

namespace flannel {
namespace {

// True when two of the spans share an address (sorts them).
template <class Addr>
bool sorted_spans_overlap(std::vector<std::pair<Addr, Addr>>* spans) {
  std::sort(spans->begin(), spans->end());
  for (size_t i = 1; i < spans->size(); ++i)
    if ((*spans)[i].first <= (*spans)[i - 1].second) return true;
  return false;
}

// True when two of the leases snapshot[i], i in `indexes`, share an address: sorting their spans
// is cheaper than building an index, and enough to know that no lease has to give way.
bool any_overlap(const std::vector<Lease>& snapshot, const std::vector<size_t>& indexes) {
  std::vector<std::pair<uint32_t, uint32_t>> v4;
  std::vector<std::pair<U128, U128>> v6;
  v4.reserve(indexes.size());
  for (size_t i : indexes) {
    const Lease& l = snapshot[i];
    if (l.key().has_ipv4()) v4.push_back(span_of(l.subnet));
    if (l.ipv6_subnet) v6.push_back(span_of(*l.ipv6_subnet));
  }
  return sorted_spans_overlap(&v4) || sorted_spans_overlap(&v6);
}

Refusal overlap_refusal(const Lease& loser, const Lease& winner) {
  auto created = [](const Lease& l) {
    return l.created ? "revision " + std::to_string(l.created) : std::string("unknown");
  };
  return Refusal{RefusalReason::kOverlapsPeer,
                 "lease " + loser.key().str() + " overlaps the older lease " + winner.key().str() +
                     " (created at " + created(winner) + ", this one at " + created(loser) +
                     "); the older one is kept"};
}

}  // namespace

void PeerCache::set_own(std::optional<LeaseKey> own) {
  own_ = own;
  if (rules_) rules_->own = own;
  if (!own_) return;
  if (auto it = peers_.find(*own_); it != peers_.end()) erase(it);
}

void PeerCache::set_rules(AdmissionRules rules) {
  rules_ = std::move(rules);
  rules_->own = own_;
}

std::vector<PeerCache::Refused> PeerCache::take_new_refusals() {
  return std::exchange(new_refusals_, {});
}

bool PeerCache::admit(const Lease& lease, std::vector<PeerEvent>* out) {
  if (!rules_) return true;
  auto refusal = check_peer_lease(lease, *rules_);
  if (!refusal) {
    clear_refused(lease.key());
    return true;
  }
  refuse(lease, std::move(*refusal), out);
  return false;
}

void PeerCache::refuse(const Lease& lease, Refusal refusal, std::vector<PeerEvent>* out) {
  if (auto it = peers_.find(lease.key()); it != peers_.end()) {
    out->push_back({PeerEvent::Type::kRemoved, it->second});
    erase(it);
  }
  auto it = refused_.find(lease.key());
  const bool news = it == refused_.end() || it->second.refusal != refusal;
  Refused r{lease, std::move(refusal)};
  if (news) new_refusals_.push_back(r);
  set_refused(lease.key(), std::move(r));
}

void PeerCache::set_refused(const LeaseKey& key, Refused r) {
  clear_refused(key);
  if (r.refusal.reason == RefusalReason::kOverlapsPeer) ++overlap_losers_;
  refused_.emplace(key, std::move(r));
}

void PeerCache::clear_refused(const LeaseKey& key) {
  auto it = refused_.find(key);
  if (it == refused_.end()) return;
  if (it->second.refusal.reason == RefusalReason::kOverlapsPeer) --overlap_losers_;
  refused_.erase(it);
}

void PeerCache::insert_peer(const Lease& lease) {
  const LeaseKey key = lease.key();
  peers_.emplace(key, lease);
  if (key.ipv6_subnet) {
    ++ipv6_peers_;
    auto [first, last] = span_of(*key.ipv6_subnet);
    v6_spans_.insert(first, last, key);
  }
}

std::map<LeaseKey, Lease>::iterator PeerCache::erase(std::map<LeaseKey, Lease>::iterator it) {
  const LeaseKey& key = it->first;
  if (key.ipv6_subnet) {
    --ipv6_peers_;
    v6_spans_.erase(span_of(*key.ipv6_subnet).first);
  }
  return peers_.erase(it);
}

// peers_ is ordered by IPv4 subnet (address, then prefix) and its IPv4 subnets are disjoint, so
// it is its own index: the last peer starting at or before the subnet may contain it, and the
// peers starting inside it overlap it. (IPv6-only keys, 0.0.0.0/0, sort first and are skipped.)
template <class F>
void PeerCache::for_each_v4_overlap(const IP4Net& subnet, F&& f) const {
  auto [first, last] = span_of(subnet);
  auto it = peers_.upper_bound(LeaseKey{IP4Net{IP4{first}, 64}});
  if (it != peers_.begin()) {
    auto before = std::prev(it);
    if (before->first.has_ipv4() && before->first.subnet.overlaps(subnet)) f(before->first);
  }
  for (; it != peers_.end() && it->first.subnet.ip.value <= last; ++it) f(it->first);
}

const Lease* PeerCache::oldest_overlap(const LeaseKey& key) const {
  const Lease* oldest = nullptr;
  auto consider = [&](const LeaseKey& other) {
    if (other == key) return;
    const Lease& peer = peers_.at(other);
    if (!oldest || wins_overlap(peer, *oldest)) oldest = &peer;
  };
  if (key.has_ipv4()) for_each_v4_overlap(key.subnet, consider);
  if (key.ipv6_subnet) {
    auto [first, last] = span_of(*key.ipv6_subnet);
    v6_spans_.for_each_overlap(first, last, consider);
  }
  return oldest;
}

bool PeerCache::upsert(const Lease& lease, std::vector<PeerEvent>* out) {
  const size_t peers_before = peers_.size();
  if (!admit(lease, out)) return peers_.size() < peers_before && overlap_losers_ > 0;
  if (const Lease* rival = oldest_overlap(lease.key())) {
    if (wins_overlap(*rival, lease)) {
      refuse(lease, overlap_refusal(lease, *rival), out);
      return false;
    }
    // Older than every peer it overlaps: kept aside quietly until every lease is judged again,
    // which puts it in and the younger ones out.
    set_refused(lease.key(), Refused{lease, overlap_refusal(*rival, lease)});
    return true;
  }
  auto it = peers_.find(lease.key());
  if (it == peers_.end()) {
    insert_peer(lease);
    out->push_back({PeerEvent::Type::kAdded, lease});
    return false;
  }
  if (it->second.attrs != lease.attrs) {
    out->push_back({PeerEvent::Type::kRemoved, it->second});
    out->push_back({PeerEvent::Type::kAdded, lease});
  }
  it->second = lease;  // a renewal only refreshes expiration and revisions
  return false;
}

std::vector<PeerEvent> PeerCache::apply(const std::vector<LeaseEvent>& events) {
  std::vector<PeerEvent> out;
  bool again = false;
  for (const auto& ev : events) {
    if (own_ && ev.lease.key() == *own_) continue;
    if (ev.type == LeaseEventType::kAdded) {
      again = upsert(ev.lease, &out) || again;
      continue;
    }
    clear_refused(ev.lease.key());
    if (auto it = peers_.find(ev.lease.key()); it != peers_.end()) {
      out.push_back({PeerEvent::Type::kRemoved, it->second});
      erase(it);
      again = again || overlap_losers_ > 0;  // it may have held another lease back
    }
  }
  if (again) {
    auto more = judge_again();
    out.insert(out.end(), std::make_move_iterator(more.begin()),
               std::make_move_iterator(more.end()));
  }
  return out;
}

std::vector<PeerEvent> PeerCache::judge_again() {
  std::vector<Lease> known;
  known.reserve(peers_.size() + refused_.size());
  for (const auto& [key, lease] : peers_) known.push_back(lease);
  for (const auto& [key, r] : refused_) known.push_back(r.lease);
  return resync(known);
}

std::vector<size_t> PeerCache::admit_all(const std::vector<Lease>& snapshot,
                                         std::set<LeaseKey>* refused, std::vector<PeerEvent>* out) {
  std::vector<size_t> admitted;
  admitted.reserve(snapshot.size());
  for (size_t i = 0; i < snapshot.size(); ++i) {
    const Lease& l = snapshot[i];
    if (own_ && l.key() == *own_) continue;
    if (admit(l, out)) {
      admitted.push_back(i);
    } else {
      refused->insert(l.key());
    }
  }
  return admitted;
}

std::vector<size_t> PeerCache::drop_overlap_losers(const std::vector<Lease>& snapshot,
                                                   std::vector<size_t> admitted,
                                                   std::set<LeaseKey>* refused,
                                                   std::vector<PeerEvent>* out) {
  DisjointSpans<uint32_t, size_t> v4;
  DisjointSpans<U128, size_t> v6;
  std::vector<size_t> kept;
  std::vector<std::pair<size_t, size_t>> lost;  // (loser, the kept lease it overlaps)
  auto place = [&](const std::vector<size_t>& order) {
    v4.clear();
    v6.clear();
    kept.clear();
    lost.clear();
    for (size_t i : order) {
      const LeaseKey key = snapshot[i].key();
      std::optional<size_t> rival;
      auto note = [&](size_t j) {
        if (!rival && snapshot[j].key() != key) rival = j;  // a key listed twice is one lease
      };
      auto s4 = key.has_ipv4() ? span_of(key.subnet) : std::pair<uint32_t, uint32_t>{};
      auto s6 = key.ipv6_subnet ? span_of(*key.ipv6_subnet) : std::pair<U128, U128>{};
      if (key.has_ipv4()) v4.for_each_overlap(s4.first, s4.second, note);
      if (key.ipv6_subnet) v6.for_each_overlap(s6.first, s6.second, note);
      if (rival) {
        lost.emplace_back(i, *rival);
        continue;
      }
      if (key.has_ipv4()) v4.insert(s4.first, s4.second, i);
      if (key.ipv6_subnet) v6.insert(s6.first, s6.second, i);
      kept.push_back(i);
    }
  };
  if (!any_overlap(snapshot, admitted)) return admitted;  // the usual case
  std::sort(admitted.begin(), admitted.end(),
            [&](size_t a, size_t b) { return wins_overlap(snapshot[a], snapshot[b]); });
  place(admitted);  // in the order of creation: of overlapping leases the first keeps its place
  for (auto [loser, winner] : lost) {
    refuse(snapshot[loser], overlap_refusal(snapshot[loser], snapshot[winner]), out);
    refused->insert(snapshot[loser].key());
  }
  std::sort(kept.begin(), kept.end());  // back to the snapshot's order
  return kept;
}

std::vector<PeerEvent> PeerCache::resync(const std::vector<Lease>& snapshot) {
  std::vector<PeerEvent> out;
  std::set<LeaseKey> refused;
  std::vector<size_t> admitted = admit_all(snapshot, &refused, &out);
  admitted = drop_overlap_losers(snapshot, std::move(admitted), &refused, &out);
  for (auto it = refused_.begin(); it != refused_.end();) {
    if (refused.count(it->first)) {
      ++it;
      continue;
    }
    const LeaseKey gone = it++->first;
    clear_refused(gone);
  }
  {
    std::set<LeaseKey> present;
    for (size_t i : admitted) present.insert(snapshot[i].key());
    for (auto it = peers_.begin(); it != peers_.end();) {
      if (!present.count(it->first)) {
        out.push_back({PeerEvent::Type::kRemoved, it->second});
        it = erase(it);
      } else {
        ++it;
      }
    }
  }
  // The cache first, the events after: the cache's records are then allocated one after another
  // rather than each beside a transient copy for its event, which would leave a hole next to
  // every record once the events are gone (10,000 peers: ~0.5 MB kept resident for nothing).
  std::vector<size_t> added;  // indexes into `snapshot`, in its order
  for (size_t i : admitted) {
    const Lease& l = snapshot[i];
    auto it = peers_.find(l.key());
    if (it == peers_.end()) {
      insert_peer(l);
      added.push_back(i);
      continue;
    }
    if (it->second.attrs != l.attrs) {  // changed: its removal (old attrs) goes with the removals
      out.push_back({PeerEvent::Type::kRemoved, it->second});
      added.push_back(i);
    }
    it->second = l;  // a renewal only refreshes expiration and revisions
  }
  out.reserve(out.size() + added.size());
  for (size_t i : added) out.push_back({PeerEvent::Type::kAdded, snapshot[i]});
  return out;
}

}  // namespace flannel
