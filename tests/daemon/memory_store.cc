#include "tests/daemon/memory_store.h"

namespace flannel::testing {

std::optional<Status> MemoryStore::intercept(Op op) {
  calls_[op]++;
  if (auto it = wipe_at_.find(op); it != wipe_at_.end() && it->second == calls_[op]) {
    wipe_at_.erase(it);
    wipe_locked(true);
  }
  if (reset_pending_) {
    reset_pending_ = false;
    return Status::Error(StoreCode::kStoreReset, "memory store was wiped");
  }
  if (auto it = failures_.find(op); it != failures_.end()) {
    Status s = it->second;
    failures_.erase(it);
    return s;
  }
  return std::nullopt;
}

Status MemoryStore::get_config(std::string* json) {
  std::lock_guard lock(mu_);
  if (auto s = intercept(Op::kGetConfig)) return *s;
  if (!config_) return Status::Error(StoreCode::kNotFound, "no config");
  *json = *config_;
  return Status::Ok();
}

Status MemoryStore::set_config(const std::string& json) {
  std::lock_guard lock(mu_);
  config_ = json;
  return Status::Ok();
}

void MemoryStore::remove_config() {
  std::lock_guard lock(mu_);
  config_.reset();
}

Status MemoryStore::list_leases(LeaseList* out) {
  std::lock_guard lock(mu_);
  if (auto s = intercept(Op::kList)) return *s;
  out->leases.clear();
  for (const auto& [subnet, l] : leases_) out->leases.push_back(l);
  out->revision = revision_;
  return Status::Ok();
}

Status MemoryStore::get_lease(const LeaseKey& subnet, Lease* out) {
  std::lock_guard lock(mu_);
  if (auto s = intercept(Op::kGetLease)) return *s;
  auto it = leases_.find(subnet);
  if (it == leases_.end()) return Status::Error(StoreCode::kNotFound, subnet.str() + " not found");
  *out = it->second;
  return Status::Ok();
}

uint64_t MemoryStore::write(const Lease& lease, std::chrono::seconds ttl, Lease* stored,
                            bool seen) {
  Lease l = lease;
  l.revision = ++revision_;
  auto existing = leases_.find(l.key());
  l.created = existing != leases_.end() ? existing->second.created : l.revision;
  l.expiration.reset();
  if (ttl.count() > 0) l.expiration = Clock::now() + ttl;
  leases_[l.key()] = l;
  if (seen) record({LeaseEventType::kAdded, l, false});
  if (stored) *stored = l;
  return l.revision;
}

void MemoryStore::record(LeaseEvent ev) {
  history_.push_back(std::move(ev));
  changed_.notify_all();
}

Status MemoryStore::create_lease(const Lease& lease, std::chrono::seconds ttl, Lease* created) {
  std::lock_guard lock(mu_);
  if (auto s = intercept(Op::kCreate)) return *s;
  if (leases_.count(lease.key())) return Status::Error(StoreCode::kConflict, "exists");
  write(lease, ttl, created);
  return Status::Ok();
}

Status MemoryStore::renew_lease(const Lease& lease, std::chrono::seconds ttl, Lease* renewed) {
  std::lock_guard lock(mu_);
  if (auto s = intercept(Op::kRenew)) return *s;
  auto it = leases_.find(lease.key());
  if (it == leases_.end()) return Status::Error(StoreCode::kNotFound, "gone");
  if (it->second.revision != lease.revision) return Status::Error(StoreCode::kConflict, "replaced");
  write(lease, ttl, renewed);
  return Status::Ok();
}

Status MemoryStore::delete_lease(const LeaseKey& subnet, uint64_t expected_revision) {
  std::lock_guard lock(mu_);
  if (auto s = intercept(Op::kDelete)) return *s;
  auto it = leases_.find(subnet);
  if (it == leases_.end()) return Status::Error(StoreCode::kNotFound, "gone");
  if (expected_revision && it->second.revision != expected_revision) {
    return Status::Error(StoreCode::kConflict, "replaced");
  }
  leases_.erase(it);
  LeaseEvent ev{LeaseEventType::kRemoved, {}, false};
  ev.lease.subnet = subnet.subnet;
  ev.lease.ipv6_subnet = subnet.ipv6_subnet;
  ev.lease.revision = ++revision_;
  record(ev);
  return Status::Ok();
}

WatchResult MemoryStore::watch_leases(uint64_t after_revision, std::chrono::milliseconds timeout,
                                      std::stop_token stop) {
  std::unique_lock lock(mu_);
  WatchResult w;
  w.revision = after_revision;
  if (auto s = intercept(Op::kWatch)) {
    w.status = *s;
    return w;
  }
  auto pending = [&] {
    return reset_pending_ || after_revision + 1 < oldest_kept_ ||
           (!history_.empty() && history_.back().lease.revision > after_revision);
  };
  if (after_revision + 1 < oldest_kept_) {
    w.status = Status::Error(StoreCode::kHistoryGone, "history dropped");
    return w;
  }
  const auto blocked = blocked_watches_.insert(after_revision);  // seen only while it waits
  const bool woken = changed_.wait_for(lock, stop, timeout, pending);
  blocked_watches_.erase(blocked);
  if (!woken) {
    w.status =
        Status::Error(stop.stop_requested() ? StoreCode::kCancelled : StoreCode::kTimeout, "");
    return w;
  }
  if (reset_pending_) {
    reset_pending_ = false;
    w.status = Status::Error(StoreCode::kStoreReset, "memory store was wiped");
    return w;
  }
  if (after_revision + 1 < oldest_kept_) {
    w.status = Status::Error(StoreCode::kHistoryGone, "history dropped");
    return w;
  }
  for (const auto& ev : history_) {
    if (ev.lease.revision > after_revision) w.events.push_back(ev);
  }
  w.revision = w.events.back().lease.revision;
  return w;
}

Lease MemoryStore::put_lease(Lease lease, std::chrono::seconds ttl, bool seen) {
  std::lock_guard lock(mu_);
  Lease stored;
  write(lease, ttl, &stored, seen);
  return stored;
}

void MemoryStore::remove_lease(const LeaseKey& subnet, bool seen) {
  std::lock_guard lock(mu_);
  if (!leases_.erase(subnet)) return;
  LeaseEvent ev{LeaseEventType::kRemoved, {}, false};
  ev.lease.subnet = subnet.subnet;
  ev.lease.ipv6_subnet = subnet.ipv6_subnet;
  ev.lease.revision = ++revision_;
  if (seen) record(ev);
}

void MemoryStore::drop_history() {
  std::lock_guard lock(mu_);
  history_.clear();
  oldest_kept_ = revision_ + 1;
  changed_.notify_all();
}

void MemoryStore::wipe(bool keep_config) {
  std::lock_guard lock(mu_);
  wipe_locked(keep_config);
}

void MemoryStore::wipe_at(Op op, size_t skip) {
  std::lock_guard lock(mu_);
  wipe_at_[op] = calls_[op] + skip + 1;
}

void MemoryStore::wipe_locked(bool keep_config) {
  leases_.clear();
  history_.clear();
  if (!keep_config) config_.reset();
  revision_ = 1;
  oldest_kept_ = 0;
  reset_pending_ = true;
  changed_.notify_all();
}

void MemoryStore::fail_next(Op op, Status status) {
  std::lock_guard lock(mu_);
  failures_.emplace(op, std::move(status));
}

std::optional<Lease> MemoryStore::lease(const LeaseKey& subnet) const {
  std::lock_guard lock(mu_);
  auto it = leases_.find(subnet);
  if (it == leases_.end()) return std::nullopt;
  return it->second;
}

bool MemoryStore::watching_from(uint64_t after_revision) const {
  std::lock_guard lock(mu_);
  return blocked_watches_.count(after_revision) > 0;
}

size_t MemoryStore::calls(Op op) const {
  std::lock_guard lock(mu_);
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

}  // namespace flannel::testing
