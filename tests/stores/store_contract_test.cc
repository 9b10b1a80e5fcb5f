// The Store contract: every case here runs against every Store implementation (see
// store_contract.h). Each case is written so that a store that breaks the promise fails it.
// Cross-connection cases use two Store objects from harness_->connect(), as two hosts would.
#include "tests/stores/store_contract.h"
#include "tests/stores/contract_util.h"
#include "tests/support/wait.h"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <stop_token>
#include <thread>
#include <vector>

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// Checks that `t` is within `slack` of `want`.
::testing::AssertionResult Near(std::optional<Clock::time_point> t, Clock::time_point want,
                                std::chrono::seconds slack) {
  if (!t) return ::testing::AssertionFailure() << "no expiration";
  auto diff = std::chrono::duration_cast<std::chrono::milliseconds>(*t - want);
  if (diff < -slack || diff > slack) {
    return ::testing::AssertionFailure() << "expiration off by " << diff.count() << " ms";
  }
  return ::testing::AssertionSuccess();
}

TEST_P(StoreContract, ConfigRoundTrip) {
  auto a = harness_->connect();
  auto b = harness_->connect();
  std::string json;
  EXPECT_TRUE(HasCode(a->get_config(&json), StoreCode::kNotFound));

  const std::string first = R"({"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}})";
  ASSERT_TRUE(IsOk(a->set_config(first)));
  ASSERT_TRUE(IsOk(b->get_config(&json)));
  EXPECT_EQ(json, first);

  const std::string second = R"({"Network": "10.6.0.0/16", "SubnetLen": 26})";
  ASSERT_TRUE(IsOk(b->set_config(second)));
  ASSERT_TRUE(IsOk(a->get_config(&json)));
  EXPECT_EQ(json, second);
  EXPECT_FALSE(a->describe().empty());
}

TEST_P(StoreContract, CreateTwiceConflicts) {
  auto a = harness_->connect();
  auto b = harness_->connect();
  Lease mine =
      make_lease("10.5.1.0/24", "192.168.0.1", "vxlan", R"({"VtepMAC":"aa:bb:cc:dd:ee:01"})");
  Lease created;
  ASSERT_TRUE(IsOk(a->create_lease(mine, 60s, &created)));

  Lease theirs = make_lease("10.5.1.0/24", "192.168.0.2");
  Lease ignored;
  EXPECT_TRUE(HasCode(a->create_lease(theirs, 60s, &ignored), StoreCode::kConflict));
  EXPECT_TRUE(HasCode(b->create_lease(theirs, 0s, &ignored), StoreCode::kConflict));

  Lease stored;
  ASSERT_TRUE(IsOk(b->get_lease(mine.subnet, &stored)));
  EXPECT_EQ(stored.attrs, mine.attrs);
  EXPECT_EQ(stored.revision, created.revision);
}

TEST_P(StoreContract, GetAndListReturnWhatWasWritten) {
  auto a = harness_->connect();
  auto b = harness_->connect();
  const std::vector<Lease> wanted = {
      make_lease("10.5.1.0/24", "192.168.0.1", "vxlan", R"({"VtepMAC":"82:4b:b6:2f:54:4e"})"),
      make_lease("10.5.2.0/24", "192.168.0.2"),  // udp/alloc style: no type, no data
      make_lease("10.5.3.0/24", "192.168.0.3", "host-gw"),
  };
  const std::vector<std::chrono::seconds> ttls = {3600s, 120s, 0s};
  std::map<IP4Net, Lease> created;
  for (size_t i = 0; i < wanted.size(); ++i) {
    const auto before = Clock::now();
    Lease c;
    ASSERT_TRUE(IsOk(a->create_lease(wanted[i], ttls[i], &c)));
    EXPECT_EQ(c.subnet, wanted[i].subnet);
    EXPECT_EQ(c.attrs, wanted[i].attrs);
    EXPECT_GT(c.revision, 0u);
    if (ttls[i] == 0s) {
      EXPECT_FALSE(c.expiration.has_value()) << "ttl 0 must mean no expiration";
    } else {
      EXPECT_TRUE(Near(c.expiration, before + ttls[i], 3s));
    }
    created[c.subnet] = c;
  }

  for (const auto& [subnet, c] : created) {
    Lease got;
    ASSERT_TRUE(IsOk(b->get_lease(subnet, &got)));
    EXPECT_EQ(got.subnet, subnet);
    EXPECT_EQ(got.attrs, c.attrs);
    EXPECT_EQ(got.revision, c.revision);
    EXPECT_EQ(got.expiration.has_value(), c.expiration.has_value());
    if (c.expiration) { EXPECT_TRUE(Near(got.expiration, *c.expiration, 2s)); }
  }

  LeaseList list;
  ASSERT_TRUE(IsOk(b->list_leases(&list)));
  EXPECT_TRUE(list.warnings.empty());
  ASSERT_EQ(list.leases.size(), created.size());
  uint64_t max_revision = 0;
  for (const auto& l : list.leases) {
    auto it = created.find(l.subnet);
    ASSERT_NE(it, created.end()) << "unexpected lease " << l.subnet.str();
    EXPECT_EQ(l.attrs, it->second.attrs);
    EXPECT_EQ(l.revision, it->second.revision);
    EXPECT_EQ(l.expiration.has_value(), it->second.expiration.has_value());
    max_revision = std::max(max_revision, l.revision);
  }
  EXPECT_GE(list.revision, max_revision);

  Lease absent;
  EXPECT_TRUE(HasCode(b->get_lease(IP4Net::parse("10.5.99.0/24"), &absent), StoreCode::kNotFound));
}

TEST_P(StoreContract, RenewWithRightRevisionBumpsRevisionAndExpiration) {
  auto a = harness_->connect();
  auto b = harness_->connect();
  Lease created;
  ASSERT_TRUE(
      IsOk(a->create_lease(make_lease("10.5.7.0/24", "192.168.0.7", "udp"), 30s, &created)));

  Lease update = created;
  update.attrs.backend_type = "vxlan";
  update.attrs.backend_data = R"({"VtepMAC":"82:4b:b6:2f:54:4e"})";
  const auto before = Clock::now();
  Lease renewed;
  ASSERT_TRUE(IsOk(a->renew_lease(update, 600s, &renewed)));
  EXPECT_GT(renewed.revision, created.revision);
  EXPECT_EQ(renewed.attrs, update.attrs);
  EXPECT_TRUE(Near(renewed.expiration, before + 600s, 3s));

  Lease got;
  ASSERT_TRUE(IsOk(b->get_lease(update.subnet, &got)));
  EXPECT_EQ(got.attrs, update.attrs);
  EXPECT_EQ(got.revision, renewed.revision);
  EXPECT_TRUE(Near(got.expiration, before + 600s, 3s));

  // The old revision is stale now: renewing with it must fail and change nothing.
  Lease ignored;
  EXPECT_TRUE(HasCode(a->renew_lease(created, 600s, &ignored), StoreCode::kConflict));
  ASSERT_TRUE(IsOk(b->get_lease(update.subnet, &got)));
  EXPECT_EQ(got.revision, renewed.revision);

  // Renewing a reservation with ttl 0 keeps it without expiry.
  Lease kept;
  ASSERT_TRUE(IsOk(a->renew_lease(renewed, 0s, &kept)));
  EXPECT_FALSE(kept.expiration.has_value());
  ASSERT_TRUE(IsOk(b->get_lease(update.subnet, &got)));
  EXPECT_FALSE(got.expiration.has_value());
}

TEST_P(StoreContract, RenewOfReplacedLeaseFails) {
  auto a = harness_->connect();
  auto b = harness_->connect();
  Lease ours;
  ASSERT_TRUE(IsOk(a->create_lease(make_lease("10.5.8.0/24", "192.168.0.8"), 60s, &ours)));

  // Another host deletes it and takes the subnet.
  ASSERT_TRUE(IsOk(b->delete_lease(ours.subnet)));
  Lease theirs;
  ASSERT_TRUE(IsOk(b->create_lease(make_lease("10.5.8.0/24", "192.168.0.9"), 60s, &theirs)));

  Lease renewed;
  Status s = a->renew_lease(ours, 60s, &renewed);
  EXPECT_TRUE(s.code == StoreCode::kConflict || s.code == StoreCode::kNotFound)
      << "renew of a replaced lease: " << to_string(s.code) << ": " << s.message;
  Lease got;
  ASSERT_TRUE(IsOk(b->get_lease(ours.subnet, &got)));
  EXPECT_EQ(got.attrs.public_ip, IP4::parse("192.168.0.9"));
  EXPECT_EQ(got.revision, theirs.revision);

  // And a renew of a lease that is simply gone says so.
  ASSERT_TRUE(IsOk(b->delete_lease(theirs.subnet)));
  EXPECT_TRUE(HasCode(b->renew_lease(theirs, 60s, &renewed), StoreCode::kNotFound));
  EXPECT_TRUE(HasCode(b->get_lease(theirs.subnet, &got), StoreCode::kNotFound));
}

TEST_P(StoreContract, DeleteChecksExpectedRevision) {
  auto a = harness_->connect();
  auto b = harness_->connect();
  Lease created;
  ASSERT_TRUE(IsOk(a->create_lease(make_lease("10.5.9.0/24", "192.168.0.9"), 60s, &created)));

  EXPECT_TRUE(
      HasCode(b->delete_lease(created.subnet, created.revision + 1000), StoreCode::kConflict));
  Lease got;
  ASSERT_TRUE(IsOk(a->get_lease(created.subnet, &got))) << "a failed conditional delete deleted";

  ASSERT_TRUE(IsOk(b->delete_lease(created.subnet, created.revision)));
  EXPECT_TRUE(HasCode(a->get_lease(created.subnet, &got), StoreCode::kNotFound));
  EXPECT_TRUE(HasCode(a->delete_lease(created.subnet), StoreCode::kNotFound));

  // Unconditional delete.
  ASSERT_TRUE(IsOk(a->create_lease(make_lease("10.5.9.0/24", "192.168.0.9"), 60s, &created)));
  ASSERT_TRUE(IsOk(b->delete_lease(created.subnet)));
  LeaseList list;
  ASSERT_TRUE(IsOk(a->list_leases(&list)));
  EXPECT_EQ(find_lease(list, created.subnet), nullptr);
}

TEST_P(StoreContract, TtlExpiryIsSeenByEveryWatcher) {
  auto writer = harness_->connect();
  auto w1 = harness_->connect();
  auto w2 = harness_->connect();
  Lease reservation, doomed;
  ASSERT_TRUE(
      IsOk(writer->create_lease(make_lease("10.5.10.0/24", "192.168.0.10"), 0s, &reservation)));
  ASSERT_TRUE(IsOk(writer->create_lease(make_lease("10.5.11.0/24", "192.168.0.11"), 1s, &doomed)));

  LeaseList start;
  ASSERT_TRUE(IsOk(w1->list_leases(&start)));
  ASSERT_NE(find_lease(start, doomed.subnet), nullptr);

  // Two watchers on their own connections; nobody writes: the expiry alone must reach both.
  auto expired_seen = [&](const std::vector<LeaseEvent>& evs) {
    return std::any_of(evs.begin(), evs.end(), [&](const LeaseEvent& e) {
      return e.type == LeaseEventType::kRemoved && e.lease.subnet == doomed.subnet;
    });
  };
  std::vector<LeaseEvent> seen1, seen2;
  uint64_t rev1 = start.revision, rev2 = start.revision;
  std::jthread t2([&] { seen2 = watch_until(*w2, &rev2, expired_seen, 10s); });
  seen1 = watch_until(*w1, &rev1, expired_seen, 10s);
  t2.join();

  for (const auto* seen : {&seen1, &seen2}) {
    ASSERT_TRUE(expired_seen(*seen));
    for (const auto& e : *seen) {
      EXPECT_NE(e.lease.subnet, reservation.subnet) << "the reservation must not expire";
      if (e.type == LeaseEventType::kRemoved) {
        EXPECT_TRUE(e.expired) << "an expiry must be reported as expired";
        EXPECT_GT(e.lease.revision, doomed.revision);
      }
    }
  }

  LeaseList after;
  ASSERT_TRUE(IsOk(writer->list_leases(&after)));
  EXPECT_EQ(find_lease(after, doomed.subnet), nullptr);
  EXPECT_NE(find_lease(after, reservation.subnet), nullptr);
  Lease got;
  EXPECT_TRUE(HasCode(w1->get_lease(doomed.subnet, &got), StoreCode::kNotFound));
  EXPECT_TRUE(HasCode(writer->renew_lease(doomed, 60s, &got), StoreCode::kNotFound));
}

TEST_P(StoreContract, WatchSeesRapidWritesInOrder) {
  auto writer = harness_->connect();
  auto watcher = harness_->connect();
  LeaseList start;
  ASSERT_TRUE(IsOk(watcher->list_leases(&start)));

  // 400 creates, 300 renews, 300 deletes: 1000 events from another connection.
  struct Expected {
    LeaseEventType type;
    IP4Net subnet;
    uint64_t revision;  // 0 where the API does not report it (delete)
  };
  std::vector<Expected> expected;
  std::vector<LeaseEvent> seen;
  uint64_t rev = start.revision;
  // A jthread: if a write below fails, leaving the scope stops and joins the watcher.
  std::jthread watch([&](std::stop_token stop) {
    seen = watch_until(
        *watcher, &rev, [](const std::vector<LeaseEvent>& evs) { return evs.size() >= 1000; }, 120s,
        stop);
  });
  // A third connection reads all along: a busy store that was not reset never reports a reset.
  auto reader = harness_->connect();
  std::atomic<int> resets{0}, reads{0};
  std::jthread read([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      LeaseList l;
      std::string json;
      if (reader->list_leases(&l).code == StoreCode::kStoreReset) ++resets;
      if (reader->get_config(&json).code == StoreCode::kStoreReset) ++resets;
      ++reads;
    }
  });
  std::vector<Lease> leases(400);
  for (uint32_t i = 0; i < 400; ++i) {
    Lease l = make_lease("10.128.0.0/24", "192.168.1.1");
    l.subnet = nth_subnet(i);
    ASSERT_TRUE(IsOk(writer->create_lease(l, 600s, &leases[i])));
    expected.push_back({LeaseEventType::kAdded, l.subnet, leases[i].revision});
  }
  for (uint32_t i = 0; i < 300; ++i) {
    Lease renewed;
    ASSERT_TRUE(IsOk(writer->renew_lease(leases[i], 600s, &renewed)));
    expected.push_back({LeaseEventType::kAdded, renewed.subnet, renewed.revision});
  }
  for (uint32_t i = 100; i < 400; ++i) {
    ASSERT_TRUE(IsOk(writer->delete_lease(nth_subnet(i))));
    expected.push_back({LeaseEventType::kRemoved, nth_subnet(i), 0});
  }
  watch.join();
  read.request_stop();
  read.join();
  EXPECT_EQ(resets.load(), 0) << "a store that was not reset reported a reset";
  EXPECT_GT(reads.load(), 0);

  ASSERT_EQ(seen.size(), expected.size());
  uint64_t last = start.revision;
  for (size_t i = 0; i < seen.size(); ++i) {
    SCOPED_TRACE("event " + std::to_string(i));
    EXPECT_EQ(seen[i].type, expected[i].type);
    EXPECT_EQ(seen[i].lease.subnet, expected[i].subnet);
    EXPECT_GT(seen[i].lease.revision, last) << "revisions must strictly increase";
    if (expected[i].revision) { EXPECT_EQ(seen[i].lease.revision, expected[i].revision); }
    if (seen[i].type == LeaseEventType::kAdded) {
      EXPECT_EQ(seen[i].lease.attrs.public_ip, IP4::parse("192.168.1.1"));
      EXPECT_TRUE(seen[i].lease.expiration.has_value());
    } else {
      EXPECT_FALSE(seen[i].expired);
    }
    last = seen[i].lease.revision;
    if (::testing::Test::HasFailure()) break;
  }
}

TEST_P(StoreContract, WatchTimesOutAfterTheTimeout) {
  auto store = harness_->connect();
  LeaseList list;
  ASSERT_TRUE(IsOk(store->list_leases(&list)));
  for (auto timeout : {300ms, 1000ms}) {
    const auto t0 = SteadyClock::now();
    WatchResult r = store->watch_leases(list.revision, timeout, std::stop_token{});
    const auto took = SteadyClock::now() - t0;
    EXPECT_TRUE(HasCode(r.status, StoreCode::kTimeout));
    EXPECT_TRUE(r.events.empty());
    EXPECT_GE(took, timeout - 50ms) << "returned before the timeout";
    EXPECT_LE(took, timeout + 500ms) << "returned long after the timeout";
  }
}

TEST_P(StoreContract, WatchIsCancelledPromptly) {
  auto store = harness_->connect();
  LeaseList list;
  ASSERT_TRUE(IsOk(store->list_leases(&list)));

  std::stop_source source;
  std::atomic<int64_t> returned_ns{0};
  WatchResult r;
  std::jthread t([&] {
    r = store->watch_leases(list.revision, 30s, source.get_token());
    returned_ns = SteadyClock::now().time_since_epoch().count();
  });
  // Proving an absence: the watch must not return in 300 ms before it is cancelled (the wait also
  // lets it block; the contract has no store-neutral "is blocked" to await).
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(returned_ns.load(), 0) << "watch returned before it was cancelled";
  const auto requested = SteadyClock::now();
  source.request_stop();
  t.join();
  const auto latency =
      SteadyClock::time_point(SteadyClock::duration(returned_ns.load())) - requested;
  EXPECT_TRUE(HasCode(r.status, StoreCode::kCancelled));
  EXPECT_LT(latency, 1s) << "cancel took "
                         << std::chrono::duration_cast<std::chrono::milliseconds>(latency).count()
                         << " ms";

  // A token that is already stopped returns at once.
  const auto t0 = SteadyClock::now();
  r = store->watch_leases(list.revision, 30s, source.get_token());
  EXPECT_TRUE(HasCode(r.status, StoreCode::kCancelled));
  EXPECT_LT(SteadyClock::now() - t0, 1s);
}

TEST_P(StoreContract, WatchFromLostHistorySaysSoAndListResyncs) {
  auto writer = harness_->connect();
  auto watcher = harness_->connect();
  LeaseList start;
  ASSERT_TRUE(IsOk(watcher->list_leases(&start)));

  // More events than the store keeps: create/delete pairs on one subnet.
  const size_t events = harness_->history_limit() + 10;
  for (size_t i = 0; i < events; i += 2) {
    Lease c;
    ASSERT_TRUE(IsOk(writer->create_lease(make_lease("10.5.20.0/24", "192.168.0.20"), 60s, &c)));
    ASSERT_TRUE(IsOk(writer->delete_lease(c.subnet, c.revision)));
  }
  harness_->drop_history();

  WatchResult r = watcher->watch_leases(start.revision, 2s, std::stop_token{});
  ASSERT_TRUE(HasCode(r.status, StoreCode::kHistoryGone));
  EXPECT_TRUE(r.events.empty());

  // Resync: a fresh list gives a revision that can be watched from.
  LeaseList fresh;
  ASSERT_TRUE(IsOk(watcher->list_leases(&fresh)));
  EXPECT_GT(fresh.revision, start.revision);
  EXPECT_EQ(find_lease(fresh, IP4Net::parse("10.5.20.0/24")), nullptr);
  Lease next;
  ASSERT_TRUE(IsOk(writer->create_lease(make_lease("10.5.21.0/24", "192.168.0.21"), 60s, &next)));
  uint64_t rev = fresh.revision;
  auto seen = watch_until(
      *watcher, &rev, [](const std::vector<LeaseEvent>& evs) { return !evs.empty(); }, 10s);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].type, LeaseEventType::kAdded);
  EXPECT_EQ(seen[0].lease.subnet, next.subnet);
  EXPECT_EQ(seen[0].lease.revision, next.revision);
}

// One allocator process: connect after fork, then list -> pick a free subnet -> create until a
// create succeeds, as flanneld does. Reports "<subnet ip> <id>" on `out`. Never returns.
[[noreturn]] void run_allocator(StoreHarness& harness, const std::vector<IP4Net>& pool, int id,
                                int out) {
  int code = 0;
  try {
    auto store = harness.connect();
    std::mt19937 rng(static_cast<unsigned>(getpid()));
    Lease want = make_lease("10.66.0.0/28", "10.255.0.1");
    want.attrs.public_ip.value += static_cast<uint32_t>(id);
    code = 3;  // gave up
    for (int attempt = 0; attempt < 500; ++attempt) {
      LeaseList list;
      Status s = store->list_leases(&list);
      if (!s.ok()) {
        std::fprintf(stderr, "allocator %d: list: %s\n", id, s.message.c_str());
        code = 2;
        break;
      }
      std::vector<IP4Net> free;
      for (const auto& n : pool) {
        if (!find_lease(list, n)) free.push_back(n);
      }
      if (free.empty()) {
        std::fprintf(stderr, "allocator %d: out of subnets\n", id);
        code = 4;
        break;
      }
      want.subnet = free[std::uniform_int_distribution<size_t>(0, free.size() - 1)(rng)];
      Lease got;
      s = store->create_lease(want, 600s, &got);
      if (s.ok()) {
        char line[64];
        int n = std::snprintf(line, sizeof line, "%u %d\n", got.subnet.ip.value, id);
        code = write(out, line, static_cast<size_t>(n)) == n ? 0 : 5;
        break;
      }
      if (s.code != StoreCode::kConflict) {
        std::fprintf(stderr, "allocator %d: create: %s\n", id, s.message.c_str());
        code = 2;
        break;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "allocator %d: %s\n", id, e.what());
    code = 6;
  }
  _exit(code);  // no gtest teardown, no atexit handlers in the child
}

TEST_P(StoreContract, ConcurrentAllocatorsNeverShareASubnet) {
  constexpr int kProcs = 32, kRounds = 20;
  // 64 /28s in a /22: enough room for everyone, tight enough that they collide often.
  const std::vector<IP4Net> pool = IP4Net::parse("10.66.0.0/22").subnets(28, 64);
  ASSERT_EQ(pool.size(), 64u);
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto harness = GetParam().make();  // a fresh namespace per round
    {
      auto admin = harness->connect();  // the namespace exists before the race starts
      ASSERT_TRUE(IsOk(admin->set_config(R"({"Network":"10.66.0.0/22","SubnetLen":28})")));
    }
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    std::fflush(nullptr);  // nothing buffered may be written twice by the children
    std::vector<pid_t> pids;
    for (int id = 0; id < kProcs; ++id) {
      pid_t pid = fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        close(fds[0]);
        run_allocator(*harness, pool, id, fds[1]);
      }
      pids.push_back(pid);
    }
    close(fds[1]);

    // Reap with a deadline; a hung child is killed and reported.
    // Only our own pids: the harness may have children of its own (an etcd server).
    std::map<pid_t, int> status;
    const bool finished = wait_until(
        [&] {
          for (pid_t p : pids) {
            int st = 0;
            if (!status.count(p) && waitpid(p, &st, WNOHANG) == p) status[p] = st;
          }
          return status.size() == pids.size();
        },
        30s);
    if (!finished) {
      ADD_FAILURE() << "allocators did not finish within 30 s";
      for (pid_t p : pids) {
        int st = 0;
        if (status.count(p)) continue;
        kill(p, SIGKILL);
        waitpid(p, &st, 0);
        status[p] = st;
      }
    }
    for (const auto& [pid, st] : status) {
      EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
          << "allocator pid " << pid << " failed, status " << st;
    }

    std::string report;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) report.append(buf, static_cast<size_t>(n));
    close(fds[0]);

    std::map<uint32_t, int> owner;  // subnet ip -> allocator id
    size_t lines = 0;
    for (size_t pos = 0; pos < report.size();) {
      size_t end = report.find('\n', pos);
      unsigned ip = 0;
      int id = -1;
      ASSERT_EQ(std::sscanf(report.c_str() + pos, "%u %d", &ip, &id), 2);
      ++lines;
      EXPECT_TRUE(owner.emplace(ip, id).second)
          << "two allocators both won subnet " << IP4{ip}.str();
      pos = end == std::string::npos ? report.size() : end + 1;
    }
    EXPECT_EQ(lines, static_cast<size_t>(kProcs));

    auto check = harness->connect();
    LeaseList list;
    ASSERT_TRUE(IsOk(check->list_leases(&list)));
    EXPECT_EQ(list.leases.size(), static_cast<size_t>(kProcs));
    for (const auto& l : list.leases) {
      auto it = owner.find(l.subnet.ip.value);
      ASSERT_NE(it, owner.end()) << "lease " << l.subnet.str() << " has no winner";
      EXPECT_EQ(l.attrs.public_ip.value, IP4::parse("10.255.0.1").value + uint32_t(it->second))
          << "lease " << l.subnet.str() << " holds another allocator's attrs";
    }
    if (::testing::Test::HasFailure()) break;
  }
}

}  // namespace
}  // namespace flannel::testing
