// The SQLite watch wakes on change, not on a timer (issue 22): an idle watch looks at the file
// about once a second; without notifications (FLANNEL_SQLITE_NOTIFY=off, as on a file system
// that has none) every event still arrives within that safety interval; a lease that expires
// while nobody writes wakes the watch at its expiration. Cross-process wake-up latency is in
// sqlite_store_test.cc (EventsFromAnotherProcessWakeTheWatchAtOnce); a replaced file in
// reset_test.cc.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <thread>

#include "tests/stores/contract_util.h"
#include "tests/stores/sqlite/harness.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

uint64_t revision_of(Store& store) {
  LeaseList list;
  EXPECT_TRUE(store.list_leases(&list).ok());
  return list.revision;
}

TEST(SqliteWatch, AnIdleWatchReadsTheFileOnlyWhenItsStampMoves) {
  SqliteHarness h;
  auto store = h.open();
  ASSERT_TRUE(store->watch_notified());
  const uint64_t rev = revision_of(*store);
  // Creating the file was a write: its notification may still be on its way. A first short
  // watch takes it (and its few quick looks), so the one measured below starts quiet.
  store->watch_leases(rev, 200ms, std::stop_token{});
  const uint64_t before = store->watch_reads();
  WatchResult r = store->watch_leases(rev, 2500ms, std::stop_token{});
  EXPECT_EQ(r.status.code, StoreCode::kTimeout) << r.status.message;
  const uint64_t reads = store->watch_reads() - before;
  std::printf("an idle watch of 2.5 s looked at the file %llu times\n",
              static_cast<unsigned long long>(reads));
  // The first look only: each quiet safety check (once a second) compared the files' stamps
  // and found them unchanged (one full look per 10 s regardless; 20 ms polls read ~125 times).
  EXPECT_LE(reads, 2u);
}

TEST(SqliteWatch, WithoutNotificationsEventsArriveWithinTheSafetyInterval) {
  SqliteHarness h;
  ASSERT_EQ(setenv("FLANNEL_SQLITE_NOTIFY", "off", 1), 0);
  auto watcher = h.open();
  unsetenv("FLANNEL_SQLITE_NOTIFY");
  ASSERT_FALSE(watcher->watch_notified());
  auto writer = h.open();
  uint64_t rev = revision_of(*watcher);
  for (int i = 0; i < 3; ++i) {
    SteadyClock::time_point committed;
    std::jthread write([&] {
      std::this_thread::sleep_for(100ms);  // while the watch sleeps (not synchronisation)
      Lease l = make_lease("10.9." + std::to_string(i) + ".0/24", "192.168.0.1");
      Lease created;
      EXPECT_TRUE(writer->create_lease(l, 60s, &created).ok());
      committed = SteadyClock::now();
    });
    WatchResult r = watcher->watch_leases(rev, 5s, std::stop_token{});
    const auto received = SteadyClock::now();
    write.join();
    ASSERT_TRUE(r.status.ok()) << r.status.message;
    ASSERT_EQ(r.events.size(), 1u);
    rev = r.revision;
    EXPECT_LT(received - committed, 1200ms) << "event " << i << " waited past the safety check";
  }
}

TEST(SqliteWatch, ALeaseExpiringWhileNobodyWritesWakesTheWatchAtItsExpiration) {
  SqliteHarness h;
  auto writer = h.open();
  auto watcher = h.open();
  Lease created;
  ASSERT_TRUE(writer->create_lease(make_lease("10.9.7.0/24", "192.168.0.7"), 1s, &created).ok());
  const auto expires = SteadyClock::now() + 1s;
  uint64_t rev = revision_of(*watcher);
  WatchResult r = watcher->watch_leases(rev, 5s, std::stop_token{});
  const auto received = SteadyClock::now();
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].type, LeaseEventType::kRemoved);
  EXPECT_LT(received - expires, 300ms) << "the expiry waited for something else";
}

}  // namespace
}  // namespace flannel::testing
