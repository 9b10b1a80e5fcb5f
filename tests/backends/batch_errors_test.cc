// BatchErrors: the one error a backend throws for a batch names the failed peers twice: in the
// message an operator reads, and as data (PeerFailures) the agent uses to retry those peers alone.
#include "backends/batch_errors.h"

#include <gtest/gtest.h>

#include <string>

namespace flannel {
namespace {

PeerEvent event(PeerEvent::Type type, const char* subnet, const char* subnet6 = nullptr) {
  PeerEvent ev;
  ev.type = type;
  ev.lease.subnet = IP4Net::parse(subnet);
  if (subnet6) ev.lease.ipv6_subnet = IP6Net::parse(subnet6);
  return ev;
}

constexpr auto kAdd = PeerEvent::Type::kAdded;
constexpr auto kRemove = PeerEvent::Type::kRemoved;

TEST(BatchErrors, NothingFailedThrowsNothing) {
  BatchErrors errors;
  EXPECT_NO_THROW(errors.throw_if_any(40));
}

TEST(BatchErrors, TheErrorCarriesEveryFailedPeerWithItsKeyAndFirstReason) {
  BatchErrors errors;
  errors.add(event(kAdd, "10.5.3.0/24", "fc00:0:0:3::/64"), "Network is unreachable");
  errors.add(event(kRemove, "10.5.9.0/24"), "No such process");
  errors.add(event(kAdd, "10.5.3.0/24", "fc00:0:0:3::/64"), "cleaning up after the failure: x");
  try {
    errors.throw_if_any(40);
    FAIL() << "nothing thrown";
  } catch (const PeerFailures& e) {
    EXPECT_STREQ(e.what(),
                 "3 of 40 peer changes failed: add 10.5.3.0/24: Network is unreachable; "
                 "remove 10.5.9.0/24: No such process; add 10.5.3.0/24: cleaning up after the "
                 "failure: x");
    ASSERT_EQ(e.peers().size(), 2u);  // one entry per peer change, its first reason
    EXPECT_EQ(e.peers()[0].key,
              LeaseKey(IP4Net::parse("10.5.3.0/24"), IP6Net::parse("fc00:0:0:3::/64")));
    EXPECT_EQ(e.peers()[0].type, kAdd);
    EXPECT_EQ(e.peers()[0].reason, "Network is unreachable");
    EXPECT_EQ(e.peers()[1].key, LeaseKey(IP4Net::parse("10.5.9.0/24")));
    EXPECT_EQ(e.peers()[1].type, kRemove);
    EXPECT_TRUE(e.only_peers());
  }
}

TEST(BatchErrors, AFailureOfNoPeerIsFlaggedAndTheMessageIsUnchanged) {
  BatchErrors errors;
  errors.add(event(kAdd, "10.5.3.0/24"), "Network is unreachable");
  errors.add("removing stale 10.5.77.0/24: Operation not permitted");
  try {
    errors.throw_if_any(2);
    FAIL() << "nothing thrown";
  } catch (const BackendError& e) {  // still a BackendError for every caller that knew only that
    EXPECT_STREQ(e.what(),
                 "2 of 2 peer changes failed: add 10.5.3.0/24: Network is unreachable; removing "
                 "stale 10.5.77.0/24: Operation not permitted");
    auto* pf = dynamic_cast<const PeerFailures*>(&e);
    ASSERT_NE(pf, nullptr);
    EXPECT_FALSE(pf->only_peers());
    ASSERT_EQ(pf->peers().size(), 1u);
    EXPECT_EQ(pf->peers()[0].key, LeaseKey(IP4Net::parse("10.5.3.0/24")));
  }
}

TEST(BatchErrors, TheMessageShowsEightReasonsButTheErrorListsEveryPeer) {
  BatchErrors errors;
  for (int i = 0; i < 20; ++i) {
    std::string subnet = "10.5." + std::to_string(i) + ".0/24";
    errors.add(event(kAdd, subnet.c_str()), "unreachable");
  }
  try {
    errors.throw_if_any(20);
    FAIL() << "nothing thrown";
  } catch (const PeerFailures& e) {
    EXPECT_NE(std::string(e.what()).find("; and 12 more"), std::string::npos) << e.what();
    EXPECT_EQ(e.peers().size(), 20u);
    EXPECT_EQ(e.peers().back().key, LeaseKey(IP4Net::parse("10.5.19.0/24")));
    PeerFailures copy = e;  // copies share the list
    EXPECT_EQ(&copy.peers(), &e.peers());
  }
}

}  // namespace
}  // namespace flannel
