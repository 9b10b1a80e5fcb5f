// Dual stack (current flannel, facts sheet section 2): config fields, the `&` lease key, the
// lease JSON with PublicIPv6/BackendV6Data, allocation of both families and subnet.env lines.
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/config.h"
#include "core/lease.h"
#include "core/peer_cache.h"
#include "core/subnet_env.h"
#include "tests/core/config_error.h"

namespace flannel {
namespace {

std::string range6(const Config& c) {
  return std::to_string(c.ipv6_subnet_len) + " " + c.ipv6_subnet_min.str() + " " +
         c.ipv6_subnet_max.str();
}

Config dual(const std::string& v6net = "fc00::/48", const std::string& extra = "") {
  return parse_config(R"({"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":")" + v6net +
                      "\"" + extra + R"(,"Backend":{"Type":"alloc"}})");
}

TEST(DualStackConfig, DefaultsMatchCurrentFlannelExamples) {
  EXPECT_EQ(range6(dual("fc00::/48")), "64 fc00:0:0:1:: fc00:0:0:ffff::");
  EXPECT_EQ(range6(dual("2001:cafe:42::/56")), "64 2001:cafe:42:1:: 2001:cafe:42:ff::");
  EXPECT_EQ(range6(dual("fc00::/120")), "122 fc00::40 fc00::c0");
  EXPECT_EQ(dual("fc00::5/48").ipv6_network.str(), "fc00::/48");  // host bits cleared
  EXPECT_EQ(range6(dual("fc00::/62")), "64 fc00:0:0:1:: fc00:0:0:3::");
  EXPECT_EQ(range6(dual("fc00::/63")), "65 fc00::8000:0:0:0 fc00:0:0:1:8000::");
  Config c = dual();
  EXPECT_TRUE(c.enable_ipv4);
  EXPECT_TRUE(c.enable_ipv6);
  EXPECT_EQ(c.subnet_len, 24);
  // Explicit, case-insensitive keys; null Min/Max = unset.
  Config e =
      parse_config(R"({"network":"10.5.0.0/16","enableipv6":true,"ipv6network":"fc00::/48",)"
                   R"("IPv6SubnetLen":80,"IPv6SubnetMin":null,"IPv6SubnetMax":"fc00:0:0:2::"})");
  EXPECT_EQ(range6(e), "80 fc00::1:0:0:0 fc00:0:0:2::");
}

TEST(DualStackConfig, IPv6OnlyAndOffSwitches) {
  Config c = parse_config(R"({"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fc00::/48"})");
  EXPECT_FALSE(c.enable_ipv4);
  EXPECT_EQ(c.network, IP4Net{});  // v4 fields stay zero, no v4 validation
  EXPECT_EQ(c.subnet_len, 0);
  EXPECT_EQ(c.str(),
            "EnableIPv4=false IPv6Network=fc00::/48 IPv6SubnetLen=64 IPv6SubnetMin=fc00:0:0:1:: "
            "IPv6SubnetMax=fc00:0:0:ffff:: Backend=udp");
  // IPv6 fields are ignored while EnableIPv6 is false; the log line stays v0.11's.
  Config off = parse_config(R"({"Network":"10.5.0.0/16","IPv6Network":"bogus"})");
  EXPECT_FALSE(off.enable_ipv6);
  EXPECT_EQ(off.str(),
            "Network=10.5.0.0/16 SubnetLen=24 SubnetMin=10.5.1.0 SubnetMax=10.5.255.0 Backend=udp");
  EXPECT_EQ(dual().str(),
            "Network=10.5.0.0/16 SubnetLen=24 SubnetMin=10.5.1.0 SubnetMax=10.5.255.0 "
            "IPv6Network=fc00::/48 IPv6SubnetLen=64 IPv6SubnetMin=fc00:0:0:1:: "
            "IPv6SubnetMax=fc00:0:0:ffff:: Backend=alloc");
}

TEST(DualStackConfig, ErrorsNameFieldAndValue) {
  EXPECT_NE(error_of(R"({"Network":"10.5.0.0/16","EnableIPv4":false})")
                .find("EnableIPv4 and EnableIPv6 are both false"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"Network":"10.5.0.0/16","EnableIPv6":true})")
                .find("please define a correct IPv6Network"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"Network":"10.5.0.0/16","EnableIPv6":"yes","IPv6Network":"fc00::/48"})")
                .find("EnableIPv6 must be true or false, got \"yes\""),
            std::string::npos);
  auto err = [](const std::string& v6net, const std::string& extra = "") {
    return error_of(R"({"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":")" + v6net + "\"" +
                    extra + "}");
  };
  EXPECT_NE(err("10.6.0.0/16").find("IPv6Network \"10.6.0.0/16\" is an IPv4 network"),
            std::string::npos);
  EXPECT_NE(err("fc00::/129").find("invalid CIDR address for IPv6Network: \"fc00::/129\""),
            std::string::npos);
  EXPECT_NE(err("fc00::/125")
                .find("IPv6Network is too small. Minimum useful network prefix is /124 (got "
                      "IPv6Network fc00::/125)"),
            std::string::npos);
  EXPECT_EQ(err("fc00::/124"), "");
  EXPECT_NE(err("fc00::/48", R"(,"IPv6SubnetLen":127)")
                .find("IPv6SubnetLen must be less than /127 (got IPv6SubnetLen 127"),
            std::string::npos);
  EXPECT_NE(
      err("fc00::/48", R"(,"IPv6SubnetLen":49)")
          .find("IPv6Network must be able to accommodate at least four subnets (IPv6SubnetLen 49"),
      std::string::npos);
  EXPECT_NE(err("fc00::/48", R"(,"IPv6SubnetLen":-1)")
                .find("IPv6SubnetLen must be a non-negative integer"),
            std::string::npos);
  EXPECT_NE(err("fc00::/48", R"(,"IPv6SubnetMin":"fd00::")")
                .find("IPv6SubnetMin is not in the range of the IPv6Network (IPv6SubnetMin fd00::"),
            std::string::npos);
  EXPECT_NE(
      err("fc00::/48", R"(,"IPv6SubnetMax":"fd00::")").find("IPv6SubnetMax is not in the range"),
      std::string::npos);
  EXPECT_NE(err("fc00::/48", R"(,"IPv6SubnetMin":"fc00:0:0:1::1")")
                .find("IPv6SubnetMin is not on a SubnetLen boundary: fc00:0:0:1::1"),
            std::string::npos);
  EXPECT_NE(err("fc00::/48", R"(,"IPv6SubnetMax":"zz")")
                .find("invalid IP address format for IPv6SubnetMax: \"zz\""),
            std::string::npos);
  EXPECT_NE(err("fc00::/48", R"(,"IPv6SubnetMin":"fc00:0:0:5::","IPv6SubnetMax":"fc00:0:0:4::")")
                .find("IPv6SubnetMin fc00:0:0:5:: is greater than IPv6SubnetMax fc00:0:0:4::"),
            std::string::npos);
  // IPv4 checks only when EnableIPv4.
  EXPECT_EQ(
      error_of(
          R"({"EnableIPv4":false,"Network":"garbage","EnableIPv6":true,"IPv6Network":"fc00::/48"})"),
      "");
  EXPECT_NE(error_of(R"({"EnableIPv6":true,"IPv6Network":"fc00::/48"})").find("Network is missing"),
            std::string::npos);
}

TEST(DualStackKey, MakeAndParse) {
  const LeaseKey k{IP4Net::parse("10.5.1.0/24"), IP6Net::parse("fc00:0:0:1::/64")};
  EXPECT_EQ(subnet_key(k), "10.5.1.0-24&fc00:0:0:1::-64");
  EXPECT_EQ(subnet_key(IP4Net::parse("10.5.1.0/24")), "10.5.1.0-24");
  EXPECT_EQ(subnet_key(LeaseKey{kNoIPv4Subnet, IP6Net::parse("fc00::/64")}), "0.0.0.0-0&fc00::-64");
  EXPECT_EQ(parse_subnet_key("10.5.1.0-24&fc00:0:0:1::-64"), k);
  EXPECT_EQ(parse_subnet_key("/coreos.com/network/subnets/10.5.34.0-24&fc00::-64"),
            (LeaseKey{IP4Net::parse("10.5.34.0/24"), IP6Net::parse("fc00::/64")}));
  EXPECT_EQ(parse_subnet_key("0.0.0.0-0&fc00:0:0:7::-64"),
            (LeaseKey{kNoIPv4Subnet, IP6Net::parse("fc00:0:0:7::/64")}));
  EXPECT_EQ(parse_subnet_key("10.5.1.0-24&fc00::-127")->ipv6_subnet->prefix, 127);
  EXPECT_EQ(parse_subnet_key("10.5.1.0-24"), LeaseKey{IP4Net::parse("10.5.1.0/24")});
  // Bad v6 parts make the whole key unreadable (current flannel ignores it).
  for (const char* bad :
       {"10.5.1.0-24&FC00::-64", "10.5.1.0-24&fc00::-128", "10.5.1.0-24&fc00::-", "10.5.1.0-24&-64",
        "10.5.1.0-24&fc00::64", "10.5.1.0-24&fc00:::1::-64", "10.5.1.0-24&fc00::-64x",
        "10.5.1.0-24&::ffff:1.2.3.4-64", "10.5.1.0-24&fc00::-64&fc01::-64", "fc00::-64",
        "10.5.1.0-24&gc00::-64"}) {
    EXPECT_EQ(parse_subnet_key(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(k.str(), "10.5.1.0/24 fc00:0:0:1::/64");
  EXPECT_EQ((LeaseKey{kNoIPv4Subnet, IP6Net::parse("fc00::/64")}).str(), "fc00::/64");
}

TEST(DualStackJson, ByteEqualWithFactsSheet) {
  const std::string facts =
      R"({"PublicIP":"192.168.1.10","PublicIPv6":"2001:db8::10","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:01"},"BackendV6Data":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:02"}})";
  LeaseAttrs a = decode_lease_attrs(facts);
  EXPECT_EQ(a.public_ip, IP4::parse("192.168.1.10"));
  EXPECT_EQ(a.public_ipv6, IP6::parse("2001:db8::10"));
  EXPECT_EQ(a.backend_v6_data, R"({"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:02"})");
  EXPECT_EQ(encode_lease_attrs(a), facts);
  // Built by hand: same bytes.
  LeaseAttrs b{IP4::parse("192.168.1.10"), "vxlan", R"({"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:01"})",
               IP6::parse("2001:db8::10"), R"({"VNI":1, "VtepMAC":"aa:bb:cc:dd:ee:02"})"};
  EXPECT_EQ(encode_lease_attrs(b), facts);
  // IPv4-only stays v0.11's bytes: no PublicIPv6 key.
  LeaseAttrs v4{IP4::parse("10.0.0.1"), "vxlan", R"({"VtepMAC":"82:4b:b6:2f:54:4e"})"};
  EXPECT_EQ(
      encode_lease_attrs(v4),
      R"({"PublicIP":"10.0.0.1","BackendType":"vxlan","BackendData":{"VtepMAC":"82:4b:b6:2f:54:4e"}})");
  // host-gw dual stack: PublicIPv6 and no backend data; v6-only: PublicIP 0.0.0.0.
  LeaseAttrs hg{IP4::parse("0.0.0.0"), "host-gw", "", IP6::parse("fd00::2"), ""};
  EXPECT_EQ(encode_lease_attrs(hg),
            R"({"PublicIP":"0.0.0.0","PublicIPv6":"fd00::2","BackendType":"host-gw"})");
  EXPECT_EQ(decode_lease_attrs(encode_lease_attrs(hg)), hg);
  // BackendV6Data without an address writes PublicIPv6 null, as Go's nil pointer.
  LeaseAttrs nul{IP4::parse("10.0.0.1"), "", "", std::nullopt, R"({"x":1})"};
  EXPECT_EQ(encode_lease_attrs(nul),
            R"({"PublicIP":"10.0.0.1","PublicIPv6":null,"BackendV6Data":{"x":1}})");
  EXPECT_EQ(decode_lease_attrs(encode_lease_attrs(nul)), nul);
}

TEST(DualStackJson, DecodeForms) {
  EXPECT_EQ(decode_lease_attrs(R"({"PublicIP":"10.0.0.1","PublicIPv6":null})").public_ipv6,
            std::nullopt);
  EXPECT_EQ(
      decode_lease_attrs(R"({"publicipv6":"FC00::1","PublicIP":"10.0.0.1","backendv6data":null})")
          .public_ipv6,
      IP6::parse("fc00::1"));
  EXPECT_THROW(decode_lease_attrs(R"({"PublicIP":"10.0.0.1","PublicIPv6":"10.0.0.2x"})"),
               ParseError);
  EXPECT_THROW(decode_lease_attrs(R"({"PublicIP":"10.0.0.1","PublicIPv6":7})"), ParseError);
}

Lease lease6(const char* v4, const char* v6, const char* ip, const char* ip6 = nullptr) {
  Lease l;
  l.subnet = v4 ? IP4Net::parse(v4) : kNoIPv4Subnet;
  if (v6) l.ipv6_subnet = IP6Net::parse(v6);
  l.attrs.public_ip = IP4::parse(ip);
  if (ip6) l.attrs.public_ipv6 = IP6::parse(ip6);
  l.revision = 3;
  return l;
}

const IP4 kMe = IP4::parse("192.168.0.1");

TEST(DualStackAlloc, NewLeaseHasBothFamiliesAvoidingTakenOnes) {
  Config c = dual("fc00::/120");  // /122: fc00::40, ::80, ::c0
  std::vector<Lease> leases = {
      lease6("10.5.1.0/24", "fc00::40/122", "192.168.0.2"),
      lease6("10.5.2.0/24", nullptr, "192.168.0.3"),           // v0.11 host
      lease6(nullptr, "fc00::80/122", "0.0.0.0", "fd00::4")};  // v6-only host
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    Allocation a = allocate_subnet(c, leases, kMe, std::nullopt, rng);
    EXPECT_EQ(a.source, Allocation::Source::kNew);
    EXPECT_NE(a.subnet, IP4Net::parse("10.5.1.0/24"));
    EXPECT_NE(a.subnet, IP4Net::parse("10.5.2.0/24"));
    EXPECT_TRUE(is_compatible(c, a.subnet));
    ASSERT_TRUE(a.ipv6_subnet);
    EXPECT_EQ(*a.ipv6_subnet, IP6Net::parse("fc00::c0/122"));  // the one free v6 subnet
    EXPECT_TRUE(is_compatible_key(c, a.key()));
  }
  leases.push_back(lease6("10.5.3.0/24", "fc00::c0/122", "192.168.0.5"));
  std::mt19937_64 rng(1);
  try {
    allocate_subnet(c, leases, kMe, std::nullopt, rng);
    FAIL();
  } catch (const AllocError& e) {
    EXPECT_STREQ(
        e.what(),
        "IPv6 network exhausted: all 3 IPv6 subnets of fc00::/120 between IPv6SubnetMin fc00::40 "
        "and IPv6SubnetMax fc00::c0 are leased (4 leases in the store)");
  }
}

TEST(DualStackAlloc, PicksRandomlyAmongFirstHundredPerFamily) {
  Config c = dual();
  std::set<IP6Net> seen6;
  std::set<IP4Net> seen4;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    std::mt19937_64 rng(seed);
    Allocation a = allocate_subnet(c, {}, kMe, std::nullopt, rng);
    seen4.insert(a.subnet);
    seen6.insert(*a.ipv6_subnet);
  }
  EXPECT_GT(seen6.size(), 50u);
  EXPECT_EQ(seen6.begin()->str(), "fc00:0:0:1::/64");
  EXPECT_LE(seen6.rbegin()->ip, IP6::parse("fc00:0:0:64::"));  // within the first 100
  EXPECT_GT(seen4.size(), 50u);
}

TEST(DualStackAlloc, ReuseOnlyWhenCompatible) {
  Config c = dual();
  std::mt19937_64 rng(1);
  // Our dual-stack lease is reused.
  Lease mine = lease6("10.5.9.0/24", "fc00:0:0:9::/64", "192.168.0.1");
  Allocation a = allocate_subnet(c, {mine}, kMe, std::nullopt, rng);
  EXPECT_EQ(a.source, Allocation::Source::kExisting);
  EXPECT_EQ(a.key(), mine.key());
  // Our IPv4-only lease is incompatible with IPv6 on (deleted, both families allocated anew).
  Lease old = lease6("10.5.9.0/24", nullptr, "192.168.0.1");
  a = allocate_subnet(c, {old}, kMe, std::nullopt, rng);
  EXPECT_EQ(a.source, Allocation::Source::kNew);
  ASSERT_EQ(a.incompatible.size(), 1u);
  EXPECT_NE(a.subnet, old.subnet);  // still counts as taken until deleted
  // ... and our dual-stack lease is incompatible with IPv6 off.
  a = allocate_subnet(parse_config(R"({"Network":"10.5.0.0/16"})"), {mine}, kMe, std::nullopt, rng);
  EXPECT_EQ(a.incompatible.size(), 1u);
  EXPECT_FALSE(a.ipv6_subnet);
  // Wrong v6 length or outside the range.
  EXPECT_FALSE(is_compatible_key(
      c, LeaseKey{IP4Net::parse("10.5.9.0/24"), IP6Net::parse("fc00:0:0:9::/80")}));
  EXPECT_FALSE(
      is_compatible_key(c, LeaseKey{IP4Net::parse("10.5.9.0/24"), IP6Net::parse("fc00::/64")}));
  EXPECT_FALSE(is_compatible_key(
      c, LeaseKey{IP4Net::parse("10.5.9.0/24"), IP6Net::parse("fc01:0:0:9::/64")}));
}

TEST(DualStackAlloc, PreviousFromSubnetEnv) {
  Config c = dual();
  auto env = parse_env_file(
      "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.7.1/24\n"
      "FLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00:0:0:7::1/64\n");
  auto prev = previous_key_from_env(env, c);
  ASSERT_TRUE(prev);
  EXPECT_EQ(subnet_key(*prev), "10.5.7.0-24&fc00:0:0:7::-64");
  std::mt19937_64 rng(1);
  Allocation a = allocate_subnet(c, {}, kMe, prev, rng);
  EXPECT_EQ(a.source, Allocation::Source::kPrevious);
  EXPECT_EQ(subnet_key(a.key()), "10.5.7.0-24&fc00:0:0:7::-64");
  // Its v6 part held by someone else: not taken.
  a = allocate_subnet(c, {lease6("10.5.8.0/24", "fc00:0:0:7::/64", "192.168.0.9")}, kMe, prev, rng);
  EXPECT_EQ(a.source, Allocation::Source::kNew);
  EXPECT_NE(a.ipv6_subnet, IP6Net::parse("fc00:0:0:7::/64"));
  // A v0.11 subnet.env (no IPv6 line) with IPv6 on: incompatible, as in current flannel.
  auto old = previous_key_from_env(parse_env_file("FLANNEL_SUBNET=10.5.7.1/24\n"), c);
  ASSERT_TRUE(old);
  a = allocate_subnet(c, {}, kMe, old, rng);
  EXPECT_EQ(a.source, Allocation::Source::kNew);
  EXPECT_NE(a.reason.find("does not fit the config"), std::string::npos);
  // IPv6-only config: the v4 part is the placeholder.
  Config v6only =
      parse_config(R"({"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fc00::/48"})");
  auto p6 = previous_key_from_env(env, v6only);
  ASSERT_TRUE(p6);
  EXPECT_EQ(subnet_key(*p6), "0.0.0.0-0&fc00:0:0:7::-64");
  EXPECT_EQ(previous_key_from_env(parse_env_file("FLANNEL_SUBNET=10.5.7.1/24\n"), v6only),
            std::nullopt);
  std::string warning;
  previous_key_from_env(parse_env_file("FLANNEL_SUBNET=10.5.7.1/24\nFLANNEL_IPV6_SUBNET=nope\n"), c,
                        &warning);
  EXPECT_NE(warning.find("FLANNEL_IPV6_SUBNET=\"nope\""), std::string::npos);
}

TEST(DualStackAlloc, IPv6OnlyHostsAreTellApartByPublicIPv6) {
  Config c = parse_config(R"({"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fc00::/48"})");
  const IP6 me6 = IP6::parse("fd00::1");
  std::vector<Lease> leases = {lease6(nullptr, "fc00:0:0:3::/64", "0.0.0.0", "fd00::2"),
                               lease6(nullptr, "fc00:0:0:4::/64", "0.0.0.0", "fd00::1")};
  std::mt19937_64 rng(1);
  Allocation a = allocate_subnet(c, leases, IP4{}, std::nullopt, rng, me6);
  EXPECT_EQ(a.source, Allocation::Source::kExisting);
  EXPECT_EQ(subnet_key(a.key()), "0.0.0.0-0&fc00:0:0:4::-64");
  // A new host: placeholder v4 part, a free v6 subnet; many v6-only leases never block each other.
  a = allocate_subnet(c, leases, IP4{}, std::nullopt, rng, IP6::parse("fd00::9"));
  EXPECT_EQ(a.source, Allocation::Source::kNew);
  EXPECT_EQ(a.subnet, kNoIPv4Subnet);
  EXPECT_NE(a.ipv6_subnet, IP6Net::parse("fc00:0:0:3::/64"));
  EXPECT_NE(a.ipv6_subnet, IP6Net::parse("fc00:0:0:4::/64"));
  // An IPv4 config is not blocked by v6-only leases' 0.0.0.0/0 placeholder.
  a = allocate_subnet(dual(), leases, kMe, std::nullopt, rng);
  EXPECT_TRUE(is_compatible(dual(), a.subnet));
}

TEST(DualStackPeers, IdentityIsTheWholeKey) {
  PeerCache cache;
  Lease v4 = lease6("10.5.1.0/24", nullptr, "192.168.0.2");
  Lease ds = lease6("10.5.1.0/24", "fc00:0:0:1::/64", "192.168.0.3");
  Lease o1 = lease6(nullptr, "fc00:0:0:5::/64", "0.0.0.0", "fd00::5");
  Lease o2 = lease6(nullptr, "fc00:0:0:6::/64", "0.0.0.0", "fd00::6");
  Lease own = lease6(nullptr, "fc00:0:0:7::/64", "0.0.0.0", "fd00::7");
  cache.set_own(own.key());
  ds.created = 9;  // v4 (created 0: unknown, so the oldest) keeps the IPv4 subnet both claim
  auto ev = cache.resync({v4, ds, o1, o2, own});
  EXPECT_EQ(ev.size(), 3u);
  EXPECT_EQ(cache.size(), 3u);  // the two IPv6-only leases are two peers, not one
  EXPECT_TRUE(cache.peers().count(v4.key()));
  ASSERT_TRUE(cache.refused().count(ds.key()));
  EXPECT_EQ(cache.refused().at(ds.key()).refusal.reason, RefusalReason::kOverlapsPeer);
  auto gone = cache.apply(
      {LeaseEvent{LeaseEventType::kRemoved, Lease{o1.subnet, {}, {}, 0, o1.ipv6_subnet}, false}});
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].lease.attrs.public_ipv6, IP6::parse("fd00::5"));  // the cached attrs
  EXPECT_EQ(cache.size(), 2u);
}

TEST(DualStackSubnetEnv, LinesInCurrentFlannelsOrder) {
  Config c = dual();
  LeaseKey k{IP4Net::parse("10.5.34.0/24"), IP6Net::parse("fc00:0:0:1::/64")};
  EXPECT_EQ(
      render_subnet_env(make_subnet_env(c, k, 1450, true)),
      "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/24\nFLANNEL_IPV6_NETWORK=fc00::/48\n"
      "FLANNEL_IPV6_SUBNET=fc00:0:0:1::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n");
  Config v6only =
      parse_config(R"({"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fc00::/48"})");
  EXPECT_EQ(render_subnet_env(make_subnet_env(
                v6only, LeaseKey{kNoIPv4Subnet, IP6Net::parse("fc00:0:0:1::/64")}, 1450, false)),
            "FLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00:0:0:1::1/"
            "64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n");
  // IPv4 only: byte-identical to v0.11 (and to the IPv4-only make_subnet_env).
  Config v4 = parse_config(R"({"Network":"10.5.0.0/16"})");
  const std::string v011 =
      "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/"
      "24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n";
  EXPECT_EQ(render_subnet_env(make_subnet_env(v4, IP4Net::parse("10.5.34.0/24"), 1450, false)),
            v011);
  EXPECT_EQ(
      render_subnet_env(make_subnet_env(v4.network, IP4Net::parse("10.5.34.0/24"), 1450, false)),
      v011);
}

}  // namespace
}  // namespace flannel
