// wait_until: the one poll-until helper of the tests (and of the fixtures in tests/support/).
//
// House rule: no sleep as synchronisation where a condition can be awaited with a deadline. A
// test waits for the thing it needs (a file written, a route gone, a watch blocked in the store,
// a child reaped) with wait_until, never for a fixed time. The sleeps that remain in tests/ say
// on their line why they are not synchronisation: proving an absence (nothing may happen within
// this time), a backoff between retries of an operation, or a moment that has no condition to
// poll and whose shortness can only weaken the test, never fail it.
//
// Header-only, so every test target can use it (daemon_unit_tests links no test support
// library). Thread-safe: it keeps no state; `cond` runs on the calling thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

namespace flannel::testing {

// Calls `cond` until it returns true or `timeout` has passed, and returns its last value.
// Between calls it sleeps 1 ms, then 2, 4, 8 and 10 ms from then on: a condition that holds
// soon is seen within a millisecond or two, one that takes long costs at most 100 calls a
// second. The last call starts at or after the deadline, so a condition that became true during
// the final sleep still counts, and a zero timeout means exactly one call.
inline bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  constexpr std::chrono::milliseconds kLongestPause{10};
  const auto deadline = Clock::now() + timeout;
  std::chrono::milliseconds pause{1};
  for (;;) {
    const bool last = Clock::now() >= deadline;
    if (cond()) return true;
    if (last) return false;
    // Never sleeps past the deadline: the final call comes right after it.
    std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - Clock::now()));
    pause = std::min(pause * 2, kLongestPause);
  }
}

}  // namespace flannel::testing
