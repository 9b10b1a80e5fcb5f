#include "daemon/agent/peer_backoff.h"

#include <algorithm>
#include <utility>

namespace flannel {

PeerBackoff::PeerBackoff(Duration first, Duration cap)
    : first_(std::max(first, Duration(1))), cap_(std::max(cap, first_)) {}

PeerBackoff::Duration PeerBackoff::delay(int attempts) const {
  Duration d = first_;
  for (int i = 1; i < attempts && d < cap_; ++i) d *= 2;  // stops doubling at the cap: no overflow
  return std::min(d, cap_);
}

int PeerBackoff::failed(const LeaseKey& key, Time now) {
  Entry& e = peers_[key];
  ++e.attempts;
  e.next = now + delay(e.attempts);
  return e.attempts;
}

int PeerBackoff::forget(const LeaseKey& key) {
  auto it = peers_.find(key);
  if (it == peers_.end()) return 0;
  int attempts = it->second.attempts;
  peers_.erase(it);
  return attempts;
}

int PeerBackoff::attempts(const LeaseKey& key) const {
  auto it = peers_.find(key);
  return it == peers_.end() ? 0 : it->second.attempts;
}

std::optional<PeerBackoff::Time> PeerBackoff::next_retry(const LeaseKey& key) const {
  auto it = peers_.find(key);
  if (it == peers_.end()) return std::nullopt;
  return it->second.next;
}

std::vector<LeaseKey> PeerBackoff::due(Time now) const {
  std::vector<std::pair<Time, LeaseKey>> ready;
  for (const auto& [key, e] : peers_)
    if (e.next <= now) ready.emplace_back(e.next, key);
  std::stable_sort(ready.begin(), ready.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<LeaseKey> out;
  out.reserve(ready.size());
  for (auto& [when, key] : ready) out.push_back(std::move(key));
  return out;
}

std::optional<PeerBackoff::Time> PeerBackoff::earliest() const {
  std::optional<Time> out;
  for (const auto& [key, e] : peers_)
    if (!out || e.next < *out) out = e.next;
  return out;
}

std::vector<LeaseKey> PeerBackoff::keys() const {
  std::vector<LeaseKey> out;
  out.reserve(peers_.size());
  for (const auto& [key, e] : peers_) out.push_back(key);
  return out;
}

}  // namespace flannel
