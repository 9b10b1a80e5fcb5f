// IfaceWatch on a real kernel, in a namespace of the lab's: what wakes the agent and what does
// not. Each test makes ten unrelated changes, one `ip` command apiece (so they reach the watch
// in separate reads), then one change the watch follows, and waits for the wake-up: exactly one
// must come. A watch that woke on the unrelated ones (as it did on each read's final "try
// again" from the non-blocking socket) counts up to eleven.
#include <gtest/gtest.h>
#include <net/if.h>
#include <unistd.h>

#include <atomic>

#include "daemon/agent/iface_watch.h"
#include "tests/support/lab.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

class IfaceWatchLab : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    lab_ = std::make_unique<Lab>("iw");
    ns_ = lab_->hub();
    sh({"ip", "link", "add", "followed", "type", "bridge"});
    sh({"ip", "link", "add", "other", "type", "bridge"});
    sh({"ip", "link", "set", "other", "up"});
  }
  void sh(const std::vector<std::string>& argv) {
    std::string out;
    ASSERT_EQ(run_command(argv, &out, ns_), 0) << out;
  }
  // A watch in the lab's namespace, following the bridge "followed".
  void watch(IfaceRoutes routes = IfaceRoutes()) {
    EnterNetns in(ns_);
    const int index = static_cast<int>(::if_nametoindex("followed"));
    ASSERT_GT(index, 0);
    watch_ = std::make_unique<IfaceWatch>(
        index, [this] { ++wakes_; }, routes);
  }
  // One wake-up for the followed change, none for the ten before it.
  void expect_one_wake() {
    ASSERT_TRUE(wait_until([&] { return wakes_.load() >= 1; }, 2s)) << "no wake-up";
    EXPECT_EQ(wakes_.load(), 1);
  }

  std::unique_ptr<Lab> lab_;
  std::string ns_;
  std::atomic<int> wakes_{0};
  std::unique_ptr<IfaceWatch> watch_;  // last: stopped before the counter goes
};

TEST_F(IfaceWatchLab, OtherInterfacesDoNotWakeTheFollowedOneDoes) {
  ASSERT_NO_FATAL_FAILURE(watch());
  for (int i = 1; i <= 10; ++i)
    sh({"ip", "addr", "add", "10.9.0." + std::to_string(i) + "/32", "dev", "other"});
  sh({"ip", "addr", "add", "10.8.0.1/32", "dev", "followed"});
  expect_one_wake();
}

TEST_F(IfaceWatchLab, OnlyTheDefaultRouteWakesWhenTheChoiceFollowsIt) {
  ASSERT_NO_FATAL_FAILURE(watch(IfaceRoutes{true, std::nullopt}));
  for (int i = 1; i <= 10; ++i)  // as the agent's own routes to pod subnets
    sh({"ip", "route", "add", "10.5." + std::to_string(i) + ".0/24", "dev", "other"});
  sh({"ip", "route", "add", "default", "dev", "other"});
  expect_one_wake();
}

TEST_F(IfaceWatchLab, RoutesTowardTheCanReachAddressWake) {
  ASSERT_NO_FATAL_FAILURE(watch(IfaceRoutes{true, IP4::parse("192.168.7.9")}));
  for (int i = 1; i <= 10; ++i)
    sh({"ip", "route", "add", "10.5." + std::to_string(i) + ".0/24", "dev", "other"});
  sh({"ip", "route", "add", "192.168.7.0/24", "dev", "other"});
  expect_one_wake();
}

}  // namespace
}  // namespace flannel::testing
