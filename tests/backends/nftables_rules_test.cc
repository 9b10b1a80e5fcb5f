// The pure part of the nftables mode (backends/rules/nft_rules.h): table text, scripts, listing
// parsing and repair planning. No libnftables call; the lab test (tests/lab/nftables_labtest.cc)
// checks the same text against what nft 1.0.6 really lists.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "backends/rules/nft_rules.h"
#include "core/ip.h"

namespace flannel {
namespace {

using Drift = NftPlan::Drift;

const IP4Net kNet = IP4Net::parse("10.5.0.0/16");
const IP4Net kSub = IP4Net::parse("10.5.34.0/24");
const IP6Net kNet6 = IP6Net::parse("fc00::/48");
const IP6Net kSub6 = IP6Net::parse("fc00:0:0:1::/64");

const char* const kPostrtg4 =
    "\tchain postrtg {\n"
    "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
    "\t\tmeta mark & 0x00004000 == 0x00004000 return\n"
    "\t\tip saddr 10.5.34.0/24 ip daddr 10.5.0.0/16 return\n"
    "\t\tip saddr 10.5.0.0/16 ip daddr 10.5.34.0/24 return\n"
    "\t\tip saddr != 10.5.0.0/16 ip daddr 10.5.34.0/24 return\n"
    "\t\tip saddr 10.5.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random\n"
    "\t\tip saddr != 10.5.0.0/16 ip daddr 10.5.0.0/16 masquerade fully-random\n"
    "\t}\n";
const char* const kForward4 =
    "\tchain forward {\n"
    "\t\ttype filter hook forward priority filter; policy accept;\n"
    "\t\tip saddr 10.5.0.0/16 accept\n"
    "\t\tip daddr 10.5.0.0/16 accept\n"
    "\t}\n";
const std::string kHead4 =
    "table ip flannel-ipv4 {\n\tcomment \"flanneld: masquerade and forward rules\"\n";

TEST(NftablesRules, Ipv4TableWithBothChains) {
  EXPECT_EQ(nft_table_text(nft_rules(kNet, kSub, true, true, true)),
            kHead4 + kPostrtg4 + "\n" + kForward4 + "}\n");
}

TEST(NftablesRules, Ipv6TableUsesIp6AndFf00) {
  EXPECT_EQ(nft_table_text(nft_rules(kNet6, kSub6, true, false, false)),
            "table ip6 flannel-ipv6 {\n"
            "\tcomment \"flanneld: masquerade and forward rules\"\n"
            "\tchain postrtg {\n"
            "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
            "\t\tmeta mark & 0x00004000 == 0x00004000 return\n"
            "\t\tip6 saddr fc00:0:0:1::/64 ip6 daddr fc00::/48 return\n"
            "\t\tip6 saddr fc00::/48 ip6 daddr fc00:0:0:1::/64 return\n"
            "\t\tip6 saddr != fc00::/48 ip6 daddr fc00:0:0:1::/64 return\n"
            "\t\tip6 saddr fc00::/48 ip6 daddr != ff00::/8 masquerade\n"
            "\t\tip6 saddr != fc00::/48 ip6 daddr fc00::/48 masquerade\n"
            "\t}\n"
            "}\n");
  EXPECT_EQ(nft_table_text(nft_rules(kNet6, kSub6, false, true, false)),
            "table ip6 flannel-ipv6 {\n"
            "\tcomment \"flanneld: masquerade and forward rules\"\n"
            "\tchain forward {\n"
            "\t\ttype filter hook forward priority filter; policy accept;\n"
            "\t\tip6 saddr fc00::/48 accept\n"
            "\t\tip6 daddr fc00::/48 accept\n"
            "\t}\n"
            "}\n");
}

TEST(NftablesRules, ChainsOnlyWhenWanted) {
  EXPECT_EQ(nft_table_text(nft_rules(kNet, kSub, false, true, true)), kHead4 + kForward4 + "}\n");
  std::string masq_only = nft_table_text(nft_rules(kNet, kSub, true, false, false));
  EXPECT_EQ(masq_only.find("chain forward"), std::string::npos);
  EXPECT_EQ(masq_only.find("fully-random"), std::string::npos);
  EXPECT_NE(masq_only.find("ip daddr != 224.0.0.0/4 masquerade\n"), std::string::npos);
  EXPECT_EQ(nft_table_text(nft_rules(kNet, kSub, false, false, true)), "");
}

TEST(NftablesRules, FullLengthPrefixPrintsAsAddress) {
  auto text = nft_table_text(nft_rules(kNet, IP4Net::parse("10.5.34.7/32"), true, false, false));
  EXPECT_NE(text.find("ip saddr 10.5.34.7 ip daddr 10.5.0.0/16 return"), std::string::npos);
}

TEST(NftablesRules, ReplaceScriptIsAddDeleteThenTable) {
  auto r = nft_rules(kNet, kSub, true, true, true);
  EXPECT_EQ(nft_replace_script(r),
            "add table ip flannel-ipv4\ndelete table ip flannel-ipv4\n" + nft_table_text(r));
  EXPECT_EQ(nft_replace_script(nft_rules(kNet6, kSub6, false, false, false)),
            "add table ip6 flannel-ipv6\ndelete table ip6 flannel-ipv6\n");
  EXPECT_EQ(nft_delete_script(false), "add table ip flannel-ipv4\ndelete table ip flannel-ipv4\n");
}

TEST(NftablesRules, BadValuesAreNamed) {
  auto expect_error = [](NftRules r, const std::string& needle) {
    try {
      nft_table_text(r);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error({false, "10.5.0.300/16", "10.5.34.0/24", true, true, false}, "10.5.0.300/16");
  expect_error({false, "10.5.0.1/16", "10.5.34.0/24", true, true, false}, "10.5.0.0/16");
  expect_error({false, "10.5.0.0/16", "10.6.1.0/24", true, true, false}, "10.6.1.0/24");
  expect_error({false, "10.5.0.0/16", "", true, false, false}, "subnet");
  expect_error({true, "10.5.0.0/16", "10.5.1.0/24", true, false, false}, "not an IPv6 CIDR");
  expect_error({true, "FC00::/48", "fc00::/64", true, false, false}, "fc00::/48");
  // Forward rules alone need no subnet.
  EXPECT_NO_THROW(nft_table_text({false, "10.5.0.0/16", "", false, true, false}));
}

TEST(NftablesRules, ParseListingSplitsChainsByName) {
  auto r = nft_rules(kNet, kSub, true, true, true);
  NftListing l = nft_parse_listing(nft_table_text(r));
  EXPECT_EQ(l.head, kHead4 + "}\n");
  ASSERT_EQ(l.chains.size(), 2u);
  EXPECT_EQ(l.chains.at("postrtg"), kPostrtg4);
  EXPECT_EQ(l.chains.at("forward"), kForward4);
  // Chain order does not matter (a repaired chain is listed last).
  EXPECT_EQ(nft_parse_listing(kHead4 + kForward4 + "\n" + kPostrtg4 + "}\n"), l);
}

TEST(NftablesRules, PlanNothingWhenTheTableIsRight) {
  auto r = nft_rules(kNet, kSub, true, true, true);
  NftPlan p = nft_plan(r, nft_table_text(r));
  EXPECT_EQ(p.drift, Drift::kNone);
  EXPECT_EQ(p.script, "");
  EXPECT_EQ(nft_plan(nft_rules(kNet, kSub, false, false, true), std::nullopt).drift, Drift::kNone);
}

TEST(NftablesRules, PlanFullReplaceWhenMissingOrForeign) {
  auto r = nft_rules(kNet, kSub, true, true, true);
  NftPlan p = nft_plan(r, std::nullopt);
  EXPECT_EQ(p.drift, Drift::kTableMissing);
  EXPECT_EQ(p.reason, "table missing");
  EXPECT_EQ(p.script, nft_replace_script(r));
  // Another comment, or a chain of someone else's.
  std::string other_comment =
      kHead4.substr(0, kHead4.find("flanneld")) + "x\"\n" + kPostrtg4 + "\n" + kForward4 + "}\n";
  EXPECT_EQ(nft_plan(r, other_comment).drift, Drift::kTableDiffers);
  std::string extra = kHead4 + kPostrtg4 + "\n" + kForward4 + "\n\tchain x {\n\t}\n}\n";
  p = nft_plan(r, extra);
  EXPECT_EQ(p.drift, Drift::kTableDiffers);
  EXPECT_NE(p.reason.find("chain x"), std::string::npos);
  EXPECT_EQ(p.script, nft_replace_script(r));
}

TEST(NftablesRules, PlanReplacesOnlyTheChainThatDiffers) {
  auto r = nft_rules(kNet, kSub, true, true, true);
  std::string flushed = kHead4 +
                        "\tchain postrtg {\n\t\ttype nat hook postrouting priority srcnat; "
                        "policy accept;\n\t}\n\n" +
                        kForward4 + "}\n";
  NftPlan p = nft_plan(r, flushed);
  EXPECT_EQ(p.drift, Drift::kChainsDiffer);
  EXPECT_EQ(p.reason, "chain postrtg differs");
  EXPECT_EQ(p.script, std::string("add chain ip flannel-ipv4 postrtg\n"
                                  "delete chain ip flannel-ipv4 postrtg\n"
                                  "table ip flannel-ipv4 {\n") +
                          kPostrtg4 + "}\n");
  p = nft_plan(r, kHead4 + kPostrtg4 + "}\n");
  EXPECT_EQ(p.reason, "chain forward missing");
  EXPECT_EQ(p.script.find("postrtg"), std::string::npos);
}

TEST(NftablesRules, PlanAcceptsTheListingReadBackAfterOurWrite) {
  auto r = nft_rules(kNet, kSub, true, true, true);
  // As another nft version might print the same rules.
  std::string printed = kHead4 +
                        "\tchain postrtg {\n\t\ttype nat hook postrouting priority 100;\n"
                        "\t}\n\n" +
                        kForward4 + "}\n";
  EXPECT_EQ(nft_plan(r, printed).drift, Drift::kChainsDiffer);
  EXPECT_EQ(nft_plan(r, printed, printed).drift, Drift::kNone);
}

TEST(NftablesRules, PlanDeletesAnUnwantedTable) {
  auto r = nft_rules(kNet6, kSub6, false, false, false);
  NftPlan p = nft_plan(r, std::string("table ip6 flannel-ipv6 {\n}\n"));
  EXPECT_EQ(p.drift, Drift::kTableUnwanted);
  EXPECT_EQ(p.script, nft_delete_script(true));
}

}  // namespace
}  // namespace flannel
