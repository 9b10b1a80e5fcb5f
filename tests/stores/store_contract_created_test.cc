// The Store contract for a lease's creation revision (Lease::created): what decides which of two
// overlapping peer leases every host keeps (core/admission.h), so every store must report it
// the same way in create, get, list and watch, and keep it across renewals.
#include "tests/stores/contract_util.h"
#include "tests/stores/store_contract.h"

namespace flannel::testing {
namespace {

TEST_P(StoreContract, CreationRevisionIsReportedEverywhereAndKeptByRenewals) {
  auto a = harness_->connect();
  auto b = harness_->connect();
  LeaseList before;
  ASSERT_TRUE(IsOk(b->list_leases(&before)));
  uint64_t rev = before.revision;

  Lease first, second, renewed;
  ASSERT_TRUE(
      IsOk(a->create_lease(make_lease("10.5.30.0/24", "192.168.0.30", "udp"), 60s, &first)));
  EXPECT_NE(first.created, 0u);
  EXPECT_EQ(first.created, first.revision);  // a create: the key's first write
  ASSERT_TRUE(
      IsOk(a->create_lease(make_lease("10.5.31.0/24", "192.168.0.31", "udp"), 60s, &second)));
  EXPECT_GT(second.created, first.created);  // created later: a later revision
  Lease update = first;
  update.attrs.public_ip = IP4::parse("192.168.0.32");
  ASSERT_TRUE(IsOk(a->renew_lease(update, 60s, &renewed)));
  EXPECT_GT(renewed.revision, second.revision);
  EXPECT_EQ(renewed.created, first.created);  // a renewal keeps it: the winner never flips

  Lease got;
  ASSERT_TRUE(IsOk(b->get_lease(first.subnet, &got)));
  EXPECT_EQ(got.created, first.created);
  LeaseList list;
  ASSERT_TRUE(IsOk(b->list_leases(&list)));
  const Lease* listed = find_lease(list, second.subnet);
  ASSERT_NE(listed, nullptr);
  EXPECT_EQ(listed->created, second.created);
  listed = find_lease(list, first.subnet);
  ASSERT_NE(listed, nullptr);
  EXPECT_EQ(listed->created, first.created);

  auto events = watch_until(
      *b, &rev, [](const std::vector<LeaseEvent>& e) { return e.size() >= 3; }, 10s);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].lease.created, first.created);
  EXPECT_EQ(events[1].lease.created, second.created);
  EXPECT_EQ(events[2].lease.created, first.created);  // the renewal's event
  EXPECT_EQ(events[2].lease.revision, renewed.revision);

  // Deleted and created again: a new lease, a new creation revision.
  ASSERT_TRUE(IsOk(a->delete_lease(first.key(), renewed.revision)));
  Lease again;
  ASSERT_TRUE(
      IsOk(a->create_lease(make_lease("10.5.30.0/24", "192.168.0.30", "udp"), 60s, &again)));
  EXPECT_GT(again.created, renewed.revision);
}

}  // namespace
}  // namespace flannel::testing
