// BatchErrors: what went wrong while a backend applied one batch of peer events. A failure on one
// peer must not stop the others (backend.h), so backends note each failure here, carry on, and
// call throw_if_any() at the end: the daemon then logs one BackendError that names every failed
// peer and the reason, e.g.
//   "2 of 40 peer changes failed: add 10.5.3.0/24: netlink route replace ...: Network is
//    unreachable; remove 10.5.9.0/24: ..."
// The error thrown is a PeerFailures (backend.h): beside the message it lists every failed peer
// (lease key, add or remove, first reason), so the daemon can set those peers aside and retry
// them alone, and says whether anything that belongs to no peer failed too (add(string)).
// Not thread-safe; lives for one batch.
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"

namespace flannel {

class BatchErrors {
 public:
  // A failure of one peer event. Every call counts in the message; peers() keeps the first
  // reason of each peer (a later failure of the same peer, e.g. its clean-up, adds nothing).
  void add(const PeerEvent& ev, const std::string& why) {
    const bool added = ev.type == PeerEvent::Type::kAdded;
    note(std::string(added ? "add " : "remove ") + ev.lease.subnet.str() + ": " + why);
    if (failed_keys_.insert({ev.lease.key(), ev.type}).second)
      peers_.push_back({ev.lease.key(), ev.type, why});
  }
  // A failure that belongs to no peer event (reading the kernel, removing a stale entry, startup
  // reconciliation): only a full sync repairs it.
  void add(const std::string& why) {
    note(why);
    only_peers_ = false;
  }
  size_t count() const { return count_; }

  // Throws PeerFailures summarising the failures, if there were any, out of `total` changes
  // (the first 8 reasons in full, then "and N more").
  void throw_if_any(size_t total) const {
    if (count_ == 0) return;
    std::string msg =
        std::to_string(count_) + " of " + std::to_string(total) + " peer changes failed: ";
    for (size_t i = 0; i < shown_.size(); ++i) msg += (i ? "; " : "") + shown_[i];
    if (count_ > shown_.size()) msg += "; and " + std::to_string(count_ - shown_.size()) + " more";
    throw PeerFailures(msg, peers_, only_peers_);
  }

 private:
  void note(std::string line) {
    ++count_;
    if (shown_.size() < kShown) shown_.push_back(std::move(line));
  }

  static constexpr size_t kShown = 8;
  size_t count_ = 0;
  std::vector<std::string> shown_;
  std::vector<PeerFailure> peers_;
  std::set<std::pair<LeaseKey, PeerEvent::Type>> failed_keys_;  // what peers_ holds
  bool only_peers_ = true;
};

}  // namespace flannel
