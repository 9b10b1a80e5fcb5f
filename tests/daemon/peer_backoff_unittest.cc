// PeerBackoff: the waits of a peer set aside (first, doubling, capped), forget, and the order in
// which due peers come out. Pure logic: every time is given, nothing sleeps.
#include "daemon/agent/peer_backoff.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

namespace flannel {
namespace {

using namespace std::chrono_literals;
using Time = PeerBackoff::Time;

const LeaseKey kA{IP4Net::parse("10.5.7.0/24")};
const LeaseKey kB{IP4Net::parse("10.5.8.0/24")};
const LeaseKey kC{IP4Net::parse("10.5.9.0/24")};
const Time t0{};  // any origin: the class only adds to what it is given

TEST(PeerBackoff, WaitsOneSecondThenDoublesUpToFiveMinutes) {
  PeerBackoff b(1s, 5min);
  Time now = t0;
  std::vector<std::chrono::seconds> waits;
  for (int i = 1; i <= 12; ++i) {
    EXPECT_EQ(b.failed(kA, now), i);
    auto next = *b.next_retry(kA);
    waits.push_back(std::chrono::duration_cast<std::chrono::seconds>(next - now));
    now = next;  // retried exactly when due, failed again
  }
  const std::vector<std::chrono::seconds> want{1s,  2s,   4s,   8s,   16s,  32s,
                                               64s, 128s, 256s, 300s, 300s, 300s};
  EXPECT_EQ(waits, want);
  EXPECT_EQ(b.attempts(kA), 12);
  EXPECT_EQ(b.delay(1'000'000), 5min);  // no overflow however long it fails
}

TEST(PeerBackoff, ForgetTakesThePeerOutAndItStartsAgainAtTheFirstWait) {
  PeerBackoff b(1s, 5min);
  b.failed(kA, t0);
  b.failed(kA, t0 + 1s);
  b.failed(kA, t0 + 3s);
  EXPECT_EQ(b.forget(kA), 3);
  EXPECT_FALSE(b.contains(kA));
  EXPECT_EQ(b.attempts(kA), 0);
  EXPECT_FALSE(b.next_retry(kA));
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(b.earliest());
  EXPECT_EQ(b.forget(kA), 0);  // twice: nothing
  EXPECT_EQ(b.failed(kA, t0 + 10s), 1);
  EXPECT_EQ(*b.next_retry(kA), t0 + 11s);
}

TEST(PeerBackoff, DueListsTheOverduePeersLongestOverdueFirst) {
  PeerBackoff b(1s, 5min);
  b.failed(kC, t0);          // due at 1 s
  b.failed(kA, t0 + 500ms);  // due at 1.5 s
  b.failed(kB, t0);
  b.failed(kB, t0 + 1s);  // second failure: due at 3 s
  EXPECT_TRUE(b.due(t0 + 999ms).empty());
  EXPECT_EQ(b.due(t0 + 1s), std::vector<LeaseKey>{kC});  // due exactly at its time
  EXPECT_EQ(b.due(t0 + 2s), (std::vector<LeaseKey>{kC, kA}));
  EXPECT_EQ(b.due(t0 + 10s), (std::vector<LeaseKey>{kC, kA, kB}));
  EXPECT_EQ(*b.earliest(), t0 + 1s);
  EXPECT_EQ(b.keys(), (std::vector<LeaseKey>{kA, kB, kC}));
  EXPECT_EQ(b.size(), 3u);
  b.forget(kC);
  EXPECT_EQ(*b.earliest(), t0 + 1500ms);
}

TEST(PeerBackoff, PeersDueAtTheSameTimeComeInKeyOrder) {
  PeerBackoff b(1s, 5min);
  b.failed(kC, t0);
  b.failed(kA, t0);
  b.failed(kB, t0);
  EXPECT_EQ(b.due(t0 + 1s), (std::vector<LeaseKey>{kA, kB, kC}));
}

TEST(PeerBackoff, ABadCapOrFirstWaitIsRaisedToSomethingThatWorks) {
  PeerBackoff b(0s, 0s);  // nothing may be due at the very moment it failed, forever
  b.failed(kA, t0);
  EXPECT_GT(*b.next_retry(kA), t0);
  PeerBackoff c(2s, 1s);  // cap below the first wait: the first wait
  c.failed(kA, t0);
  c.failed(kA, t0);
  EXPECT_EQ(*c.next_retry(kA), t0 + 2s);
}

}  // namespace
}  // namespace flannel
