// PeerCache: store events -> backend events, with our own subnet filtered out, renewals that
// change nothing dropped, and attribute changes (a new VtepMAC) as remove-old + add-new.
#include <gtest/gtest.h>

#include "core/peer_cache.h"

namespace flannel {
namespace {

Lease lease(const char* subnet, const char* ip, const char* mac = "") {
  Lease l;
  l.subnet = IP4Net::parse(subnet);
  l.attrs.public_ip = IP4::parse(ip);
  l.attrs.backend_type = "vxlan";
  if (*mac) l.attrs.backend_data = std::string(R"({"VtepMAC":")") + mac + "\"}";
  return l;
}
LeaseEvent added(Lease l) { return {LeaseEventType::kAdded, std::move(l), false}; }
LeaseEvent removed(const char* subnet) {
  LeaseEvent e;
  e.type = LeaseEventType::kRemoved;
  e.lease.subnet = IP4Net::parse(subnet);
  return e;
}

TEST(PeerCache, OwnSubnetIsNeverPassedOn) {
  PeerCache c;
  c.set_own(IP4Net::parse("10.5.1.0/24"));
  EXPECT_TRUE(c.apply({added(lease("10.5.1.0/24", "10.0.0.1"))}).empty());
  EXPECT_TRUE(c.resync({lease("10.5.1.0/24", "10.0.0.1")}).empty());
  EXPECT_EQ(c.size(), 0u);
}

TEST(PeerCache, RemovalCarriesTheCachedAttrs) {
  PeerCache c;
  c.apply({added(lease("10.5.2.0/24", "10.0.0.2", "aa:bb:cc:dd:ee:02"))});
  auto out = c.apply({removed("10.5.2.0/24")});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, PeerEvent::Type::kRemoved);
  EXPECT_EQ(out[0].lease.attrs.public_ip, IP4::parse("10.0.0.2"));
  EXPECT_NE(out[0].lease.attrs.backend_data.find("aa:bb:cc:dd:ee:02"), std::string::npos);
  EXPECT_TRUE(c.apply({removed("10.5.2.0/24")}).empty()) << "unknown subnet: nothing to undo";
}

TEST(PeerCache, RenewalWithSameAttrsIsNoWorkButAChangeIsRemoveThenAdd) {
  PeerCache c;
  c.apply({added(lease("10.5.2.0/24", "10.0.0.2", "aa:bb:cc:dd:ee:02"))});
  auto renewed = lease("10.5.2.0/24", "10.0.0.2", "aa:bb:cc:dd:ee:02");
  renewed.revision = 99;
  EXPECT_TRUE(c.apply({added(renewed)}).empty());
  EXPECT_EQ(c.peers().at(IP4Net::parse("10.5.2.0/24")).revision, 99u);

  auto out = c.apply({added(lease("10.5.2.0/24", "10.0.0.2", "aa:bb:cc:dd:ee:ff"))});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].type, PeerEvent::Type::kRemoved);
  EXPECT_NE(out[0].lease.attrs.backend_data.find("ee:02"), std::string::npos);
  EXPECT_EQ(out[1].type, PeerEvent::Type::kAdded);
  EXPECT_NE(out[1].lease.attrs.backend_data.find("ee:ff"), std::string::npos);
}

TEST(PeerCache, ResyncDiffsFullAttributesRemovalsFirst) {
  PeerCache c;
  c.resync({lease("10.5.2.0/24", "10.0.0.2"), lease("10.5.3.0/24", "10.0.0.3"),
            lease("10.5.4.0/24", "10.0.0.4")});
  // 10.5.2 unchanged, 10.5.3 gone, 10.5.4 moved to another host, 10.5.5 new.
  auto out = c.resync({lease("10.5.2.0/24", "10.0.0.2"), lease("10.5.4.0/24", "10.0.0.44"),
                       lease("10.5.5.0/24", "10.0.0.5")});
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].type, PeerEvent::Type::kRemoved);
  EXPECT_EQ(out[0].lease.subnet, IP4Net::parse("10.5.3.0/24"));
  EXPECT_EQ(out[1].type, PeerEvent::Type::kRemoved);
  EXPECT_EQ(out[1].lease.attrs.public_ip, IP4::parse("10.0.0.4"));
  EXPECT_EQ(out[2].type, PeerEvent::Type::kAdded);
  EXPECT_EQ(out[2].lease.attrs.public_ip, IP4::parse("10.0.0.44"));
  EXPECT_EQ(out[3].type, PeerEvent::Type::kAdded);
  EXPECT_EQ(out[3].lease.subnet, IP4Net::parse("10.5.5.0/24"));
  EXPECT_EQ(c.size(), 3u);
}

// The agent's flannel_ipv6_peers gauge reads this count on every event, so the cache keeps it
// as peers come and go (by event, by resync, as our own lease) instead of a pass over all peers.
TEST(PeerCache, Ipv6PeerCountFollowsAddsRemovalsResyncsAndOwnLease) {
  auto dual = [](const char* subnet, const char* subnet6) {
    Lease l = lease(subnet, "10.0.0.9");
    l.ipv6_subnet = IP6Net::parse(subnet6);
    return l;
  };
  PeerCache c;
  c.apply({added(dual("10.5.2.0/24", "fc00:0:0:2::/64")), added(lease("10.5.3.0/24", "10.0.0.3")),
           added(dual("10.5.4.0/24", "fc00:0:0:4::/64"))});
  EXPECT_EQ(c.ipv6_peers(), 2u);
  c.apply({added(dual("10.5.2.0/24", "fc00:0:0:2::/64"))});  // a renewal: still one peer
  EXPECT_EQ(c.ipv6_peers(), 2u);
  LeaseEvent gone{LeaseEventType::kRemoved, dual("10.5.4.0/24", "fc00:0:0:4::/64"), false};
  c.apply({gone});
  EXPECT_EQ(c.ipv6_peers(), 1u);
  c.set_own(LeaseKey{IP4Net::parse("10.5.2.0/24"), IP6Net::parse("fc00:0:0:2::/64")});
  EXPECT_EQ(c.ipv6_peers(), 0u);
  EXPECT_EQ(c.size(), 1u);
  c.resync({dual("10.5.6.0/24", "fc00:0:0:6::/64"), dual("10.5.7.0/24", "fc00:0:0:7::/64")});
  EXPECT_EQ(c.ipv6_peers(), 2u);
  c.resync({lease("10.5.3.0/24", "10.0.0.3")});
  EXPECT_EQ(c.ipv6_peers(), 0u);
  EXPECT_EQ(c.size(), 1u);
}

// --- admission (core/admission.h) in the cache ---

PeerCache admitting_cache() {
  PeerCache c;
  AdmissionRules rules;
  rules.network = IP4Net::parse("10.5.0.0/16");
  rules.own_ip4 = {IP4::parse("10.0.0.1")};
  c.set_rules(rules);
  c.set_own(IP4Net::parse("10.5.1.0/24"));
  return c;
}

std::vector<std::string> keys_of(const std::vector<PeerEvent>& events, PeerEvent::Type type) {
  std::vector<std::string> out;
  for (const auto& e : events)
    if (e.type == type) out.push_back(e.lease.key().str());
  return out;
}

TEST(PeerCache, RefusedLeasesNeverBecomePeers) {
  PeerCache c = admitting_cache();
  Lease everything = lease("0.0.0.0/0", "10.0.0.9");  // "0.0.0.0-0": every default route
  auto out = c.resync({lease("10.5.2.0/24", "10.0.0.2"), everything,
                       lease("192.168.0.0/24", "10.0.0.3"), lease("10.5.1.128/25", "10.0.0.4"),
                       lease("10.5.5.0/24", "127.0.0.1"), lease("10.5.6.0/24", "10.0.0.1")});
  EXPECT_EQ(keys_of(out, PeerEvent::Type::kAdded), std::vector<std::string>{"10.5.2.0/24"});
  EXPECT_EQ(c.size(), 1u);
  ASSERT_EQ(c.refused().size(), 5u);
  EXPECT_EQ(c.refused().at(IP4Net::parse("10.5.1.128/25")).refusal.reason,
            RefusalReason::kOverlapsOwn);
  EXPECT_EQ(c.refused().at(IP4Net::parse("10.5.6.0/24")).refusal.reason,
            RefusalReason::kOwnAddress);
  // Reported once each: the next resync with the same leases reports nothing new.
  EXPECT_EQ(c.take_new_refusals().size(), 5u);
  c.resync({lease("10.5.2.0/24", "10.0.0.2"), everything, lease("192.168.0.0/24", "10.0.0.3"),
            lease("10.5.1.128/25", "10.0.0.4"), lease("10.5.5.0/24", "127.0.0.1"),
            lease("10.5.6.0/24", "10.0.0.1")});
  EXPECT_TRUE(c.take_new_refusals().empty());
  // Gone from the store: gone from the refused list.
  c.resync({lease("10.5.2.0/24", "10.0.0.2")});
  EXPECT_TRUE(c.refused().empty());
}

TEST(PeerCache, APeerRewrittenWithABadValueIsRemovedAndReportedAgainWhenItsReasonChanges) {
  PeerCache c = admitting_cache();
  c.apply({added(lease("10.5.2.0/24", "10.0.0.2"))});
  auto out = c.apply({added(lease("10.5.2.0/24", "224.0.0.5"))});
  EXPECT_EQ(keys_of(out, PeerEvent::Type::kRemoved), std::vector<std::string>{"10.5.2.0/24"});
  EXPECT_TRUE(keys_of(out, PeerEvent::Type::kAdded).empty());
  EXPECT_EQ(c.size(), 0u);
  auto news = c.take_new_refusals();
  ASSERT_EQ(news.size(), 1u);
  EXPECT_EQ(news[0].refusal.reason, RefusalReason::kBadPublicIP);
  EXPECT_TRUE(c.apply({added(lease("10.5.2.0/24", "224.0.0.5"))}).empty());
  EXPECT_TRUE(c.take_new_refusals().empty());  // same reason: not again
  c.apply({added(lease("10.5.2.0/24", "10.0.0.1"))});
  EXPECT_EQ(c.take_new_refusals().size(), 1u);  // now our own address: a new reason
  // Fixed by its owner: a peer again, and no longer refused.
  out = c.apply({added(lease("10.5.2.0/24", "10.0.0.2"))});
  EXPECT_EQ(keys_of(out, PeerEvent::Type::kAdded), std::vector<std::string>{"10.5.2.0/24"});
  EXPECT_TRUE(c.refused().empty());
  c.apply({added(lease("10.5.3.0/24", "127.0.0.1"))});
  c.apply({removed("10.5.3.0/24")});
  EXPECT_TRUE(c.refused().empty());
}

TEST(PeerCache, SomeoneElsesKeyWithOurIPv4SubnetIsRefused) {
  PeerCache c;
  AdmissionRules rules;
  rules.network = IP4Net::parse("10.5.0.0/16");
  rules.ipv6_network = IP6Net::parse("fc00::/48");
  c.set_rules(rules);
  c.set_own(LeaseKey{IP4Net::parse("10.5.1.0/24"), IP6Net::parse("fc00:0:0:1::/64")});
  Lease l = lease("10.5.1.0/24", "10.0.0.2");
  l.ipv6_subnet = IP6Net::parse("fc00:0:0:9::/64");
  l.attrs.public_ipv6 = IP6::parse("fd00::2");
  EXPECT_TRUE(c.apply({added(l)}).empty());
  EXPECT_EQ(c.refused().at(l.key()).refusal.reason, RefusalReason::kOverlapsOwn);
}

}  // namespace
}  // namespace flannel
