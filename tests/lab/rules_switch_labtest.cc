// Switching rule modes on one host (issue 20), with the agent's NetRules run in a lab host's
// namespace: nftables mode takes over from iptables rules of ours (a previous run's, for another
// subnet too) and from current flannel's FLANNEL-POSTRTG / FLANNEL-FWD chains with their jump
// rules, leaving someone else's rules alone; iptables mode then deletes our nftables table.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "backends/rules/iptables.h"
#include "daemon/agent/net_rules.h"
#include "tests/lab/rule_lines.h"
#include "tests/support/lab.h"
#include "tests/support/process.h"

namespace flannel::testing {
namespace {

using Strings = std::vector<std::string>;

Strings rules_of(const std::string& ns) {  // every "-A" line of iptables-save, both tables
  std::string out;
  EXPECT_EQ(run_command({"iptables-save"}, &out, ns), 0) << out;
  Strings lines;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t end = out.find('\n', pos);
    if (end == std::string::npos) end = out.size();
    std::string line = out.substr(pos, end - pos);
    if (line.rfind("-A ", 0) == 0 || line.rfind(":FLANNEL", 0) == 0) lines.push_back(line);
    pos = end + 1;
  }
  return lines;
}

bool nft_table(const std::string& ns) {
  return run_command({"nft", "list", "table", "ip", "flannel-ipv4"}, nullptr, ns) == 0;
}

TEST(RulesSwitchLab, NftablesTakesOverEveryIptablesRuleOfOursAndBack) {
  cleanup_stale_labs();
  Lab lab("rsw");
  const std::string ns = lab.add_host().netns;
  const IP4Net net = IP4Net::parse("10.5.0.0/16"), sub = IP4Net::parse("10.5.7.0/24");
  const IP4Net old_sub = IP4Net::parse("10.5.3.0/24");
  Iptables ipt({"ip", "netns", "exec", ns, "iptables"});
  for (const auto& r : masq_rules(net, old_sub, true)) ipt.append(r);  // a previous run of ours
  for (const auto& r : forward_rules(net)) ipt.append(r);
  const std::string current_flannel =  // current flannel's iptables mode, and someone else's rule
      "*nat\n:FLANNEL-POSTRTG - [0:0]\n"
      "-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG\n"
      "-A POSTROUTING -o eth0 -j MASQUERADE\n"
      "-A FLANNEL-POSTRTG -s 10.5.0.0/16 -d 10.5.0.0/16 -m comment --comment \"flanneld masq\" "
      "-j RETURN\nCOMMIT\n*filter\n:FLANNEL-FWD - [0:0]\n"
      "-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD\n"
      "-A FLANNEL-FWD -s 10.5.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT\n"
      "COMMIT\n";
  ipt.restore(current_flannel);
  ASSERT_EQ(rules_of(ns).size(), 13u);

  EnterNetns in_lab(ns);  // NetRules' libnftables context and its iptables children act there
  {
    NetRules rules(NetRulesSettings{true, true, std::chrono::seconds(5), true},
                   PreviousRun{net, old_sub, true, std::nullopt, std::nullopt});
    rules.apply(RulesTarget{net, sub});
    rules.wait();
    ASSERT_NE(rules.nft_keeper(false), nullptr);
    EXPECT_TRUE(nft_table(ns));
    EXPECT_EQ(rules_of(ns), Strings{"-A POSTROUTING -o eth0 -j MASQUERADE"});
  }
  {
    NetRules rules(NetRulesSettings{true, true, std::chrono::seconds(5)},
                   PreviousRun{net, sub, true, std::nullopt, std::nullopt});
    rules.apply(RulesTarget{net, sub});
    rules.wait();
    EXPECT_FALSE(nft_table(ns));
    Strings want = lines_of(forward_rules(net));
    for (const auto& l : lines_of(masq_rules(net, sub, true))) want.push_back(l);
    want.push_back("-A POSTROUTING -o eth0 -j MASQUERADE");
    Strings got = rules_of(ns);
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, want);
  }
}

}  // namespace
}  // namespace flannel::testing
