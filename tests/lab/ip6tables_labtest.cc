// ip6tables (dual stack, facts §2.8): the agent's NetRules with an IPv6 network and subnet, run
// in a lab host's namespace: the IPv6 masq and FORWARD rules (ff00::/8 for multicast) are
// installed beside the IPv4 ones, the previous run's IPv6 rules for another subnet are removed,
// and the resync puts back a deleted IPv6 rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "backends/rules/iptables.h"
#include "daemon/agent/net_rules.h"
#include "tests/lab/rule_lines.h"
#include "tests/support/lab.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;
using Strings = std::vector<std::string>;

Strings saved(const std::string& prog, const std::string& table, const std::string& ns) {
  std::string out;
  EXPECT_EQ(run_command({prog, "-t", table}, &out, ns), 0) << out;
  Strings lines;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);)
    if (l.rfind("-A ", 0) == 0) lines.push_back(l);
  return lines;
}

// True if `rules` appear in `lines` in this order (not necessarily adjacent).
bool in_order(const Strings& lines, const std::vector<IptablesRule>& rules) {
  auto at = lines.begin();
  for (const auto& r : rules) {
    at = std::find(at, lines.end(), line_of(r));
    if (at == lines.end()) return false;
  }
  return true;
}

TEST(Ip6tablesLab, NetRulesInstallRecycleAndResyncTheIpv6Rules) {
  cleanup_stale_labs();
  Lab lab("ip6t");
  const std::string ns = lab.add_host().netns;
  const IP4Net net4 = IP4Net::parse("10.5.0.0/16"), sub4 = IP4Net::parse("10.5.7.0/24");
  const IP6Net net6 = IP6Net::parse("fc00::/48"), sub6 = IP6Net::parse("fc00:0:0:7::/64");
  const IP6Net old_sub6 = IP6Net::parse("fc00:0:0:3::/64");
  Iptables ip6t({"ip", "netns", "exec", ns, "ip6tables"});
  const bool rf = ip6t.random_fully_support().supported;

  // A previous run held fc00:0:0:3::/64: its rules are in the chain.
  for (const auto& r : masq_rules(net6, old_sub6, rf)) ip6t.append(r);

  // NetRules in the lab namespace: its libnftables look (no table of ours) stays there too.
  EnterNetns in_lab(ns);
  NetRules rules(NetRulesSettings{true, true, std::chrono::seconds(1)},
                 PreviousRun{net4, sub4, true, net6, old_sub6});
  rules.set_commands({"ip", "netns", "exec", ns, "iptables"},
                     {"ip", "netns", "exec", ns, "ip6tables"});
  rules.apply(RulesTarget{net4, sub4, net6, sub6});
  rules.wait();

  auto want_masq = masq_rules(net6, sub6, rf);
  auto want_fwd = forward_rules(net6);
  EXPECT_EQ(want_masq[1].spec[4], "ff00::/8");
  Strings nat = saved("ip6tables-save", "nat", ns);
  EXPECT_TRUE(in_order(nat, want_masq)) << ::testing::PrintToString(nat);
  // The old subnet's RETURN rule went; the rules both sets share stayed (once).
  EXPECT_EQ(std::count(nat.begin(), nat.end(), line_of(masq_rules(net6, old_sub6, rf)[2])), 0);
  EXPECT_EQ(std::count(nat.begin(), nat.end(), line_of(want_masq[0])), 1);
  EXPECT_TRUE(in_order(saved("ip6tables-save", "filter", ns), want_fwd));
  // The IPv4 rules are there too, in iptables.
  EXPECT_TRUE(in_order(saved("iptables-save", "nat", ns), masq_rules(net4, sub4, rf)));
  ASSERT_NE(rules.keeper("ip6-masq"), nullptr);
  ASSERT_NE(rules.keeper("forward6"), nullptr);

  // Someone deletes the IPv6 MASQUERADE rule and a FORWARD rule: the resync puts them back.
  ASSERT_TRUE(ip6t.remove(want_masq[1]));
  ASSERT_TRUE(ip6t.remove(want_fwd[1]));
  const bool back = wait_until(
      [&] {
        return in_order(saved("ip6tables-save", "nat", ns), want_masq) &&
               in_order(saved("ip6tables-save", "filter", ns), want_fwd);
      },
      10s);
  EXPECT_TRUE(back) << ::testing::PrintToString(saved("ip6tables-save", "nat", ns));
  EXPECT_GE(rules.keeper("ip6-masq")->stats().rules_restored, 1u);
}

}  // namespace
}  // namespace flannel::testing
