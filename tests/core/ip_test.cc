#include "core/ip.h"

#include <gtest/gtest.h>

namespace flannel {
namespace {

IP4 ip4(const char* s) { return IP4::parse(s); }
IP4Net net4(const char* s) { return IP4Net::parse(s); }
IP6Net net6(const char* s) { return IP6Net::parse(s); }

TEST(IP4, ParsesAndPrints) {
  EXPECT_EQ(ip4("10.5.0.1").value, 0x0a050001u);
  EXPECT_EQ(ip4("0.0.0.0").value, 0u);
  EXPECT_EQ(ip4("255.255.255.255").value, 0xffffffffu);
  EXPECT_EQ(ip4("10.5.0.1").str(), "10.5.0.1");
  EXPECT_EQ(IP4{0xffffffffu}.str(), "255.255.255.255");
  // Go 1.10 reads leading zeros as decimal, not octal.
  EXPECT_EQ(ip4("010.005.000.001").str(), "10.5.0.1");
  EXPECT_TRUE(ip4("0.0.0.0").is_zero());
  EXPECT_LT(ip4("9.255.255.255"), ip4("10.0.0.0"));
}

TEST(IP4, RejectsGarbage) {
  for (const char* bad :
       {"", "1.2.3", "1.2.3.4.5", "1.2.3.256", "1..3.4", ".1.2.3", "1.2.3.4.", " 1.2.3.4",
        "1.2.3.4 ", "1.2.3.-4", "a.b.c.d", "1.2.3.4/24", "::1", "1.2.3.99999999999999999999"}) {
    EXPECT_EQ(IP4::try_parse(bad), std::nullopt) << bad;
  }
  try {
    IP4::parse("1.2.3.256");
    FAIL();
  } catch (const ParseError& e) {
    EXPECT_STREQ(e.what(),
                 "invalid IPv4 address \"1.2.3.256\": expected a dotted quad like 10.5.0.1");
  }
}

TEST(IP4Net, ParseClearsHostBits) {
  EXPECT_EQ(net4("10.5.1.7/16"), (IP4Net{ip4("10.5.0.0"), 16}));
  EXPECT_EQ(net4("10.5.1.7/16").str(), "10.5.0.0/16");
  EXPECT_EQ(net4("1.2.3.4/0").str(), "0.0.0.0/0");
  EXPECT_EQ(net4("1.2.3.4/32").str(), "1.2.3.4/32");
  EXPECT_EQ(IP4Net::parse_keep_host("10.5.34.1/24").str(), "10.5.34.1/24");
  EXPECT_EQ(IP4Net::parse_keep_host("10.5.34.1/24").network().str(), "10.5.34.0/24");
}

TEST(IP4Net, RejectsBadCidr) {
  for (const char* bad : {"10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8/8",
                          "/8", "10.0.0/8", "fd00::/8", "10.0.0.0/8 "}) {
    EXPECT_EQ(IP4Net::try_parse(bad), std::nullopt) << bad;
  }
  EXPECT_THROW(IP4Net::parse_keep_host("10.0.0.1"), ParseError);
  try {
    net4("10.0.0.0/33");
    FAIL();
  } catch (const ParseError& e) {
    EXPECT_NE(std::string(e.what()).find("\"10.0.0.0/33\""), std::string::npos);
  }
}

TEST(IP4Net, MaskSizeContains) {
  EXPECT_EQ(net4("0.0.0.0/0").mask(), 0u);
  EXPECT_EQ(net4("0.0.0.0/0").size(), 1ull << 32);
  EXPECT_EQ(net4("10.0.0.0/8").mask(), 0xff000000u);
  EXPECT_EQ(net4("10.0.0.1/32").mask(), 0xffffffffu);
  EXPECT_EQ(net4("10.0.0.1/32").size(), 1u);
  EXPECT_TRUE(net4("0.0.0.0/0").contains(ip4("255.255.255.255")));
  EXPECT_TRUE(net4("10.5.0.0/16").contains(ip4("10.5.255.255")));
  EXPECT_FALSE(net4("10.5.0.0/16").contains(ip4("10.6.0.0")));
  EXPECT_TRUE(net4("10.5.0.0/16").contains(net4("10.5.3.0/24")));
  EXPECT_TRUE(net4("10.5.0.0/16").contains(net4("10.5.0.0/16")));
  EXPECT_FALSE(net4("10.5.3.0/24").contains(net4("10.5.0.0/16")));
  EXPECT_FALSE(net4("10.5.0.0/16").contains(net4("10.4.0.0/15")));
}

TEST(IP4Net, OverlapsWithDifferentPrefixes) {
  EXPECT_TRUE(net4("10.5.0.0/16").overlaps(net4("10.5.7.0/24")));
  EXPECT_TRUE(net4("10.5.7.0/24").overlaps(net4("10.5.0.0/16")));
  EXPECT_FALSE(net4("10.5.7.0/24").overlaps(net4("10.5.8.0/24")));
  EXPECT_TRUE(net4("10.5.7.128/25").overlaps(net4("10.5.7.0/24")));
  EXPECT_FALSE(net4("10.5.7.128/25").overlaps(net4("10.5.7.0/25")));
  EXPECT_TRUE(net4("0.0.0.0/0").overlaps(net4("1.2.3.4/32")));
  EXPECT_FALSE(net4("1.2.3.4/32").overlaps(net4("1.2.3.5/32")));
}

TEST(IP4Net, FirstHostNextPrev) {
  EXPECT_EQ(net4("10.5.34.0/24").first_host().str(), "10.5.34.1");
  EXPECT_EQ(net4("10.5.34.0/24").next()->str(), "10.5.35.0/24");
  EXPECT_EQ(net4("10.5.34.0/24").prev()->str(), "10.5.33.0/24");
  EXPECT_EQ(net4("10.5.255.0/24").next()->str(), "10.6.0.0/24");
  EXPECT_EQ(net4("255.255.255.0/24").next(), std::nullopt);
  EXPECT_EQ(net4("0.0.0.0/24").prev(), std::nullopt);
  EXPECT_EQ(net4("0.0.1.0/24").prev()->str(), "0.0.0.0/24");
  EXPECT_EQ(net4("0.0.0.0/0").next(), std::nullopt);
  EXPECT_EQ(net4("0.0.0.0/0").prev(), std::nullopt);
  EXPECT_EQ(net4("255.255.255.255/32").next(), std::nullopt);
  EXPECT_EQ(net4("255.255.255.254/32").next()->str(), "255.255.255.255/32");
  EXPECT_EQ(net4("128.0.0.0/1").prev()->str(), "0.0.0.0/1");
  EXPECT_EQ(net4("128.0.0.0/1").next(), std::nullopt);
}

TEST(IP4Net, IteratesSubnets) {
  auto s = net4("10.5.0.0/22").subnets(24, 100);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].str(), "10.5.0.0/24");
  EXPECT_EQ(s[3].str(), "10.5.3.0/24");
  EXPECT_EQ(net4("10.0.0.0/8").subnets(24, 3).back().str(), "10.0.2.0/24");
  EXPECT_EQ(net4("10.0.0.0/8").subnets(8, 10).size(), 1u);
  EXPECT_EQ(net4("0.0.0.0/0").subnets(32, 2)[1].str(), "0.0.0.1/32");
  EXPECT_EQ(net4("0.0.0.0/0").subnets(1, 10).size(), 2u);
  EXPECT_TRUE(net4("10.0.0.0/8").subnets(24, 0).empty());
  EXPECT_THROW(net4("10.0.0.0/8").subnets(7, 10), std::invalid_argument);
  EXPECT_THROW(net4("10.0.0.0/8").subnets(33, 10), std::invalid_argument);
}

TEST(IP6, ParsesForms) {
  EXPECT_EQ(IP6::parse("::").str(), "::");
  EXPECT_EQ(IP6::parse("::1").str(), "::1");
  EXPECT_EQ(IP6::parse("1::").str(), "1::");
  EXPECT_EQ(IP6::parse("2001:DB8:0:0:0:0:0:1").str(), "2001:db8::1");
  EXPECT_EQ(IP6::parse("2001:0db8:0000:0001:0000:0000:0000:0005").str(), "2001:db8:0:1::5");
  EXPECT_EQ(IP6::parse("1:2:3:4:5:6:7:8").str(), "1:2:3:4:5:6:7:8");
  EXPECT_EQ(IP6::parse("::ffff:10.1.2.3").str(), "::ffff:10.1.2.3");
  EXPECT_EQ(IP6::parse("64:ff9b::10.1.2.3").str(), "64:ff9b::a01:203");
  EXPECT_EQ(IP6::parse("1:2:3:4:5:6:1.2.3.4").str(), "1:2:3:4:5:6:102:304");
  EXPECT_EQ(IP6::parse("fe80::1").bytes[0], 0xfe);
  EXPECT_EQ(IP6::parse("::1").bytes[15], 1);
}

TEST(IP6, CanonicalPrintingRfc5952) {
  // A single zero group is not compressed; the longest run wins; the first run wins ties.
  EXPECT_EQ(IP6::parse("2001:db8:0:1:1:1:1:1").str(), "2001:db8:0:1:1:1:1:1");
  EXPECT_EQ(IP6::parse("2001:0:0:1:0:0:0:1").str(), "2001:0:0:1::1");
  EXPECT_EQ(IP6::parse("2001:db8:0:0:1:0:0:1").str(), "2001:db8::1:0:0:1");
  EXPECT_EQ(IP6::parse("0:0:0:0:0:0:0:1").str(), "::1");
  EXPECT_EQ(IP6::parse("1:0:0:0:0:0:0:0").str(), "1::");
  EXPECT_EQ(IP6::parse("ABCD::EF").str(), "abcd::ef");
}

TEST(IP6, RejectsGarbage) {
  for (const char* bad : {"", ":", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7",
                          "12345::", "g::", "1:2:3:4:5:6:7:8::", "::1.2.3",
                          "1.2.3.4::", "::1.2.3.4:5", "fe80::1%eth0", " ::1", "1:2:3:4:5:6:7::8"}) {
    EXPECT_EQ(IP6::try_parse(bad), std::nullopt) << bad;
  }
  EXPECT_THROW(IP6::parse("1::2::3"), ParseError);
}

TEST(IP6Net, Arithmetic) {
  EXPECT_EQ(net6("fd00:10::5/64").str(), "fd00:10::/64");
  EXPECT_EQ(net6("::/0").str(), "::/0");
  EXPECT_EQ(net6("::1/128").str(), "::1/128");
  EXPECT_EQ(IP6Net::try_parse("::/129"), std::nullopt);
  EXPECT_EQ(IP6Net::try_parse("10.0.0.0/8"), std::nullopt);
  EXPECT_TRUE(net6("fd00::/8").contains(IP6::parse("fdff::1")));
  EXPECT_FALSE(net6("fd00::/8").contains(IP6::parse("fe00::1")));
  EXPECT_TRUE(net6("fd00::/8").contains(net6("fd00:1::/64")));
  EXPECT_FALSE(net6("fd00:1::/64").contains(net6("fd00::/8")));
  EXPECT_TRUE(net6("fd00:1::/64").overlaps(net6("fd00::/8")));
  EXPECT_FALSE(net6("fd00:1::/64").overlaps(net6("fd00:2::/64")));
  EXPECT_EQ(net6("fd00:1::/64").first_host().str(), "fd00:1::1");
  EXPECT_EQ(net6("fd00:1::/64").next()->str(), "fd00:1:0:1::/64");
  EXPECT_EQ(net6("fd00:1::/64").prev()->str(), "fd00:0:ffff:ffff::/64");
  EXPECT_EQ(net6("::/64").prev(), std::nullopt);
  EXPECT_EQ(net6("ffff:ffff:ffff:ffff::/64").next(), std::nullopt);
  EXPECT_EQ(net6("::/0").next(), std::nullopt);
  EXPECT_EQ(net6("::/1").next()->str(), "8000::/1");
  auto s = net6("fd00::/16").subnets(64, 3);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[2].str(), "fd00:0:0:2::/64");
  EXPECT_EQ(net6("::/0").subnets(128, 2)[1].str(), "::1/128");
  EXPECT_EQ(net6("::/0").subnets(0, 5).size(), 1u);
  EXPECT_THROW(net6("fd00::/16").subnets(8, 1), std::invalid_argument);
}

}  // namespace
}  // namespace flannel
