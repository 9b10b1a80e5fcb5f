// The backend's side of kHolding: the full peer sync, the deltas, and the peers set aside. A
// peer the backend fails to add (a PeerFailures naming it) is retried on its own with backoff
// (PeerBackoff: peer_retry_first doubling to peer_retry_max) instead of a full sync of every
// peer every retry_pause: one unreachable gateway no longer rewrites the whole table each second
// with an ERROR line each time. What only a full sync repairs still gets one (see agent.h,
// "Peers"). Everything here runs on the agent's thread.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "daemon/agent/agent.h"
#include "daemon/common/logging.h"

namespace flannel {
namespace {

using namespace std::chrono;
using Steady = steady_clock;

// "1s", "5m", "20ms": a wait, for logs.
std::string wait_text(Steady::duration d) {
  auto ms = duration_cast<milliseconds>(d).count();
  if (ms >= 60000 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms >= 1000 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// The adds that failed, by key (first reason), into `adds`. Returns true if anything else failed:
// a removal (what it left behind no peer holds, so only a sync's reconciliation removes it, and
// the agent need not retry the removal of a peer it no longer has) or something of no peer.
bool split_failures(const PeerFailures& failures, std::map<LeaseKey, std::string>* adds) {
  bool other = !failures.only_peers();
  for (const auto& f : failures.peers()) {
    if (f.type == PeerEvent::Type::kAdded) adds->emplace(f.key, f.reason);
    else other = true;
  }
  return other;
}

void log_programmed(const LeaseKey& key, int attempts) {
  FLOG_INFO("Peer {} programmed after {} attempts", key.str(), attempts);
}

}  // namespace

Agent::Restarted Agent::restart_changed(const std::vector<PeerEvent>& changes) {
  Restarted restarted;
  if (set_aside_.empty()) return restarted;
  for (const auto& ev : changes)
    if (int n = set_aside_.forget(ev.lease.key()); n > 0) restarted.emplace(ev.lease.key(), n);
  metrics_.peers_set_aside = set_aside_.size();
  return restarted;
}

void Agent::sync_backend(const Restarted& restarted) {
  count_peers();
  hold_.next_sync_retry.reset();
  if (!backend_ || !backend_->wants_peers()) return;  // no backend: reattach() syncs it all
  std::vector<Lease> all;
  all.reserve(peers_.size());
  for (const auto& [subnet, lease] : peers_.peers()) all.push_back(lease);
  auto error = program([&] { backend_->sync(all); }, nullptr, restarted);
  if (!error) return;
  FLOG_ERROR("Backend {} failed to sync {} peers: {}; retrying", backend_->type(), all.size(),
             *error);
  hold_.next_sync_retry = Clock::now() + duration_cast<Clock::duration>(settings_.retry_pause);
}

void Agent::send_to_backend(const std::vector<PeerEvent>& batch, Steady::time_point arrived) {
  count_peers();
  if (batch.empty() || !backend_ || !backend_->wants_peers()) return;
  std::set<LeaseKey> added;
  size_t adds = 0;
  for (const auto& ev : batch)
    if (ev.type == PeerEvent::Type::kAdded) added.insert(ev.lease.key()), ++adds;
  FLOG_V(1, "Applying {} peer changes ({} added, {} removed)", batch.size(), adds,
         batch.size() - adds);
  Restarted restarted = restart_changed(batch);
  if (auto error = program([&] { backend_->apply(batch); }, &added, restarted)) {
    // The kernel may now differ from the peer set: a full sync shortly brings it back.
    FLOG_ERROR("Backend {} failed to apply {} peer changes: {}; a full sync follows",
               backend_->type(), batch.size(), *error);
    hold_.next_sync_retry = Clock::now() + duration_cast<Clock::duration>(settings_.retry_pause);
    return;
  }
  auto took = duration<double>(Steady::now() - arrived).count();
  metrics_.peer_apply_seconds.observe(took);
  FLOG_V(2, "Peer changes applied in {} us ({} changes, from the watch answer to the last ack)",
         static_cast<long>(took * 1e6), batch.size());
}

bool Agent::set_aside_due() const {
  if (!backend_) return false;  // retried by the full sync of reattach()
  auto next = set_aside_.earliest();
  return next && Steady::now() >= *next;
}

AgentEvent Agent::retry_set_aside() {
  std::vector<PeerEvent> batch;
  std::set<LeaseKey> tried;
  for (const auto& key : set_aside_.due(Steady::now())) {
    auto it = peers_.peers().find(key);
    if (it == peers_.peers().end()) continue;  // no longer a peer: settle_set_aside forgets it
    batch.push_back({PeerEvent::Type::kAdded, it->second});
    tried.insert(key);
  }
  FLOG_V(1, "Retrying {} peers set aside", batch.size());
  auto call = [&] {
    if (!batch.empty()) backend_->apply(batch);
  };
  if (auto error = program(call, &tried, {})) {
    FLOG_ERROR("Backend {} failed to retry {} peers set aside: {}; a full sync follows",
               backend_->type(), batch.size(), *error);
    hold_.next_sync_retry = Clock::now() + duration_cast<Clock::duration>(settings_.retry_pause);
  }
  return AgentEvent::kOk;
}

std::optional<std::string> Agent::program(const std::function<void()>& call,
                                          const std::set<LeaseKey>* tried,
                                          const Restarted& restarted) {
  try {
    call();
  } catch (const PeerFailures& e) {
    if (settle_set_aside(&e, tried, restarted)) return std::string(e.what());
    return std::nullopt;
  } catch (const std::exception& e) {
    // Nothing says which peers failed: the full sync that follows settles them. The set-aside
    // peers just retried count as failed again, so they are not due again at once.
    if (tried)
      for (const auto& key : *tried)
        if (set_aside_.contains(key)) set_aside_.failed(key, Steady::now());
    return std::string(e.what());
  }
  settle_set_aside(nullptr, tried, restarted);
  return std::nullopt;
}

bool Agent::settle_set_aside(const PeerFailures* failures, const std::set<LeaseKey>* tried,
                             const Restarted& restarted) {
  const auto now = Steady::now();
  std::map<LeaseKey, std::string> failed;  // adds that failed, by key
  const bool full_sync = failures && split_failures(*failures, &failed);
  const auto& peers = peers_.peers();
  for (const auto& key : set_aside_.keys()) {
    if (!peers.count(key)) {
      set_aside_.forget(key);  // removed from the peer set (a resync, our own lease moved)
      continue;
    }
    if (tried && !tried->count(key)) continue;
    auto it = failed.find(key);
    if (it == failed.end()) {
      log_programmed(key, set_aside_.forget(key) + 1);
      continue;
    }
    int n = set_aside_.failed(key, now);
    FLOG_V(1, "Peer {} still cannot be programmed (attempt {}): {}; retrying in {}", key.str(), n,
           it->second, wait_text(set_aside_.delay(n)));
    failed.erase(it);
  }
  for (const auto& [key, n] : restarted)  // changed since set aside, and the new value went in
    if (peers.count(key) && (!tried || tried->count(key)) && !failed.count(key))
      log_programmed(key, n + 1);
  for (const auto& [key, why] : failed) {
    if (!peers.count(key)) continue;  // removed later in the same batch
    set_aside_.failed(key, now);
    FLOG_WARNING(
        "Peer {} could not be programmed: {}; set aside, retrying in {} (backing off to {})",
        key.str(), why, wait_text(set_aside_.delay(1)), wait_text(set_aside_.cap()));
  }
  metrics_.peers_set_aside = set_aside_.size();
  return full_sync;
}

}  // namespace flannel
