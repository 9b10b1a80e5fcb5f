// PeerBackoff: the peers the backend failed to program, set aside, each with its own retry
// time. A peer's first failure sets it aside with a retry `first` later; every failed retry
// doubles the wait, up to `cap` (the agent uses 1 s doubling to 5 min: 1, 2, 4 ... 256, 300,
// 300 s). The agent retries what is due(), records the outcome with failed() or forget(), and
// sleeps until earliest(). Pure logic: the time is always passed in (steady clock, so a step of
// the wall clock neither stalls nor hurries a retry).
//
// Thread safety: none; the agent's loop owns it.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <vector>

#include "core/lease.h"

namespace flannel {

class PeerBackoff {
 public:
  using Time = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  // `first` > 0 and `cap` >= `first` (anything else is raised to that).
  PeerBackoff(Duration first, Duration cap);

  // Records a failed attempt to program `key` at `now` and returns how many attempts have failed
  // since it was set aside (1: it has just been set aside). Its next retry is due at
  // now + first * 2^(attempts - 1), at most now + cap.
  int failed(const LeaseKey& key, Time now);
  // Takes `key` out (it was programmed, changed or removed); returns the attempts that had
  // failed, 0 if it was not set aside.
  int forget(const LeaseKey& key);

  bool contains(const LeaseKey& key) const { return peers_.count(key) != 0; }
  int attempts(const LeaseKey& key) const;                    // failed attempts; 0 = not set aside
  std::optional<Time> next_retry(const LeaseKey& key) const;  // nullopt = not set aside
  // The wait before the next retry after `attempts` failures: first * 2^(attempts-1), capped.
  Duration delay(int attempts) const;
  Duration cap() const { return cap_; }

  // The peers whose retry is due at `now`, the longest overdue first (ties: key order).
  std::vector<LeaseKey> due(Time now) const;
  // The earliest retry time of any peer; nullopt when none is set aside.
  std::optional<Time> earliest() const;
  std::vector<LeaseKey> keys() const;  // in key order
  size_t size() const { return peers_.size(); }
  bool empty() const { return peers_.empty(); }

 private:
  struct Entry {
    int attempts = 0;
    Time next;
  };
  Duration first_, cap_;
  std::map<LeaseKey, Entry> peers_;
};

}  // namespace flannel
