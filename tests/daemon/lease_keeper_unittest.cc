// LeaseKeeper's race with another host creating a dual-stack lease at the same moment: the store
// only refuses an existing *whole* key, so "A&B" and "C&B" can both be created. The keeper lists
// again after creating a key with an IPv6 part; the later writer deletes its lease and picks
// again, the earlier keeps its own (MemoryStore stands in for the other host's writes).
#include "daemon/agent/lease_keeper.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <utility>

#include "tests/daemon/memory_store.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

// Runs `before` (once) just before the keeper's first create and `after` just after it.
class RacingStore : public MemoryStore {
 public:
  std::function<void(const Lease&ours)> before, after;
  Status create_lease(const Lease& lease, std::chrono::seconds ttl, Lease* created) override {
    if (auto f = std::exchange(before, nullptr)) f(lease);
    Status s = MemoryStore::create_lease(lease, ttl, created);
    if (auto f = std::exchange(after, nullptr)) f(lease);
    return s;
  }
};

Config dual() {
  return parse_config(R"({"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":"fc00::/48"})");
}

LeaseAttrs me() {
  LeaseAttrs a;
  a.public_ip = IP4::parse("10.250.0.1");
  a.public_ipv6 = IP6::parse("fd00:250::1");
  return a;
}

// The other host's lease: one of `ours`'s subnets (IPv6 if `same_v6`, else IPv4), the other new.
Lease rival_of(const Lease& ours, bool same_v6) {
  Lease r;
  r.subnet = same_v6 ? IP4Net{IP4{ours.subnet.ip.value ^ 0x100}, 24} : ours.subnet;
  IP6Net v6 = *ours.ipv6_subnet;
  if (!same_v6) v6.ip.bytes[7] ^= 1;
  r.ipv6_subnet = v6;
  r.attrs.public_ip = IP4::parse("10.250.0.2");
  r.attrs.public_ipv6 = IP6::parse("fd00:250::2");
  return r;
}

// No two leases share an IPv4 or an IPv6 subnet.
void expect_no_shared_subnet(MemoryStore& store) {
  LeaseList list;
  ASSERT_TRUE(store.list_leases(&list).ok());
  std::set<IP4Net> v4;
  std::set<IP6Net> v6;
  for (const auto& l : list.leases) {
    EXPECT_TRUE(v4.insert(l.subnet).second) << l.key().str();
    if (l.ipv6_subnet) { EXPECT_TRUE(v6.insert(*l.ipv6_subnet).second) << l.key().str(); }
  }
}

class LeaseKeeperRace : public ::testing::TestWithParam<bool> {};

TEST_P(LeaseKeeperRace, LaterCreatorYieldsAndPicksAgain) {
  const bool same_v6 = GetParam();
  RacingStore store;
  store.set_config("{}");
  Metrics metrics;
  LeaseKeeper keeper(store, metrics, 24h);
  Lease first_choice, rival;
  store.before = [&](const Lease& ours) {
    first_choice = ours;
    rival = store.put_lease(rival_of(ours, same_v6));
  };
  std::stop_source stop;
  auto got = keeper.acquire(dual(), me(), std::nullopt, stop.get_token());
  ASSERT_TRUE(got);
  EXPECT_EQ(store.calls(MemoryStore::Op::kCreate), 2u) << "the keeper should have picked again";
  EXPECT_FALSE(store.lease(first_choice.key())) << "the losing lease must be deleted";
  EXPECT_TRUE(store.lease(rival.key())) << "the other host's lease must stay";
  EXPECT_TRUE(store.lease(got->key()));
  expect_no_shared_subnet(store);
}

TEST_P(LeaseKeeperRace, EarlierCreatorKeepsItsLease) {
  const bool same_v6 = GetParam();
  RacingStore store;
  store.set_config("{}");
  Metrics metrics;
  LeaseKeeper keeper(store, metrics, 24h);
  Lease rival;
  store.after = [&](const Lease& ours) { rival = store.put_lease(rival_of(ours, same_v6)); };
  std::stop_source stop;
  auto got = keeper.acquire(dual(), me(), std::nullopt, stop.get_token());
  ASSERT_TRUE(got);
  EXPECT_EQ(store.calls(MemoryStore::Op::kCreate), 1u);
  EXPECT_TRUE(store.lease(got->key()));
  EXPECT_TRUE(store.lease(rival.key()));  // not ours to delete: that host finds ours and yields
  EXPECT_LT(got->revision, rival.revision);
}

INSTANTIATE_TEST_SUITE_P(SharedFamily, LeaseKeeperRace, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "SameIPv6" : "SameIPv4"; });

// An IPv4-only config writes v0.11's plain keys, which the store itself keeps unique: no extra
// list after the create.
TEST(LeaseKeeper, Ipv4OnlyCreateIsNotReListed) {
  RacingStore store;
  Metrics metrics;
  LeaseKeeper keeper(store, metrics, 24h);
  std::stop_source stop;
  LeaseAttrs a = me();
  a.public_ipv6.reset();
  auto got = keeper.acquire(parse_config(R"({"Network":"10.5.0.0/16"})"), a, std::nullopt,
                            stop.get_token());
  ASSERT_TRUE(got);
  EXPECT_EQ(store.calls(MemoryStore::Op::kList), 1u);
}

}  // namespace
}  // namespace flannel::testing
