// BatchErrors: what went wrong while a backend applied one batch of peer events. A failure on one
// peer must not stop the others (backend.h), so backends note each failure here, carry on, and
// call throw_if_any() at the end: the daemon then logs one BackendError that names every failed
// peer and the reason, e.g.
//   "2 of 40 peer changes failed: add 10.5.3.0/24: netlink route replace ...: Network is
//    unreachable; remove 10.5.9.0/24: ..."
#pragma once

#include <string>
#include <vector>

#include "backends/backend.h"

namespace flannel {

class BatchErrors {
 public:
  void add(const PeerEvent& ev, const std::string& why) {
    ++count_;
    if (shown_.size() < kShown) {
      shown_.push_back(std::string(ev.type == PeerEvent::Type::kAdded ? "add " : "remove ") +
                       ev.lease.subnet.str() + ": " + why);
    }
  }
  // Also used for failures that do not belong to one event (e.g. startup reconciliation).
  void add(const std::string& why) {
    ++count_;
    if (shown_.size() < kShown) shown_.push_back(why);
  }
  size_t count() const { return count_; }

  // Throws BackendError summarising the failures, if there were any, out of `total` changes
  // (the first 8 reasons in full, then "and N more").
  void throw_if_any(size_t total) const {
    if (count_ == 0) return;
    std::string msg =
        std::to_string(count_) + " of " + std::to_string(total) + " peer changes failed: ";
    for (size_t i = 0; i < shown_.size(); ++i) msg += (i ? "; " : "") + shown_[i];
    if (count_ > shown_.size()) msg += "; and " + std::to_string(count_ - shown_.size()) + " more";
    throw BackendError(msg);
  }

 private:
  static constexpr size_t kShown = 8;
  size_t count_ = 0;
  std::vector<std::string> shown_;
};

}  // namespace flannel
