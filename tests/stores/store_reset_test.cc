// The store-reset part of the Store contract (store.h, "Store reset"): after the backing store
// loses its data under running connections (harness wipe_and_restart()), a blocked watcher and
// every connection's next call report kStoreReset, exactly once, and then the store works.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <stop_token>
#include <string>
#include <thread>

#include "tests/stores/contract_util.h"
#include "tests/stores/store_contract.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using SteadyClock = std::chrono::steady_clock;

int64_t ms(SteadyClock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// Writes `n` leases, so the store's revision is well above where a fresh store starts.
void fill(Store& store, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    Lease l = make_lease("10.128.0.0/24", "192.168.3.1");
    l.subnet = nth_subnet(i);
    ASSERT_TRUE(IsOk(store.create_lease(l, 600s, nullptr)));
  }
}

TEST_P(StoreContract, ResetWakesABlockedWatcher) {
  auto writer = harness_->connect();
  auto watcher = harness_->connect();
  ASSERT_NO_FATAL_FAILURE(fill(*writer, 8));
  LeaseList start;
  ASSERT_TRUE(IsOk(watcher->list_leases(&start)));

  std::atomic<bool> saw_event{false};
  std::atomic<int64_t> ended_ns{0};
  WatchResult ended;  // the first result that is not an event, a timeout or a transport error
  std::jthread t([&](std::stop_token stop) {
    uint64_t rev = start.revision;
    const auto deadline = SteadyClock::now() + 60s;
    while (!stop.stop_requested() && SteadyClock::now() < deadline) {
      WatchResult r = watcher->watch_leases(rev, 10s, stop);
      if (r.status.ok()) {
        rev = r.revision;
        saw_event = true;
        continue;
      }
      if (r.status.code == StoreCode::kTimeout) {
        rev = std::max(rev, r.revision);
        continue;
      }
      if (r.status.code == StoreCode::kUnavailable) {
        // The store is down for a moment during the wipe: retry after a pause, as agents do
        // (a backoff between retries, not synchronisation).
        std::this_thread::sleep_for(20ms);
        continue;
      }
      ended = std::move(r);
      break;
    }
    ended_ns = SteadyClock::now().time_since_epoch().count();
  });
  // The watcher is watching once it has seen this write; then it blocks in its next watch.
  Lease l = make_lease("10.5.99.0/24", "192.168.3.99");
  ASSERT_TRUE(IsOk(writer->create_lease(l, 600s, nullptr)));
  ASSERT_TRUE(wait_until([&] { return saw_event.load(); }, 10s)) << "watcher saw no event";

  const auto t_wipe = SteadyClock::now();
  harness_->wipe_and_restart();
  const auto t_back = SteadyClock::now();
  const bool woke = wait_until([&] { return ended_ns.load() != 0; }, 10s);
  t.request_stop();
  t.join();
  ASSERT_TRUE(woke) << "the blocked watcher never reported the reset";
  EXPECT_TRUE(HasCode(ended.status, StoreCode::kStoreReset));
  EXPECT_TRUE(ended.events.empty());
  const auto noticed = SteadyClock::time_point(SteadyClock::duration(ended_ns.load()));
  const auto latency = noticed > t_back ? noticed - t_back : SteadyClock::duration::zero();
  std::printf(
      "[ reset ] %s: wipe took %lld ms; watcher noticed the reset %lld ms after the store "
      "was back\n",
      GetParam().name.c_str(), static_cast<long long>(ms(t_back - t_wipe)),
      static_cast<long long>(ms(latency)));
  EXPECT_LT(latency, harness_->reset_notice_bound())
      << "reset noticed " << ms(latency) << " ms after the store came back";
}

TEST_P(StoreContract, EveryConnectionReportsResetOnceThenWorks) {
  auto a = harness_->connect();
  auto b = harness_->connect();
  ASSERT_TRUE(IsOk(a->set_config(R"({"Network":"10.5.0.0/16"})")));
  ASSERT_NO_FATAL_FAILURE(fill(*a, 8));
  LeaseList before;
  ASSERT_TRUE(IsOk(b->list_leases(&before)));
  ASSERT_EQ(before.leases.size(), 8u);

  harness_->wipe_and_restart();

  // Each connection's next call, whatever it is, reports the reset.
  LeaseList list;
  EXPECT_TRUE(HasCode(a->list_leases(&list), StoreCode::kStoreReset));
  std::string json;
  EXPECT_TRUE(HasCode(b->get_config(&json), StoreCode::kStoreReset));

  // Then both work against the new, empty store, and never report that reset again.
  EXPECT_TRUE(HasCode(b->get_config(&json), StoreCode::kNotFound));
  ASSERT_TRUE(IsOk(a->list_leases(&list)));
  EXPECT_TRUE(list.leases.empty()) << list.leases.size() << " leases survived the wipe";
  LeaseList from_b;
  ASSERT_TRUE(IsOk(b->list_leases(&from_b)));

  Lease mine;
  ASSERT_TRUE(IsOk(a->create_lease(make_lease("10.5.7.0/24", "192.168.0.7"), 60s, &mine)));
  uint64_t rev = from_b.revision;
  auto seen = watch_until(
      *b, &rev, [](const std::vector<LeaseEvent>& evs) { return !evs.empty(); }, 10s);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].type, LeaseEventType::kAdded);
  EXPECT_EQ(seen[0].lease.subnet, mine.subnet);
  EXPECT_EQ(seen[0].lease.revision, mine.revision);

  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Lease got;
    ASSERT_TRUE(IsOk(b->get_lease(mine.subnet, &got)));
    ASSERT_TRUE(IsOk(a->renew_lease(got, 60s, &mine)));
    ASSERT_TRUE(IsOk(b->list_leases(&list)));
    EXPECT_EQ(list.leases.size(), 1u);
    WatchResult r = b->watch_leases(list.revision, 100ms, std::stop_token{});
    EXPECT_TRUE(HasCode(r.status, StoreCode::kTimeout));
  }
  ASSERT_TRUE(IsOk(a->delete_lease(mine.subnet, mine.revision)));
}

// A watch that was given a revision of the store before the reset (another call of the same
// connection already reported the reset) must not wait for the new store to reach it.
TEST_P(StoreContract, WatchWithARevisionFromBeforeTheResetSaysListAgain) {
  auto a = harness_->connect();
  ASSERT_NO_FATAL_FAILURE(fill(*a, 8));
  LeaseList old_list;
  ASSERT_TRUE(IsOk(a->list_leases(&old_list)));

  harness_->wipe_and_restart();
  LeaseList list;
  EXPECT_TRUE(HasCode(a->list_leases(&list), StoreCode::kStoreReset));

  const auto t0 = SteadyClock::now();
  WatchResult r = a->watch_leases(old_list.revision, 5s, std::stop_token{});
  EXPECT_TRUE(HasCode(r.status, StoreCode::kHistoryGone));
  EXPECT_LT(SteadyClock::now() - t0, 2s);
  ASSERT_TRUE(IsOk(a->list_leases(&list)));
  EXPECT_TRUE(list.leases.empty());
}

}  // namespace
}  // namespace flannel::testing
