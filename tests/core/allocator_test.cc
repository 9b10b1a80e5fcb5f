#include "core/allocator.h"

#include <chrono>
#include <map>
#include <set>

#include <gtest/gtest.h>

namespace flannel {
namespace {

using Source = Allocation::Source;

Config config(const std::string& extra = "") {
  return parse_config("{\"Network\":\"10.5.0.0/16\"" + extra + "}");
}

Lease lease(const char* subnet, const char* ip) {
  Lease l;
  l.subnet = IP4Net::parse_keep_host(subnet);
  l.attrs.public_ip = IP4::parse(ip);
  l.revision = 7;
  return l;
}

const IP4 kMe = IP4::parse("192.168.0.1");

TEST(Allocator, Compatibility) {
  Config c = config();  // /24 subnets, 10.5.1.0 .. 10.5.255.0
  EXPECT_TRUE(is_compatible(c, IP4Net::parse("10.5.1.0/24")));
  EXPECT_TRUE(is_compatible(c, IP4Net::parse("10.5.255.0/24")));
  EXPECT_FALSE(is_compatible(c, IP4Net::parse("10.5.0.0/24")));            // below SubnetMin
  EXPECT_FALSE(is_compatible(c, IP4Net::parse("10.5.1.0/25")));            // wrong length
  EXPECT_FALSE(is_compatible(c, IP4Net::parse("10.6.1.0/24")));            // outside Network
  EXPECT_FALSE(is_compatible(c, IP4Net::parse_keep_host("10.5.1.7/24")));  // host bits
}

TEST(Allocator, ReusesOurCompatibleLease) {
  std::mt19937_64 rng(1);
  std::vector<Lease> leases = {lease("10.5.3.0/24", "192.168.0.2"),
                               lease("10.5.9.0/24", "192.168.0.1")};
  Allocation a = allocate_subnet(config(), leases, kMe, std::nullopt, rng);
  EXPECT_EQ(a.source, Source::kExisting);
  EXPECT_EQ(a.subnet.str(), "10.5.9.0/24");
  ASSERT_TRUE(a.existing);
  EXPECT_EQ(*a.existing, leases[1]);
  EXPECT_TRUE(a.incompatible.empty());
  EXPECT_TRUE(a.duplicates.empty());
  EXPECT_EQ(a.reason, "reusing lease 10.5.9.0/24 already held by our PublicIP 192.168.0.1");
}

TEST(Allocator, ReportsIncompatibleAndDuplicateLeasesOfOurs) {
  std::mt19937_64 rng(1);
  std::vector<Lease> leases = {
      lease("10.6.0.0/24", "192.168.0.1"), lease("10.5.0.0/24", "192.168.0.1"),
      lease("10.5.4.0/24", "192.168.0.1"), lease("10.5.7.0/24", "192.168.0.1"),
      lease("10.5.8.0/24", "192.168.0.9")};
  // Several compatible leases: the one matching the previous subnet wins.
  Allocation a = allocate_subnet(config(), leases, kMe, IP4Net::parse("10.5.7.0/24"), rng);
  EXPECT_EQ(a.source, Source::kExisting);
  EXPECT_EQ(a.subnet.str(), "10.5.7.0/24");
  ASSERT_EQ(a.incompatible.size(), 2u);
  EXPECT_EQ(a.incompatible[0].subnet.str(), "10.6.0.0/24");
  EXPECT_EQ(a.incompatible[1].subnet.str(), "10.5.0.0/24");
  ASSERT_EQ(a.duplicates.size(), 1u);
  EXPECT_EQ(a.duplicates[0].subnet.str(), "10.5.4.0/24");
  // Without a previous subnet the first compatible one wins.
  a = allocate_subnet(config(), leases, kMe, std::nullopt, rng);
  EXPECT_EQ(a.subnet.str(), "10.5.4.0/24");
}

TEST(Allocator, UsesFreePreviousSubnet) {
  std::mt19937_64 rng(1);
  std::vector<Lease> leases = {lease("10.5.3.0/24", "192.168.0.2")};
  // subnet.env holds 10.5.34.1/24; the caller may pass it with host bits.
  Allocation a =
      allocate_subnet(config(), leases, kMe, IP4Net::parse_keep_host("10.5.34.1/24"), rng);
  EXPECT_EQ(a.source, Source::kPrevious);
  EXPECT_EQ(a.subnet.str(), "10.5.34.0/24");
  EXPECT_FALSE(a.existing);
}

TEST(Allocator, NeverStealsPreviousSubnetFromAnotherHost) {
  std::mt19937_64 rng(1);
  std::vector<Lease> leases = {lease("10.5.34.0/24", "192.168.0.2")};
  Allocation a = allocate_subnet(config(), leases, kMe, IP4Net::parse("10.5.34.0/24"), rng);
  EXPECT_EQ(a.source, Source::kNew);
  EXPECT_NE(a.subnet.str(), "10.5.34.0/24");
  EXPECT_EQ(
      a.reason.rfind("previous subnet 10.5.34.0/24 from the subnet file is held by 192.168.0.2", 0),
      0u)
      << a.reason;
  EXPECT_TRUE(a.incompatible.empty());
  // Nor when a lease of another length covers it.
  leases = {lease("10.5.32.0/22", "192.168.0.2")};
  a = allocate_subnet(config(), leases, kMe, IP4Net::parse("10.5.34.0/24"), rng);
  EXPECT_EQ(a.source, Source::kNew);
  EXPECT_FALSE(IP4Net::parse("10.5.32.0/22").overlaps(a.subnet));
}

TEST(Allocator, IgnoresIncompatiblePreviousSubnet) {
  std::mt19937_64 rng(1);
  for (const char* prev : {"10.5.0.0/24", "10.6.1.0/24", "10.5.2.0/25"}) {
    Allocation a = allocate_subnet(config(), {}, kMe, IP4Net::parse(prev), rng);
    EXPECT_EQ(a.source, Source::kNew) << prev;
    EXPECT_NE(a.reason.find("does not fit the config"), std::string::npos) << a.reason;
  }
}

TEST(Allocator, NewSubnetIsRandomAmongFirst100Free) {
  Config c = config(",\"SubnetLen\":28");  // 4095 candidates from 10.5.0.16
  std::vector<Lease> leases = {lease("10.5.0.32/28", "1.1.1.1")};
  std::mt19937_64 rng(42);
  std::map<uint32_t, int> seen;
  const uint32_t first = IP4::parse("10.5.0.16").value;
  for (int i = 0; i < 5000; ++i) {
    Allocation a = allocate_subnet(c, leases, kMe, std::nullopt, rng);
    ASSERT_EQ(a.source, Source::kNew);
    ASSERT_EQ(a.subnet.prefix, 28);
    ASSERT_NE(a.subnet.str(), "10.5.0.32/28");
    seen[a.subnet.ip.value]++;
  }
  // Candidates: .16, then .48 onwards (skipping the leased .32): 100 of them, up to 10.5.6.96.
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(seen.begin()->first, first);
  EXPECT_EQ(IP4{seen.rbegin()->first}.str(), "10.5.6.80");
  for (const auto& [ip, n] : seen) EXPECT_GT(n, 15) << IP4{ip}.str();  // mean 50
  // Same seed, same choice: the decision is deterministic given the generator.
  std::mt19937_64 r1(7), r2(7);
  EXPECT_EQ(allocate_subnet(c, leases, kMe, std::nullopt, r1).subnet,
            allocate_subnet(c, leases, kMe, std::nullopt, r2).subnet);
}

TEST(Allocator, SkipsOverlapsOfAnyPrefixLength) {
  Config c = parse_config(R"({"Network":"10.0.0.0/8"})");  // /24s from 10.0.1.0
  std::vector<Lease> leases = {lease("10.0.0.0/12", "1.1.1.1"), lease("10.16.0.128/25", "1.1.1.2"),
                               lease("10.16.1.0/24", "1.1.1.3"), lease("10.16.3.5/32", "1.1.1.4"),
                               lease("10.16.6.0/32", "1.1.1.5")};
  std::mt19937_64 rng(3);
  std::set<IP4Net> seen;  // ordered by address
  for (int i = 0; i < 3000; ++i)
    seen.insert(allocate_subnet(c, leases, kMe, std::nullopt, rng).subnet);
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(seen.begin()->str(), "10.16.2.0/24");
  EXPECT_FALSE(seen.count(IP4Net::parse("10.16.0.0/24")));
  EXPECT_FALSE(seen.count(IP4Net::parse("10.16.3.0/24")));
  EXPECT_TRUE(seen.count(IP4Net::parse("10.16.4.0/24")));
  EXPECT_FALSE(seen.count(IP4Net::parse("10.16.6.0/24")));  // a /32 on its first address
  EXPECT_EQ(seen.rbegin()->str(), "10.16.103.0/24");  // 2, 4, 5, then 7..103: 100 free candidates
}

TEST(Allocator, ExhaustionNamesTheRange) {
  Config c = parse_config(R"({"Network":"10.5.0.0/28"})");  // /30s: .4 .8 .12
  std::vector<Lease> leases = {lease("10.5.0.4/30", "1.1.1.1"), lease("10.5.0.8/30", "1.1.1.2"),
                               lease("10.5.0.12/30", "1.1.1.3")};
  std::mt19937_64 rng(1);
  try {
    allocate_subnet(c, leases, kMe, std::nullopt, rng);
    FAIL();
  } catch (const AllocError& e) {
    EXPECT_STREQ(
        e.what(),
        "IPv4 network exhausted: all 3 subnets of 10.5.0.0/28 between SubnetMin 10.5.0.4 and "
        "SubnetMax 10.5.0.12 are leased (3 leases in the store)");
  }
  // One freed slot is found even at the very end.
  leases.pop_back();
  EXPECT_EQ(allocate_subnet(c, leases, kMe, std::nullopt, rng).subnet.str(), "10.5.0.12/30");
}

TEST(Allocator, WholeAddressSpaceEdges) {
  Config c = parse_config(R"({"Network":"0.0.0.0/0"})");
  std::vector<Lease> leases = {lease("0.0.0.0/1", "1.1.1.1"),   lease("128.0.0.0/2", "1.1.1.2"),
                               lease("192.0.0.0/3", "1.1.1.3"), lease("224.0.0.0/4", "1.1.1.4"),
                               lease("240.0.0.0/5", "1.1.1.5"), lease("248.0.0.0/6", "1.1.1.6"),
                               lease("252.0.0.0/7", "1.1.1.7"), lease("254.0.0.0/8", "1.1.1.8"),
                               lease("255.0.0.0/9", "1.1.1.9")};
  for (uint32_t k = 0; k < 32767; ++k) {  // all but the last /24 of 255.128.0.0/9
    leases.push_back(lease(
        IP4Net{IP4{IP4::parse("255.128.0.0").value + (k << 8)}, 24}.str().c_str(), "1.1.2.1"));
  }
  std::mt19937_64 rng(1);
  auto start = std::chrono::steady_clock::now();
  Allocation a = allocate_subnet(c, leases, kMe, std::nullopt, rng);
  EXPECT_EQ(a.subnet.str(), "255.255.255.0/24");  // SubnetMax, no wrap-around
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

TEST(Allocator, ThousandLeases) {
  Config c = config(",\"SubnetLen\":26");  // 1023 candidates from 10.5.0.64
  std::vector<Lease> leases;
  // Leases in shuffled order, all of the first 1000 candidates taken.
  for (uint32_t i = 0; i < 1000; ++i) {
    uint32_t k = (i * 7919) % 1000;
    leases.push_back(
        lease(IP4Net{IP4{IP4::parse("10.5.0.64").value + (k << 6)}, 26}.str().c_str(), "10.0.0.1"));
  }
  std::mt19937_64 rng(5);
  std::set<IP4Net> seen;
  for (int i = 0; i < 300; ++i) {
    Allocation a = allocate_subnet(c, leases, kMe, std::nullopt, rng);
    ASSERT_EQ(a.source, Source::kNew);
    seen.insert(a.subnet);
  }
  // The last leased is 10.5.0.64 + 999*64 = 10.5.250.0; 23 candidates remain up to SubnetMax.
  EXPECT_EQ(seen.size(), 23u);
  EXPECT_EQ(seen.begin()->str(), "10.5.250.64/26");
  EXPECT_EQ(seen.rbegin()->str(), "10.5.255.192/26");
  // And with our own lease among them it is found and reused.
  leases[500].attrs.public_ip = kMe;
  Allocation a = allocate_subnet(c, leases, kMe, std::nullopt, rng);
  EXPECT_EQ(a.source, Source::kExisting);
  EXPECT_EQ(a.subnet, leases[500].subnet);
}

// Two hosts that create "A&B" and "A&C" (or "A&B" and "D&B") at once both succeed: the store
// compares whole keys. The later writer finds the earlier one and yields.
TEST(Allocator, EarlierRivalHoldsOneOfOurSubnets) {
  auto mk = [](const char* v4, const char* v6, uint64_t rev) {
    Lease l;
    l.subnet = IP4Net::parse(v4);
    if (v6) l.ipv6_subnet = IP6Net::parse(v6);
    l.attrs.public_ip = IP4::parse("10.250.0.9");
    l.revision = rev;
    return l;
  };
  const Lease mine = mk("10.5.7.0/24", "fc00:0:0:7::/64", 20);
  EXPECT_FALSE(earlier_rival(mine, {mine}));
  // Same IPv6 subnet, other IPv4 subnet, written before: we lost.
  auto r = earlier_rival(mine, {mk("10.5.9.0/24", "fc00:0:0:7::/64", 19), mine});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->subnet, IP4Net::parse("10.5.9.0/24"));
  // Same IPv4 subnet (a dual-stack rival, or a v0.11 host's plain key), written before.
  EXPECT_TRUE(earlier_rival(mine, {mk("10.5.7.0/24", "fc00:0:0:8::/64", 5)}));
  EXPECT_TRUE(earlier_rival(mine, {mk("10.5.7.0/24", nullptr, 5)}));
  // Written after ours: that host yields, not us. Unknown revision: no order, no verdict.
  EXPECT_FALSE(earlier_rival(mine, {mk("10.5.9.0/24", "fc00:0:0:7::/64", 21)}));
  EXPECT_FALSE(earlier_rival(mine, {mk("10.5.9.0/24", "fc00:0:0:7::/64", 0)}));
  // Nothing shared.
  EXPECT_FALSE(earlier_rival(mine, {mk("10.5.8.0/24", "fc00:0:0:8::/64", 3)}));
  // The earliest of several rivals is named.
  r = earlier_rival(mine,
                    {mk("10.5.7.0/24", nullptr, 15), mk("10.5.9.0/24", "fc00:0:0:7::/64", 12)});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->revision, 12u);
  // IPv6-only keys (IPv4 part 0.0.0.0/0) collide on the IPv6 part only.
  Lease v6only = mk("0.0.0.0/0", "fc00:0:0:7::/64", 20);
  EXPECT_FALSE(earlier_rival(
      v6only, {mk("0.0.0.0/0", "fc00:0:0:8::/64", 3), mk("10.5.1.0/24", nullptr, 4)}));
  EXPECT_TRUE(earlier_rival(v6only, {mk("10.5.1.0/24", "fc00:0:0:7::/64", 3)}));
  // The same whole key is the store's business (its create fails), not a rival.
  EXPECT_FALSE(earlier_rival(v6only, {mk("0.0.0.0/0", "fc00:0:0:7::/64", 3)}));
}

}  // namespace
}  // namespace flannel
