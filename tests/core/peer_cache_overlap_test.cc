// PeerCache: peers never overlap. Of two leases sharing an address the one created first is kept,
// on every host and whatever order the events come in; the other is refused as overlaps_peer
// (never deleted) and comes in when the winner goes.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/peer_cache.h"

namespace flannel {
namespace {

Lease lease(const char* subnet, uint64_t created, const char* v6 = nullptr) {
  Lease l;
  l.subnet = IP4Net::parse(subnet);
  if (v6) l.ipv6_subnet = IP6Net::parse(v6);
  l.attrs.public_ip = IP4::parse("10.0.0.9");
  l.attrs.backend_type = "host-gw";
  l.created = l.revision = created;
  return l;
}
LeaseEvent added(const Lease& l) { return {LeaseEventType::kAdded, l, false}; }
LeaseEvent removed(const Lease& l) { return {LeaseEventType::kRemoved, l, false}; }

std::vector<std::string> keys(const std::vector<PeerEvent>& events, PeerEvent::Type type) {
  std::vector<std::string> out;
  for (const auto& e : events)
    if (e.type == type) out.push_back(e.lease.key().str());
  return out;
}
std::set<std::string> peers(const PeerCache& c) {
  std::set<std::string> out;
  for (const auto& [key, l] : c.peers()) out.insert(key.str());
  return out;
}
using Strings = std::vector<std::string>;
using Set = std::set<std::string>;

TEST(PeerCacheOverlap, AYoungerLeaseOverTwoPeersIsRefusedAndLoggedOnce) {
  PeerCache c;
  c.apply({added(lease("10.5.2.0/24", 5)), added(lease("10.5.3.0/24", 6))});
  Lease hostile = lease("10.5.2.0/23", 9);
  EXPECT_TRUE(c.apply({added(hostile)}).empty());
  EXPECT_EQ(peers(c), (Set{"10.5.2.0/24", "10.5.3.0/24"}));
  auto news = c.take_new_refusals();
  ASSERT_EQ(news.size(), 1u);
  EXPECT_EQ(news[0].refusal.reason, RefusalReason::kOverlapsPeer);
  EXPECT_EQ(news[0].refusal.detail,
            "lease 10.5.2.0/23 overlaps the older lease 10.5.2.0/24 (created at revision 5, "
            "this one at revision 9); the older one is kept");
  hostile.revision = 30;  // renewed: it stays younger, nothing changes and nothing is logged
  EXPECT_TRUE(c.apply({added(hostile)}).empty());
  EXPECT_TRUE(c.take_new_refusals().empty());
  // The peers it overlaps go one by one: it comes in only when nothing older is left in its way.
  auto out = c.apply({removed(lease("10.5.2.0/24", 5))});
  EXPECT_EQ(keys(out, PeerEvent::Type::kAdded), Strings{});
  out = c.apply({removed(lease("10.5.3.0/24", 6))});
  EXPECT_EQ(keys(out, PeerEvent::Type::kAdded), Strings{"10.5.2.0/23"});
  EXPECT_TRUE(c.refused().empty());
}

TEST(PeerCacheOverlap, AnOlderLeaseArrivingLateTakesItsPlaceFromTheYoungerOnes) {
  PeerCache c;
  c.apply({added(lease("10.5.2.0/24", 5)), added(lease("10.5.3.0/24", 6)),
           added(lease("10.5.4.0/24", 7))});
  auto out = c.apply({added(lease("10.5.2.0/23", 2))});
  EXPECT_EQ(keys(out, PeerEvent::Type::kRemoved), (Strings{"10.5.2.0/24", "10.5.3.0/24"}));
  EXPECT_EQ(keys(out, PeerEvent::Type::kAdded), Strings{"10.5.2.0/23"});
  EXPECT_EQ(peers(c), (Set{"10.5.2.0/23", "10.5.4.0/24"}));
  EXPECT_EQ(c.take_new_refusals().size(), 2u);  // the two it displaced, each named once
  out = c.apply({removed(lease("10.5.2.0/23", 2))});
  EXPECT_EQ(keys(out, PeerEvent::Type::kAdded), (Strings{"10.5.2.0/24", "10.5.3.0/24"}));
  EXPECT_EQ(peers(c), (Set{"10.5.2.0/24", "10.5.3.0/24", "10.5.4.0/24"}));
}

// A overlaps B, B overlaps C, A and C are disjoint: A and C are kept. When A goes, B (older than
// C) takes its place and C is refused in turn: the outcome is always that of judging the leases
// oldest first.
TEST(PeerCacheOverlap, ALeaseHeldBackComesInWhenItsWinnerGoesAndDisplacesYoungerOnes) {
  PeerCache c;
  Lease a = lease("10.5.2.0/24", 1), b = lease("10.5.2.0/23", 2), cc = lease("10.5.3.0/24", 3);
  c.apply({added(cc), added(b), added(a)});
  EXPECT_EQ(peers(c), (Set{"10.5.2.0/24", "10.5.3.0/24"}));
  auto out = c.apply({removed(a)});
  EXPECT_EQ(keys(out, PeerEvent::Type::kRemoved), (Strings{"10.5.2.0/24", "10.5.3.0/24"}));
  EXPECT_EQ(keys(out, PeerEvent::Type::kAdded), Strings{"10.5.2.0/23"});
  EXPECT_EQ(peers(c), Set{"10.5.2.0/23"});
  ASSERT_EQ(c.refused().size(), 1u);
  EXPECT_EQ(c.refused().begin()->second.refusal.reason, RefusalReason::kOverlapsPeer);
}

// Two hosts created "10.5.9.0-24&fc00:0:0:7::-64" and "10.5.3.0-24&fc00:0:0:7::-64" at once; the
// later yields and deletes its lease. Until then it is refused on every other host, so the
// route of the IPv6 subnet both claim never changes hands.
TEST(PeerCacheOverlap, TwoDualStackKeysSharingAnIPv6SubnetKeepTheFirstCreated) {
  PeerCache c;
  const Lease keeper = lease("10.5.3.0/24", 4, "fc00:0:0:7::/64");
  const Lease loser = lease("10.5.9.0/24", 5, "fc00:0:0:7::/64");
  c.apply({added(loser), added(keeper)});  // the loser's event came first
  EXPECT_EQ(peers(c), Set{keeper.key().str()});
  auto out = c.apply({removed(loser)});
  EXPECT_TRUE(out.empty());  // it never reached the backend
  EXPECT_TRUE(c.refused().empty());
  // A v0.11 host's plain key and a dual-stack key on one IPv4 subnet: the same rule.
  Lease plain = lease("10.5.3.0/24", 8);
  EXPECT_TRUE(c.apply({added(plain)}).empty());
  EXPECT_EQ(peers(c), Set{keeper.key().str()});
}

// Property: whatever the order of the events (and of the resync's snapshot), the peers are
// those that judging the leases oldest first keeps, and they never overlap.
TEST(PeerCacheOverlap, EveryOrderOfEventsEndsWithTheSamePeers) {
  std::vector<Lease> leases = {lease("10.5.2.0/24", 10),
                               lease("10.5.2.0/23", 11),
                               lease("10.5.3.0/24", 12),
                               lease("10.5.3.128/25", 3),
                               lease("10.5.0.0/22", 20),
                               lease("10.5.8.0/24", 1),
                               lease("10.5.8.0/24", 2, "fc00:0:0:8::/64"),
                               lease("10.5.9.0/24", 4, "fc00:0:0:8::/64"),
                               lease("10.5.10.0/24", 30, "fc00:0:0:a::/64")};
  PeerCache reference;
  reference.resync(leases);
  const Set expected = peers(reference);
  EXPECT_EQ(expected, (Set{"10.5.2.0/24", "10.5.3.128/25", "10.5.8.0/24",
                           "10.5.9.0/24 fc00:0:0:8::/64", "10.5.10.0/24 fc00:0:0:a::/64"}));
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::shuffle(leases.begin(), leases.end(), rng);
    PeerCache one_by_one;
    for (const auto& l : leases) one_by_one.apply({added(l)});
    EXPECT_EQ(peers(one_by_one), expected) << "round " << round;
    PeerCache batch;
    batch.apply(std::vector<LeaseEvent>(1, added(leases[0])));
    std::vector<LeaseEvent> rest;
    for (size_t i = 1; i < leases.size(); ++i) rest.push_back(added(leases[i]));
    batch.apply(rest);
    EXPECT_EQ(peers(batch), expected) << "round " << round;
    PeerCache snapshot;
    snapshot.resync(leases);
    EXPECT_EQ(peers(snapshot), expected) << "round " << round;
    // Removing a random half and adding it back also ends where it began.
    std::vector<LeaseEvent> out, in;
    for (size_t i = 0; i < leases.size() / 2; ++i) {
      out.push_back(removed(leases[i]));
      in.push_back(added(leases[i]));
    }
    one_by_one.apply(out);
    one_by_one.apply(in);
    EXPECT_EQ(peers(one_by_one), expected) << "round " << round;
  }
}

}  // namespace
}  // namespace flannel
