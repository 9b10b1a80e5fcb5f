// The deadlines of the agent's periodic duties (renewal, lease check, backend check, retries),
// on the agent's Clock. Used by the agent's own files only.
#pragma once

#include <chrono>
#include <optional>

#include "core/lease.h"

namespace flannel {

// True once the deadline `t` (if any) has passed.
inline bool due(const std::optional<Clock::time_point>& t) { return t && Clock::now() >= *t; }

// The next deadline of a duty due every `interval` from now, or none when it is 0 (never).
template <class Duration>
std::optional<Clock::time_point> every(Duration interval) {
  if (interval.count() <= 0) return std::nullopt;
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(interval);
}

}  // namespace flannel
