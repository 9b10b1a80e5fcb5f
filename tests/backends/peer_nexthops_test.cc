// Nexthop ids of peer routes (backends/peer_nexthops.h): one id per lease key, whatever the mix
// of prefix lengths, stable across restarts, inside the backend's range.
#include "backends/peer_nexthops.h"

#include <gtest/gtest.h>

#include <set>

namespace flannel {
namespace {

const IP4Net kNetwork = IP4Net::parse("10.5.0.0/16");

uint32_t id(const char* subnet) {
  auto out = kHostGwNexthops.id_for(kNetwork, IP4Net::parse(subnet));
  EXPECT_TRUE(out.has_value()) << subnet;
  return out.value_or(0);
}

TEST(PeerNexthops, LeasesOfDifferentLengthsSideBySideNeverShareAnId) {
  // With the index taken at each lease's own length these collided: 10.5.2.128/25 is the 5th /25
  // and 10.5.5.0/24 the 5th /24.
  EXPECT_NE(id("10.5.2.128/25"), id("10.5.5.0/24"));
  std::set<uint32_t> ids;
  size_t n = 0;
  for (int len : {17, 20, 24, 25, 26, 30, 32}) {
    for (const auto& s : kNetwork.subnets(len, 300)) {
      ++n;
      auto got = kHostGwNexthops.id_for(kNetwork, s);
      ASSERT_TRUE(got) << s.str();
      EXPECT_TRUE(kHostGwNexthops.owns(*got)) << s.str();
      EXPECT_TRUE(ids.insert(*got).second) << s.str() << " shares id " << *got;
    }
  }
  EXPECT_EQ(ids.size(), n);
}

TEST(PeerNexthops, TheSameSubnetAlwaysGetsTheSameIdInItsBackendsRange) {
  EXPECT_EQ(id("10.5.34.0/24"), id("10.5.34.0/24"));
  auto vx = kVxlanNexthops.id_for(kNetwork, IP4Net::parse("10.5.34.0/24"));
  ASSERT_TRUE(vx);
  EXPECT_TRUE(kVxlanNexthops.owns(*vx));
  EXPECT_FALSE(kHostGwNexthops.owns(*vx));
  EXPECT_EQ(*vx - kVxlanNexthops.base, id("10.5.34.0/24") - kHostGwNexthops.base);
}

TEST(PeerNexthops, SubnetsOutsideTheNetworkOrTooDeepGetNoId) {
  EXPECT_FALSE(kHostGwNexthops.id_for(kNetwork, IP4Net::parse("10.6.0.0/24")));
  EXPECT_FALSE(kHostGwNexthops.id_for(kNetwork, IP4Net::parse("10.0.0.0/8")));
  const IP4Net wide = IP4Net::parse("10.0.0.0/8");
  EXPECT_TRUE(kHostGwNexthops.id_for(wide, IP4Net::parse("10.255.255.254/31")));   // 23 deeper
  EXPECT_FALSE(kHostGwNexthops.id_for(wide, IP4Net::parse("10.255.255.255/32")));  // 24 deeper
  // The largest id of a /8 network still lies inside the range.
  auto last = kHostGwNexthops.id_for(wide, IP4Net::parse("10.255.255.254/31"));
  EXPECT_TRUE(kHostGwNexthops.owns(*last));
}

}  // namespace
}  // namespace flannel
