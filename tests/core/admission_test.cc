#include "core/admission.h"

#include <gtest/gtest.h>

namespace flannel {
namespace {

Lease lease(const std::string& key, const std::string& public_ip = "192.168.0.2",
            const std::string& public_ipv6 = "") {
  auto k = parse_subnet_key(key);
  EXPECT_TRUE(k.has_value()) << key;
  Lease l;
  l.subnet = k->subnet;
  l.ipv6_subnet = k->ipv6_subnet;
  l.attrs.public_ip = IP4::parse(public_ip);
  if (!public_ipv6.empty()) l.attrs.public_ipv6 = IP6::parse(public_ipv6);
  return l;
}

AdmissionRules v4_rules() {
  AdmissionRules r;
  r.network = IP4Net::parse("10.5.0.0/16");
  r.own = LeaseKey{IP4Net::parse("10.5.1.0/24")};
  r.own_ip4 = {IP4::parse("192.168.0.1")};
  return r;
}

AdmissionRules dual_rules() {
  AdmissionRules r = v4_rules();
  r.ipv6_network = IP6Net::parse("fc00::/48");
  r.own = LeaseKey{IP4Net::parse("10.5.1.0/24"), IP6Net::parse("fc00:0:0:1::/64")};
  r.own_ip6 = {IP6::parse("fd00::1")};
  return r;
}

// The reason check_peer_lease gives, or "admitted".
std::string verdict(const Lease& l, const AdmissionRules& rules) {
  auto r = check_peer_lease(l, rules);
  return r ? std::string(refusal_name(r->reason)) : "admitted";
}

TEST(Admission, AnHonestPeerIsAdmitted) {
  EXPECT_EQ(verdict(lease("10.5.2.0-24"), v4_rules()), "admitted");
  EXPECT_EQ(verdict(lease("10.5.2.0-24&fc00:0:0:2::-64", "192.168.0.2", "fd00::2"), dual_rules()),
            "admitted");
  // Other lengths than ours are fine as long as they are longer than the network's.
  EXPECT_EQ(verdict(lease("10.5.2.128-25"), v4_rules()), "admitted");
  EXPECT_EQ(verdict(lease("10.5.255.252-30"), v4_rules()), "admitted");
}

TEST(Admission, SubnetsOutsideTheNetworkAreRefused) {
  auto r = check_peer_lease(lease("10.6.2.0-24"), v4_rules());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, RefusalReason::kOutsideNetwork);
  EXPECT_NE(r->detail.find("10.6.2.0/24"), std::string::npos) << r->detail;
  EXPECT_NE(r->detail.find("10.5.0.0/16"), std::string::npos) << r->detail;
  // The underlay's own prefix, and the lease that once replaced every default route.
  EXPECT_EQ(verdict(lease("192.168.0.0-24"), v4_rules()), "outside_network");
  EXPECT_EQ(verdict(lease("0.0.0.0-0"), v4_rules()), "outside_network");
  EXPECT_EQ(verdict(lease("10.5.2.0-24&fd01:0:0:2::-64", "192.168.0.2", "fd00::2"), dual_rules()),
            "outside_network");
}

TEST(Admission, PrefixesMustBeLongerThanTheNetworks) {
  EXPECT_EQ(verdict(lease("10.5.0.0-16"), v4_rules()), "bad_prefix");  // the whole network
  EXPECT_EQ(verdict(lease("10.0.0.0-8"), v4_rules()), "bad_prefix");   // wider than it
  EXPECT_EQ(verdict(lease("10.5.128.0-17"), v4_rules()), "admitted");  // the boundary
  EXPECT_EQ(verdict(lease("10.5.2.0-24&fc00::-48", "192.168.0.2", "fd00::2"), dual_rules()),
            "bad_prefix");
}

TEST(Admission, HostBitsAreRefused) {
  auto r = check_peer_lease(lease("10.5.2.7-24"), v4_rules());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, RefusalReason::kHostBits);
  EXPECT_NE(r->detail.find("10.5.2.0/24"), std::string::npos) << r->detail;
  EXPECT_EQ(verdict(lease("10.5.2.0-24&fc00:0:0:2::1-64", "192.168.0.2", "fd00::2"), dual_rules()),
            "host_bits");
}

TEST(Admission, OverlapsWithOurOwnSubnetsAreRefusedInBothFamilies) {
  EXPECT_EQ(verdict(lease("10.5.1.0-24"), v4_rules()), "overlaps_own");
  EXPECT_EQ(verdict(lease("10.5.1.128-25"), v4_rules()), "overlaps_own");
  EXPECT_EQ(verdict(lease("10.5.0.0-23"), v4_rules()), "overlaps_own");
  // Someone else's key with our IPv4 subnet beside another IPv6 subnet routes our pods away.
  EXPECT_EQ(verdict(lease("10.5.1.0-24&fc00:0:0:9::-64", "192.168.0.2", "fd00::2"), dual_rules()),
            "overlaps_own");
  EXPECT_EQ(verdict(lease("10.5.9.0-24&fc00:0:0:1::-64", "192.168.0.2", "fd00::2"), dual_rules()),
            "overlaps_own");
  // Before we hold a lease nothing is ours.
  AdmissionRules no_own = v4_rules();
  no_own.own.reset();
  EXPECT_EQ(verdict(lease("10.5.1.0-24"), no_own), "admitted");
}

TEST(Admission, PublicIPMustBeAnotherHostsUnicastAddress) {
  for (const char* ip : {"0.0.0.0", "0.1.2.3", "127.0.0.1", "224.0.0.5", "239.1.1.1",
                         "255.255.255.255", "169.254.1.1"}) {
    EXPECT_EQ(verdict(lease("10.5.2.0-24", ip), v4_rules()), "bad_public_ip") << ip;
  }
  EXPECT_EQ(verdict(lease("10.5.2.0-24", "10.5.3.1"), v4_rules()), "bad_public_ip");
  EXPECT_EQ(verdict(lease("10.5.2.0-24", "192.168.0.1"), v4_rules()), "own_address");
  EXPECT_EQ(verdict(lease("10.5.2.0-24", "223.255.255.254"), v4_rules()), "admitted");
}

TEST(Admission, PublicIPv6MustBePresentAndUnicast) {
  const auto rules = dual_rules();
  const std::string key = "10.5.2.0-24&fc00:0:0:2::-64";
  EXPECT_EQ(verdict(lease(key, "192.168.0.2"), rules), "bad_public_ip");
  for (const char* ip : {"::", "::1", "ff02::1", "fe80::1", "fc00:0:0:5::1"}) {
    EXPECT_EQ(verdict(lease(key, "192.168.0.2", ip), rules), "bad_public_ip") << ip;
  }
  EXPECT_EQ(verdict(lease(key, "192.168.0.2", "fd00::1"), rules), "own_address");
  // An IPv6-only lease needs no PublicIP (its v4 part is the 0.0.0.0/0 placeholder).
  EXPECT_EQ(verdict(lease("0.0.0.0-0&fc00:0:0:2::-64", "0.0.0.0", "fd00::2"), rules), "admitted");
}

TEST(Admission, AFamilyThatIsOffIsOutsideTheNetwork) {
  AdmissionRules v6_only = dual_rules();
  v6_only.network.reset();
  v6_only.own = LeaseKey{kNoIPv4Subnet, IP6Net::parse("fc00:0:0:1::/64")};
  EXPECT_EQ(verdict(lease("10.5.2.0-24&fc00:0:0:2::-64", "192.168.0.2", "fd00::2"), v6_only),
            "outside_network");
  EXPECT_EQ(verdict(lease("10.5.2.0-24&fc00:0:0:2::-64", "192.168.0.2", "fd00::2"), v4_rules()),
            "outside_network");
}

TEST(Admission, TheBackendJudgesBackendData) {
  AdmissionRules rules = v4_rules();
  rules.backend_data = [](const Lease& l) -> std::optional<std::string> {
    if (l.attrs.backend_data.empty()) return "BackendData is missing VtepMAC";
    return std::nullopt;
  };
  auto r = check_peer_lease(lease("10.5.2.0-24"), rules);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, RefusalReason::kBadBackendData);
  EXPECT_EQ(r->detail, "BackendData is missing VtepMAC");
  Lease ok = lease("10.5.2.0-24");
  ok.attrs.backend_data = R"({"VtepMAC":"82:4b:b6:2f:54:4e"})";
  EXPECT_EQ(verdict(ok, rules), "admitted");
}

TEST(Admission, OverlapsBetweenPeersGoToTheOlderLeaseOnEveryHost) {
  Lease a = lease("10.5.2.0-24"), b = lease("10.5.2.128-25"), c = lease("10.5.3.0-24");
  a.created = 7;
  b.created = 5;
  a.revision = 3;  // the last write does not count: renewals must not flip the winner
  b.revision = 9;
  EXPECT_TRUE(keys_overlap(a.key(), b.key()));
  EXPECT_FALSE(keys_overlap(a.key(), c.key()));
  EXPECT_TRUE(wins_overlap(b, a));
  EXPECT_FALSE(wins_overlap(a, b));
  a.created = b.created = 0;  // unknown: the smaller key wins, the same answer both ways
  EXPECT_TRUE(wins_overlap(a, b));
  EXPECT_FALSE(wins_overlap(b, a));
  b.created = 4;  // unknown creation counts as the oldest
  EXPECT_TRUE(wins_overlap(a, b));
  Lease d = lease("10.5.4.0-24&fc00:0:0:4::-64", "192.168.0.4", "fd00::4");
  Lease e = lease("10.5.5.0-24&fc00:0:0:4::-64", "192.168.0.5", "fd00::5");
  EXPECT_TRUE(keys_overlap(d.key(), e.key()));  // by their IPv6 subnets alone
}

TEST(Admission, NetworksNoHostCanLiveInAreRefused) {
  Config c;
  c.network = IP4Net::parse("0.0.0.0/0");
  auto why = check_network_for_host(c, IP4::parse("192.168.0.1"), std::nullopt);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("0.0.0.0/0"), std::string::npos) << *why;
  c.network = IP4Net::parse("192.168.0.0/16");
  why = check_network_for_host(c, IP4::parse("192.168.0.1"), std::nullopt);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("192.168.0.1"), std::string::npos) << *why;
  c.network = IP4Net::parse("10.5.0.0/16");
  EXPECT_FALSE(check_network_for_host(c, IP4::parse("192.168.0.1"), std::nullopt));
  c.enable_ipv6 = true;
  c.ipv6_network = IP6Net::parse("::/0");
  EXPECT_TRUE(check_network_for_host(c, IP4::parse("192.168.0.1"), IP6::parse("fd00::1")));
  c.ipv6_network = IP6Net::parse("fd00::/48");
  EXPECT_TRUE(check_network_for_host(c, IP4::parse("192.168.0.1"), IP6::parse("fd00::1")));
  c.ipv6_network = IP6Net::parse("fc00::/48");
  EXPECT_FALSE(check_network_for_host(c, IP4::parse("192.168.0.1"), IP6::parse("fd00::1")));
}

TEST(Admission, EveryReasonHasAStableName) {
  EXPECT_EQ(refusal_name(RefusalReason::kOutsideNetwork), "outside_network");
  EXPECT_EQ(refusal_name(RefusalReason::kOverlapsPeer), "overlaps_peer");
  EXPECT_EQ(refusal_name(RefusalReason::kBadBackendData), "bad_backend_data");
}

}  // namespace
}  // namespace flannel
