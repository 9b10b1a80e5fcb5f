// Helpers shared by the Store contract cases (store_contract_test.cc, store_reset_test.cc).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <stop_token>
#include <vector>

#include "stores/store.h"

namespace flannel::testing {

using namespace std::chrono_literals;

inline ::testing::AssertionResult IsOk(const Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << to_string(s.code) << ": " << s.message;
}

inline ::testing::AssertionResult HasCode(const Status& s, StoreCode want) {
  if (s.code == want) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "expected " << to_string(want) << ", got " << to_string(s.code) << ": " << s.message;
}

inline Lease make_lease(const std::string& subnet, const std::string& public_ip,
                        const std::string& type = "", const std::string& data = "") {
  Lease l;
  l.subnet = IP4Net::parse(subnet);
  l.attrs.public_ip = IP4::parse(public_ip);
  l.attrs.backend_type = type;
  l.attrs.backend_data = data;
  return l;
}

// The n-th /24 under 10.128.0.0/9, for tests that need many distinct subnets.
inline IP4Net nth_subnet(uint32_t n) {
  IP4Net net;
  net.ip.value = (10u << 24) | (128u << 16) | (n << 8);
  net.prefix = 24;
  return net;
}

// Watches from *revision, appending events, until done(events) holds, `limit` passes or `stop`
// fires. Timeouts are retried; any other non-ok status is a test failure. Advances *revision.
inline std::vector<LeaseEvent> watch_until(
    Store& store, uint64_t* revision,
    const std::function<bool(const std::vector<LeaseEvent>&)>& done,
    std::chrono::milliseconds limit, std::stop_token stop = std::stop_token{}) {
  std::vector<LeaseEvent> events;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done(events)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) {
      ADD_FAILURE() << "watch: condition not met within " << limit.count() << " ms ("
                    << events.size() << " events seen)";
      break;
    }
    WatchResult r =
        store.watch_leases(*revision, std::min<std::chrono::milliseconds>(left, 2s), stop);
    if (r.status.code == StoreCode::kCancelled && stop.stop_requested()) break;
    if (r.status.code == StoreCode::kTimeout) {
      EXPECT_GE(r.revision, *revision);
      *revision = std::max(*revision, r.revision);
      continue;
    }
    if (!r.status.ok()) {
      ADD_FAILURE() << "watch from " << *revision << ": " << to_string(r.status.code) << ": "
                    << r.status.message;
      break;
    }
    EXPECT_FALSE(r.events.empty()) << "kOk watch result with no events";
    EXPECT_GT(r.revision, *revision) << "watch returned events but did not advance";
    for (auto& e : r.events) events.push_back(std::move(e));
    *revision = r.revision;
  }
  return events;
}

inline const Lease* find_lease(const LeaseList& list, const LeaseKey& key) {
  for (const auto& l : list.leases) {
    if (l.key() == key) return &l;
  }
  return nullptr;
}

}  // namespace flannel::testing
