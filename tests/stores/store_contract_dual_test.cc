// The Store contract for dual-stack leases (current flannel's `A.B.C.D-N&<ipv6>-M` keys, with
// PublicIPv6 and BackendV6Data in the value): run against every Store like the other cases.
#include "tests/stores/contract_util.h"
#include "tests/stores/store_contract.h"

namespace flannel::testing {
namespace {

Lease dual_lease(const std::string& v4, const std::string& v6, const std::string& ip,
                 const std::string& ip6) {
  Lease l;
  l.subnet = v4.empty() ? kNoIPv4Subnet : IP4Net::parse(v4);
  l.ipv6_subnet = IP6Net::parse(v6);
  l.attrs.public_ip = IP4::parse(ip);
  l.attrs.public_ipv6 = IP6::parse(ip6);
  l.attrs.backend_type = "vxlan";
  l.attrs.backend_data = v4.empty() ? "" : R"({"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:01"})";
  l.attrs.backend_v6_data = R"({"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:02"})";
  return l;
}

TEST_P(StoreContract, DualStackLeasesCreateListWatchRenewDelete) {
  auto a = harness_->connect();
  auto b = harness_->connect();
  LeaseList before;
  ASSERT_TRUE(IsOk(b->list_leases(&before)));
  uint64_t rev = before.revision;

  // A dual-stack lease, a v0.11 lease on the same IPv4 subnet (another key: leases are
  // identified by the whole key, as in etcd), and an IPv6-only lease.
  const Lease dual = dual_lease("10.5.20.0/24", "fc00:0:0:20::/64", "192.168.0.20", "2001:db8::20");
  const Lease v4 = make_lease("10.5.20.0/24", "192.168.0.21", "udp");
  const Lease v6only = dual_lease("", "fc00:0:0:21::/64", "0.0.0.0", "2001:db8::21");
  Lease created_dual, created_v4, created_v6;
  ASSERT_TRUE(IsOk(a->create_lease(dual, 60s, &created_dual)));
  EXPECT_EQ(created_dual.key(), dual.key());
  EXPECT_EQ(created_dual.attrs, dual.attrs);
  ASSERT_TRUE(IsOk(a->create_lease(v4, 60s, &created_v4)));
  ASSERT_TRUE(IsOk(a->create_lease(v6only, 60s, &created_v6)));
  EXPECT_EQ(created_v6.key(), v6only.key());
  Lease ignored;
  EXPECT_TRUE(HasCode(b->create_lease(dual, 60s, &ignored), StoreCode::kConflict));

  LeaseList list;
  ASSERT_TRUE(IsOk(b->list_leases(&list)));
  EXPECT_TRUE(list.warnings.empty()) << list.warnings.front();
  const Lease* got = find_lease(list, dual.key());
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->attrs, dual.attrs);
  EXPECT_EQ(got->revision, created_dual.revision);
  got = find_lease(list, v4.subnet);
  ASSERT_NE(got, nullptr);
  EXPECT_FALSE(got->ipv6_subnet.has_value());
  EXPECT_EQ(got->attrs, v4.attrs);
  got = find_lease(list, v6only.key());
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->attrs, v6only.attrs);

  Lease one;
  ASSERT_TRUE(IsOk(b->get_lease(dual.key(), &one)));
  EXPECT_EQ(one.key(), dual.key());
  EXPECT_EQ(one.attrs, dual.attrs);

  // Renew: the key (both subnets) is kept, the attrs replaced.
  Lease update = created_dual;
  update.attrs.backend_v6_data = R"({"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:03"})";
  Lease renewed;
  ASSERT_TRUE(IsOk(a->renew_lease(update, 120s, &renewed)));
  EXPECT_EQ(renewed.key(), dual.key());
  EXPECT_EQ(renewed.attrs, update.attrs);
  EXPECT_GT(renewed.revision, created_dual.revision);

  ASSERT_TRUE(IsOk(a->delete_lease(dual.key(), renewed.revision)));
  EXPECT_TRUE(HasCode(b->get_lease(dual.key(), &one), StoreCode::kNotFound));
  ASSERT_TRUE(IsOk(b->get_lease(v4.subnet, &one)))
      << "deleting the dual-stack key touched the v0.11 one";

  // The watcher sees every step with the whole key.
  auto events = watch_until(
      *b, &rev, [](const std::vector<LeaseEvent>& e) { return e.size() >= 5; }, 10s);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].type, LeaseEventType::kAdded);
  EXPECT_EQ(events[0].lease.key(), dual.key());
  EXPECT_EQ(events[0].lease.attrs, dual.attrs);
  EXPECT_EQ(events[1].lease.key(), LeaseKey{v4.subnet});
  EXPECT_EQ(events[2].lease.key(), v6only.key());
  EXPECT_EQ(events[2].lease.attrs.public_ipv6, IP6::parse("2001:db8::21"));
  EXPECT_EQ(events[3].type, LeaseEventType::kAdded);
  EXPECT_EQ(events[3].lease.key(), dual.key());
  EXPECT_EQ(events[3].lease.attrs, update.attrs);
  EXPECT_EQ(events[4].type, LeaseEventType::kRemoved);
  EXPECT_EQ(events[4].lease.key(), dual.key());
}

}  // namespace
}  // namespace flannel::testing
