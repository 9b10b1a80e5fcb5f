// iptables rules (backends/rules/iptables.h). Two parts:
//  - IptablesRules.*: pure rule/argv building, parsing and insert planning, plus the keeper's
//    argument checks; they run no iptables at all (they live here, not in tests/core/, because
//    backends/ is not linked into unit_tests).
//  - IptablesLab.*: real iptables (nft backend) inside a fresh lab host namespace. Every iptables
//    command of these tests runs in that namespace (`ip netns exec NS iptables` for the code under
//    test, Process netns for the checks); none touches the root namespace. The namespace, and
//    with it every rule, goes away when the Lab is destroyed, on every path.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/rules/iptables.h"
#include "backends/rules/nft_probe.h"
#include "backends/rules/rule_keeper.h"
#include "core/ip.h"
#include "tests/lab/rule_lines.h"
#include "tests/support/lab.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;
using Strings = std::vector<std::string>;

const IP4Net kNet = IP4Net::parse("10.5.0.0/16");
const IP4Net kSubA = IP4Net::parse("10.5.34.0/24");
const IP4Net kSubB = IP4Net::parse("10.5.77.0/24");

long long ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
      .count();
}

// ---- Pure: no iptables runs ------------------------------------------------------------------

TEST(IptablesRules, MasqRulesAreV011sFourRulesInOrder) {
  auto rules = masq_rules(kNet, kSubA, false);
  ASSERT_EQ(rules.size(), 4u);
  for (const auto& r : rules) {
    EXPECT_EQ(r.table, "nat");
    EXPECT_EQ(r.chain, "POSTROUTING");
  }
  EXPECT_EQ(rules[0].spec, (Strings{"-s", "10.5.0.0/16", "-d", "10.5.0.0/16", "-j", "RETURN"}));
  EXPECT_EQ(rules[1].spec,
            (Strings{"-s", "10.5.0.0/16", "!", "-d", "224.0.0.0/4", "-j", "MASQUERADE"}));
  EXPECT_EQ(rules[2].spec,
            (Strings{"!", "-s", "10.5.0.0/16", "-d", "10.5.34.0/24", "-j", "RETURN"}));
  EXPECT_EQ(rules[3].spec,
            (Strings{"!", "-s", "10.5.0.0/16", "-d", "10.5.0.0/16", "-j", "MASQUERADE"}));
}

TEST(IptablesRules, MasqRulesWithRandomFullyOnlyChangeTheMasqueradeTargets) {
  auto plain = masq_rules(kNet, kSubA, false);
  auto rf = masq_rules(kNet, kSubA, true);
  ASSERT_EQ(rf.size(), 4u);
  EXPECT_EQ(rf[0], plain[0]);
  EXPECT_EQ(rf[2], plain[2]);
  EXPECT_EQ(rf[1].spec, (Strings{"-s", "10.5.0.0/16", "!", "-d", "224.0.0.0/4", "-j", "MASQUERADE",
                                 "--random-fully"}));
  EXPECT_EQ(rf[3].spec, (Strings{"!", "-s", "10.5.0.0/16", "-d", "10.5.0.0/16", "-j", "MASQUERADE",
                                 "--random-fully"}));
}

TEST(IptablesRules, MasqRulesUseTheNetworkFormOfTheSubnetEnvValue) {
  // subnet.env holds FLANNEL_SUBNET=10.5.34.1/24; the rule (and iptables -S) says 10.5.34.0/24.
  auto rules = masq_rules(kNet, IP4Net::parse_keep_host("10.5.34.1/24"), false);
  EXPECT_EQ(rules[2].spec[4], "10.5.34.0/24");
  EXPECT_EQ(rules, masq_rules(kNet, kSubA, false));
}

TEST(IptablesRules, ForwardRules) {
  auto rules = forward_rules(kNet);
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0], (IptablesRule{"filter", "FORWARD", {"-s", "10.5.0.0/16", "-j", "ACCEPT"}}));
  EXPECT_EQ(rules[1], (IptablesRule{"filter", "FORWARD", {"-d", "10.5.0.0/16", "-j", "ACCEPT"}}));
  EXPECT_EQ(rules[0].str(), "-t filter FORWARD -s 10.5.0.0/16 -j ACCEPT");
}

TEST(IptablesRules, ArgvOfEachOperation) {
  auto r = masq_rules(kNet, kSubA, true)[1];
  Strings spec = {"-s",          "10.5.0.0/16", "!",          "-d",
                  "224.0.0.0/4", "-j",          "MASQUERADE", "--random-fully"};
  auto with = [&](Strings head) {
    head.insert(head.end(), spec.begin(), spec.end());
    return head;
  };
  EXPECT_EQ(iptables_args(IptablesOp::kCheck, r),
            with({"--wait", "-t", "nat", "-C", "POSTROUTING"}));
  EXPECT_EQ(iptables_args(IptablesOp::kInsert, r, 2),
            with({"--wait", "-t", "nat", "-I", "POSTROUTING", "2"}));
  EXPECT_EQ(iptables_args(IptablesOp::kAppend, r),
            with({"--wait", "-t", "nat", "-A", "POSTROUTING"}));
  EXPECT_EQ(iptables_args(IptablesOp::kDelete, r),
            with({"--wait", "-t", "nat", "-D", "POSTROUTING"}));
  EXPECT_THROW(iptables_args(IptablesOp::kInsert, r, 0), std::invalid_argument);
}

TEST(IptablesRules, ParseVersion) {
  EXPECT_EQ(parse_iptables_version("iptables v1.8.9 (nf_tables)"), (IptablesVersion{1, 8, 9}));
  EXPECT_EQ(parse_iptables_version("iptables v1.6.1\n"), (IptablesVersion{1, 6, 1}));
  EXPECT_EQ(parse_iptables_version("iptables-legacy v1.8.7 (legacy)"), (IptablesVersion{1, 8, 7}));
  EXPECT_FALSE(parse_iptables_version("iptables version unknown"));
  EXPECT_FALSE(parse_iptables_version(""));
  EXPECT_LT((IptablesVersion{1, 6, 1}), kRandomFullyMinVersion);
  EXPECT_GE((IptablesVersion{1, 6, 2}), kRandomFullyMinVersion);
  EXPECT_GE((IptablesVersion{1, 8, 9}), kRandomFullyMinVersion);
}

TEST(IptablesRules, RandomFullyProbeClassification) {
  EXPECT_TRUE(random_fully_probe_accepted(
      1, "iptables: Bad rule (does a matching rule exist in that chain?).\n"));
  EXPECT_TRUE(random_fully_probe_accepted(0, ""));
  EXPECT_FALSE(
      random_fully_probe_accepted(2, "iptables v1.6.1: unknown option \"--random-fully\"\n"));
  EXPECT_FALSE(random_fully_probe_accepted(
      1, "iptables: Extension MASQUERADE revision 0 not supported, missing kernel module?\n"));
  EXPECT_FALSE(random_fully_probe_accepted(2, "Extension does not exist"));
  EXPECT_FALSE(random_fully_probe_accepted(1, "iptables: No chain/target/match by that name.\n"));
  EXPECT_FALSE(random_fully_probe_accepted(4, "Permission denied (you must be root)"));
}

TEST(IptablesRules, ListedPositionsMatchWholeRulesOnly) {
  auto rules = masq_rules(kNet, kSubA, true);
  std::string listing =
      "-P POSTROUTING ACCEPT\n"
      "-N OTHER\n"
      "-A POSTROUTING -o eth0 -j MASQUERADE\n" +
      line_of(rules[2]) + "\n" +
      "-A POSTROUTING -s 10.5.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE\n" +  // no --random-fully
      line_of(rules[0]) + "\n" + line_of(rules[0]) + "\n" +               // a duplicate
      "-A OTHER -s 10.5.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully\n";
  auto pos = listed_positions(listing, rules);
  ASSERT_EQ(pos.size(), 4u);
  EXPECT_EQ(pos[0], 4);  // the first copy
  EXPECT_FALSE(pos[1]);  // the plain variant and the rule in OTHER do not count
  EXPECT_EQ(pos[2], 2);
  EXPECT_FALSE(pos[3]);
}

TEST(IptablesRules, PlanInsertsKeepsTheSetInOrderAtTheTop) {
  using P = std::vector<std::optional<int>>;
  auto steps_of = [](std::vector<bool> present, P pos) {
    std::vector<std::pair<size_t, int>> out;
    for (auto s : plan_inserts(present, pos)) out.emplace_back(s.rule, s.position);
    return out;
  };
  using S = std::vector<std::pair<size_t, int>>;
  // Empty chain or foreign rules only: 1, 2, 3, 4 at the top.
  EXPECT_EQ(steps_of({false, false, false, false}, P(4)), (S{{0, 1}, {1, 2}, {2, 3}, {3, 4}}));
  // All there: nothing.
  EXPECT_EQ(steps_of({true, true}, {1, 2}), S{});
  // The third is missing: it goes right after the second.
  EXPECT_EQ(steps_of({true, true, false, true}, {1, 2, {}, 3}), (S{{2, 3}}));
  // The first is missing: it goes to the top, above the others.
  EXPECT_EQ(steps_of({false, true, true, true}, {{}, 1, 2, 3}), (S{{0, 1}}));
  // A foreign rule was inserted on top since: the missing second follows the first, not
  // position 2.
  EXPECT_EQ(steps_of({true, false, true, true}, {2, {}, 3, 4}), (S{{1, 3}}));
  // Two missing: positions account for the earlier insert.
  EXPECT_EQ(steps_of({true, false, false, true}, {1, {}, {}, 2}), (S{{1, 2}, {2, 3}}));
  // Earlier rules out of order (v0.11 appended copies): the missing one goes below all of them.
  EXPECT_EQ(steps_of({true, true, false}, {5, 2, {}}), (S{{2, 6}}));
  EXPECT_THROW(plan_inserts({true}, P{}), std::invalid_argument);
}

TEST(IptablesRules, MissingBinaryIsNamedInTheError) {
  Iptables ipt({"/nonexistent/flannel-test/iptables"});
  try {
    ipt.exists(forward_rules(kNet)[0]);
    FAIL() << "expected IptablesError";
  } catch (const IptablesError& e) {
    EXPECT_EQ(e.kind(), IptablesError::Kind::kNotInstalled);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/flannel-test/iptables"), std::string::npos)
        << e.what();
  }
  Iptables by_name({"flannel-test-no-such-iptables"});
  try {
    by_name.version();
    FAIL() << "expected IptablesError";
  } catch (const IptablesError& e) {
    EXPECT_EQ(e.kind(), IptablesError::Kind::kNotInstalled);
    EXPECT_NE(std::string(e.what()).find("flannel-test-no-such-iptables: not found in PATH"),
              std::string::npos)
        << e.what();
  }
}

TEST(IptablesRules, AHangingCommandIsKilledAtTheTimeout) {
  // Not iptables: `sleep 5` stands in for an iptables stuck on the xtables lock.
  Iptables slow({"sleep"}, 200ms);
  auto t = std::chrono::steady_clock::now();
  try {
    slow.run({"5"});
    FAIL() << "expected a timeout";
  } catch (const IptablesError& e) {
    EXPECT_EQ(e.kind(), IptablesError::Kind::kTimeout);
    EXPECT_NE(std::string(e.what()).find("`sleep 5` did not finish within 200 ms"),
              std::string::npos)
        << e.what();
  }
  EXPECT_LT(ms_since(t), 1000);
}

TEST(IptablesRules, ResyncPeriodBelowOneSecondIsRejected) {
  RuleKeeper keeper(Iptables({"/nonexistent/flannel-test/iptables"}), "ip-masq",
                    masq_rules(kNet, kSubA, false));
  for (auto period : {0ms, -1000ms, 999ms}) {
    try {
      keeper.start(period, nullptr);
      FAIL() << "period " << period.count() << " ms accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("at least 1 second"), std::string::npos) << e.what();
    }
  }
  keeper.start(1s, nullptr);
  EXPECT_THROW(keeper.start(1s, nullptr), std::logic_error);
}

TEST(IptablesRules, StopWakesTheResyncThreadAtOnce) {
  // The first pass is one period away, so no command runs here at all.
  RuleKeeper keeper(Iptables({"/nonexistent/flannel-test/iptables"}), "forward",
                    forward_rules(kNet));
  keeper.start(3600s, nullptr);
  // Lets the thread reach its hour-long wait, so stop() must wake it. Not synchronisation: the
  // keeper shows no "waiting" to await, and a stop() that comes first only weakens the test.
  std::this_thread::sleep_for(20ms);
  auto t = std::chrono::steady_clock::now();
  keeper.stop();
  auto took = ms_since(t);
  EXPECT_LT(took, 100) << "stop() took " << took << " ms";
  keeper.stop();  // idempotent
  EXPECT_EQ(keeper.stats().passes, 0u);
  std::printf("resync stop latency: %lld ms\n", took);
}

TEST(IptablesRules, ResyncReportsAPersistingFailureOnce) {
  RuleKeeper keeper(Iptables({"/nonexistent/flannel-test/iptables"}), "ip-masq",
                    masq_rules(kNet, kSubA, false));
  std::mutex mu;
  std::vector<ResyncEvent> events;
  keeper.start(1s, [&](const ResyncEvent& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  });
  ASSERT_TRUE(wait_until([&] { return keeper.stats().passes >= 2; }, 5s));
  keeper.stop();
  auto st = keeper.stats();
  EXPECT_GE(st.failures, 2u);
  EXPECT_NE(st.last_error.find("/nonexistent/flannel-test/iptables"), std::string::npos);
  std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, ResyncEvent::Kind::kFailed);
  EXPECT_NE(events[0].message.find("ip-masq: cannot check iptables rules"), std::string::npos)
      << events[0].message;
  EXPECT_NE(events[0].message.find("/nonexistent/flannel-test/iptables"), std::string::npos);
}

// ---- In a lab namespace ----------------------------------------------------------------------

class IptablesLab : public ::testing::Test {
 protected:
  void SetUp() override {
    cleanup_stale_labs();
    lab_ = std::make_unique<Lab>("ipt");
    ns_ = lab_->add_host().netns;
    ASSERT_FALSE(ns_.empty());
    ipt_ = std::make_unique<Iptables>(Strings{"ip", "netns", "exec", ns_, "iptables"});
  }
  void TearDown() override { lab_.reset(); }  // the namespace and all its rules go

  // Runs iptables in the lab namespace (test setup and checks); fails the test on error.
  void iptables(Strings args) {
    args.insert(args.begin(), {"iptables", "--wait"});
    std::string out;
    int rc = run_command(args, &out, ns_);
    ASSERT_EQ(rc, 0) << "iptables in " << ns_ << ": " << out;
  }
  // The "-A ..." lines of `iptables-save -t table` in the namespace, with "[p:b] " counters if
  // asked.
  Strings saved(const std::string& table, bool counters = false) {
    Strings argv = {"iptables-save", "-t", table};
    if (counters) argv.push_back("-c");
    std::string out;
    EXPECT_EQ(run_command(argv, &out, ns_), 0) << out;
    Strings lines;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);)
      if (l.rfind("-A ", 0) == 0 ||
          (counters && l.rfind("[", 0) == 0 && l.find("] -A ") != std::string::npos))
        lines.push_back(l);
    return lines;
  }
  // Gives each rule a recognisable counter, [7:70], by replacing it in place with itself. A
  // rule that is later deleted and re-added comes back with [0:0].
  void mark(const std::vector<IptablesRule>& rules) {
    for (const auto& r : rules) {
      Strings lines;  // the chain's rules, so that index + 1 is the rule number
      for (auto& l : saved(r.table))
        if (l.rfind("-A " + r.chain + " ", 0) == 0) lines.push_back(l);
      auto it = std::find(lines.begin(), lines.end(), line_of(r));
      ASSERT_NE(it, lines.end()) << line_of(r);
      Strings args = {"-t", r.table, "-R", r.chain, std::to_string(it - lines.begin() + 1),
                      "-c", "7",     "70"};
      args.insert(args.end(), r.spec.begin(), r.spec.end());
      iptables(args);
    }
  }

  std::unique_ptr<Lab> lab_;
  std::string ns_;
  std::unique_ptr<Iptables> ipt_;
};

TEST_F(IptablesLab, RandomFullyIsProbedInTheNamespace) {
  auto t = std::chrono::steady_clock::now();
  auto s = ipt_->random_fully_support();
  std::printf("random-fully probe: %lld ms: %s\n", ms_since(t), s.reason.c_str());
  EXPECT_NE(s.reason.find("iptables v1."), std::string::npos) << s.reason;
  // Debian 12's iptables 1.8.9 and any kernel since 3.14 accept it.
  EXPECT_TRUE(s.supported) << s.reason;
}

TEST_F(IptablesLab, EnsureInstallsTheMasqRulesInOrderAtTheTopOnce) {
  iptables({"-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE"});  // someone else's
  bool rf = ipt_->random_fully_support().supported;
  auto rules = masq_rules(kNet, kSubA, rf);
  RuleKeeper keeper(*ipt_, "ip-masq", rules);

  auto t = std::chrono::steady_clock::now();
  auto inserted = keeper.ensure();
  auto first = ms_since(t);
  ASSERT_EQ(inserted.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(inserted[i].position, i + 1);
  Strings expected = lines_of(rules);
  expected.push_back("-A POSTROUTING -o eth0 -j MASQUERADE");
  EXPECT_EQ(saved("nat"), expected);

  t = std::chrono::steady_clock::now();
  EXPECT_TRUE(keeper.ensure().empty()) << "a second ensure() must add nothing";
  auto second = ms_since(t);
  EXPECT_EQ(saved("nat"), expected);
  std::printf("ensure() masq: %lld ms installing 4 rules, %lld ms checking (4 x -C)\n", first,
              second);

  EXPECT_EQ(keeper.remove(), 4);
  EXPECT_EQ(saved("nat"), Strings{"-A POSTROUTING -o eth0 -j MASQUERADE"});
  EXPECT_EQ(keeper.remove(), 0);
}

TEST_F(IptablesLab, AFailingCommandIsNamedWithIptablesOwnMessage) {
  try {
    ipt_->insert(forward_rules(kNet)[0], 99);
    FAIL() << "expected IptablesError";
  } catch (const IptablesError& e) {
    EXPECT_EQ(e.kind(), IptablesError::Kind::kFailed);
    std::string want = "`ip netns exec " + ns_ +
                       " iptables --wait -t filter -I FORWARD 99 -s 10.5.0.0/16 -j ACCEPT` failed "
                       "(exit 1): iptables: Index of insertion too big.";
    EXPECT_EQ(std::string(e.what()), want);
  }
  EXPECT_TRUE(saved("filter").empty());
}

TEST_F(IptablesLab, ForwardRulesGoAboveAnEarlierDropAndRemoveLeavesIt) {
  iptables({"-A", "FORWARD", "-d", "10.5.0.0/16", "-j", "DROP"});
  RuleKeeper keeper(*ipt_, "forward", forward_rules(kNet));
  ASSERT_EQ(keeper.ensure().size(), 2u);
  EXPECT_EQ(saved("filter"),
            (Strings{"-A FORWARD -s 10.5.0.0/16 -j ACCEPT", "-A FORWARD -d 10.5.0.0/16 -j ACCEPT",
                     "-A FORWARD -d 10.5.0.0/16 -j DROP"}));
  EXPECT_EQ(keeper.remove(), 2);
  EXPECT_EQ(saved("filter"), Strings{"-A FORWARD -d 10.5.0.0/16 -j DROP"});
}

TEST_F(IptablesLab, ResyncPutsBackOnlyTheMissingRule) {
  bool rf = ipt_->random_fully_support().supported;
  auto rules = masq_rules(kNet, kSubA, rf);
  RuleKeeper keeper(*ipt_, "ip-masq", rules);
  ASSERT_EQ(keeper.ensure().size(), 4u);
  mark(rules);
  {
    Strings marked;
    for (const auto& r : rules) marked.push_back("[7:70] " + line_of(r));
    ASSERT_EQ(saved("nat", true), marked);
  }
  std::mutex mu;
  std::vector<ResyncEvent> events;
  keeper.start(1s, [&](const ResyncEvent& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  });

  // An operator (or another tool) deletes the third rule.
  Strings del = {"-t", "nat", "-D", "POSTROUTING"};
  del.insert(del.end(), rules[2].spec.begin(), rules[2].spec.end());
  iptables(del);
  auto t_deleted = std::chrono::steady_clock::now();

  // Watch the chain until the rule is back: the other three must be there in every snapshot.
  int snapshots = 0;
  bool others_always_there = true;
  bool back = wait_until(
      [&] {
        Strings now = saved("nat");
        ++snapshots;
        for (size_t i : {0u, 1u, 3u})
          if (std::find(now.begin(), now.end(), line_of(rules[i])) == now.end())
            others_always_there = false;
        return std::find(now.begin(), now.end(), line_of(rules[2])) != now.end();
      },
      3s);
  auto restored_after = ms_since(t_deleted);
  ASSERT_TRUE(back) << "rule 3 not restored within 3 s (period 1 s)";
  EXPECT_TRUE(others_always_there) << "a present rule left the chain during the resync";
  EXPECT_LE(restored_after, 2000);

  // Back in its place; the other three were never re-added (their counters survived).
  Strings expected;
  for (size_t i = 0; i < rules.size(); ++i)
    expected.push_back((i == 2 ? "[0:0] " : "[7:70] ") + line_of(rules[i]));
  EXPECT_EQ(saved("nat", true), expected);

  auto t_stop = std::chrono::steady_clock::now();
  keeper.stop();
  auto stop_ms = ms_since(t_stop);
  EXPECT_LT(stop_ms, 500);
  auto st = keeper.stats();
  EXPECT_EQ(st.rules_restored, 1u);
  EXPECT_EQ(st.failures, 0u);
  std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, ResyncEvent::Kind::kRestored);
  EXPECT_NE(events[0].message.find("position 3"), std::string::npos) << events[0].message;
  std::printf(
      "resync: rule restored %lld ms after deletion (period 1 s, %d snapshots), "
      "stop %lld ms\n",
      restored_after, snapshots, stop_ms);
}

// The check's cost: with every rule in place it is one listing of the chain, nothing else; a
// missing rule costs that listing and one iptables-restore (the first install too: an empty
// chain needs no -C). When the chain also holds a rule that is not ours, -C confirms that a rule
// the listing does not show is really gone before it is put back.
TEST_F(IptablesLab, AnIdleCheckIsOneListingAndARepairOneRestore) {
  char dir_template[] = "/tmp/flannel-iptlog-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template, log = dir + "/calls";
  for (const char* tool : {"iptables", "iptables-restore"}) {  // log each call, then run it
    std::ofstream(dir + "/" + tool) << "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> " << log
                                    << "\nexec ip netns exec " << ns_ << " " << tool << " \"$@\"\n";
    ASSERT_EQ(chmod((dir + "/" + tool).c_str(), 0755), 0);
  }
  auto calls = [&] {
    Strings out;
    std::ifstream in(log);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    std::remove(log.c_str());
    return out;
  };
  auto rules = masq_rules(kNet, kSubA, false);
  RuleKeeper keeper(Iptables({dir + "/iptables"}), "ip-masq", rules);
  ASSERT_EQ(keeper.ensure().size(), 4u);
  EXPECT_EQ(calls(), (Strings{"iptables --wait -t nat -S POSTROUTING",
                              "iptables-restore --noflush --wait"}));

  EXPECT_TRUE(keeper.ensure().empty());
  EXPECT_EQ(calls(), Strings{"iptables --wait -t nat -S POSTROUTING"});

  Strings del = {"-t", "nat", "-D", "POSTROUTING"};
  del.insert(del.end(), rules[2].spec.begin(), rules[2].spec.end());
  iptables(del);
  auto inserted = keeper.ensure();
  ASSERT_EQ(inserted.size(), 1u);
  EXPECT_EQ(inserted[0].position, 3);
  EXPECT_EQ(calls(), (Strings{"iptables --wait -t nat -S POSTROUTING",
                              "iptables-restore --noflush --wait"}));
  EXPECT_EQ(saved("nat"), lines_of(rules));

  iptables({"-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.0/24", "-j", "ACCEPT"});
  iptables(del);
  inserted = keeper.ensure();
  ASSERT_EQ(inserted.size(), 1u);
  EXPECT_EQ(inserted[0].position, 3);
  Strings repair = calls();
  ASSERT_EQ(repair.size(), 3u) << ::testing::PrintToString(repair);
  EXPECT_EQ(repair[0], "iptables --wait -t nat -S POSTROUTING");
  EXPECT_EQ(repair[1].rfind("iptables --wait -t nat -C POSTROUTING", 0), 0u) << repair[1];
  EXPECT_EQ(repair[2], "iptables-restore --noflush --wait");
  Strings want = lines_of(rules);
  want.push_back("-A POSTROUTING -s 192.0.2.0/24 -j ACCEPT");
  EXPECT_EQ(saved("nat"), want);
  std::filesystem::remove_all(dir);
}

// nft_tables(): the namespace's nftables tables over netlink, what the agent's start reads to
// skip iptables-*-save and libnftables when there is nothing to look at.
TEST_F(IptablesLab, NftTablesListsTheTablesOfTheNamespace) {
  EnterNetns in_lab(ns_);
  auto has = [](const std::string& name, int family) {
    auto t = nft_tables();
    return t && std::find(t->begin(), t->end(), NftTableName{family, name}) != t->end();
  };
  EXPECT_FALSE(has("lab-probe", 2));
  std::string out;
  ASSERT_EQ(run_command({"nft", "add", "table", "ip", "lab-probe"}, &out), 0) << out;
  ASSERT_EQ(run_command({"nft", "add", "table", "ip6", "lab-probe6"}, &out), 0) << out;
  EXPECT_TRUE(has("lab-probe", 2));    // NFPROTO_IPV4
  EXPECT_TRUE(has("lab-probe6", 10));  // NFPROTO_IPV6
  EXPECT_FALSE(has("lab-probe", 10));
  ASSERT_EQ(run_command({"nft", "delete", "table", "ip", "lab-probe"}, &out), 0) << out;
  EXPECT_FALSE(has("lab-probe", 2));
  EXPECT_TRUE(has("lab-probe6", 10));
}

// iptables-nft with the change probe (the nftables ruleset generation): passes that find the
// same generation as the last pass that found everything in place run no iptables at all; a
// rule deleted by hand changes the generation, so the next pass checks and puts it back.
TEST_F(IptablesLab, AnUnchangedRulesetCostsNoProcess) {
  EnterNetns in_lab(ns_);  // the keeper's thread, its children and the probe's socket go there
  ASSERT_TRUE(nft_ruleset_generation().has_value());
  char dir_template[] = "/tmp/flannel-iptgen-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template, log = dir + "/calls";
  for (const char* tool : {"iptables", "iptables-restore"}) {
    std::ofstream(dir + "/" + tool) << "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> " << log
                                    << "\nexec " << tool << " \"$@\"\n";
    ASSERT_EQ(chmod((dir + "/" + tool).c_str(), 0755), 0);
  }
  auto lines = [&] {
    std::ifstream in(log);
    int n = 0;
    for (std::string l; std::getline(in, l);) ++n;
    return n;
  };
  auto rules = masq_rules(kNet, kSubA, false);
  RuleKeeper keeper(Iptables({dir + "/iptables"}), "ip-masq", rules);
  ASSERT_EQ(keeper.ensure().size(), 4u);
  keeper.set_change_probe(nft_ruleset_generation);
  keeper.start(1s, nullptr);
  ASSERT_TRUE(wait_until([&] { return keeper.stats().passes >= 4; }, 8s));
  const int calls_after_idle = lines();
  auto st = keeper.stats();
  EXPECT_GE(st.skipped, 3u) << "passes " << st.passes;
  EXPECT_EQ(st.passes - st.skipped, 1u);  // only the first pass listed the chain

  Strings del = {"-t", "nat", "-D", "POSTROUTING"};
  del.insert(del.end(), rules[1].spec.begin(), rules[1].spec.end());
  iptables(del);
  EXPECT_TRUE(wait_until([&] { return keeper.stats().rules_restored == 1; }, 5s));
  EXPECT_EQ(saved("nat"), lines_of(rules));
  EXPECT_GT(lines(), calls_after_idle);
  keeper.stop();
  std::filesystem::remove_all(dir);
}

TEST_F(IptablesLab, RecycleDeletesOldRulesWhenOnlyTheSubnetChanged) {
  bool rf = ipt_->random_fully_support().supported;
  auto old_rules = masq_rules(kNet, kSubA, rf);
  auto new_rules = masq_rules(kNet, kSubB, rf);
  RuleKeeper old_keeper(*ipt_, "ip-masq", old_rules);
  ASSERT_EQ(old_keeper.ensure().size(), 4u);
  mark(old_rules);

  // Nothing changed: nothing to delete.
  EXPECT_EQ(recycle_old_masq(*ipt_, kNet, kSubA, kNet, kSubA, rf), 0);
  EXPECT_EQ(saved("nat"), lines_of(old_rules));

  // Same network, new subnet (v0.11 kept the old rule because the network had not changed):
  // only the rule naming the old subnet goes; the MASQUERADE rules never leave.
  auto t = std::chrono::steady_clock::now();
  EXPECT_EQ(recycle_old_masq(*ipt_, kNet, kSubA, kNet, kSubB, rf), 1);
  auto recycle_ms = ms_since(t);
  EXPECT_EQ(saved("nat"),
            (Strings{line_of(old_rules[0]), line_of(old_rules[1]), line_of(old_rules[3])}));

  RuleKeeper keeper(*ipt_, "ip-masq", new_rules);
  auto inserted = keeper.ensure();
  ASSERT_EQ(inserted.size(), 1u);
  EXPECT_EQ(inserted[0].rule, new_rules[2]);
  EXPECT_EQ(inserted[0].position, 3);
  EXPECT_EQ(saved("nat", true),
            (Strings{"[7:70] " + line_of(new_rules[0]), "[7:70] " + line_of(new_rules[1]),
                     "[0:0] " + line_of(new_rules[2]), "[7:70] " + line_of(new_rules[3])}));
  std::printf("recycle_old_masq: %lld ms\n", recycle_ms);
}

TEST_F(IptablesLab, RecycleAlsoRemovesTheOtherRandomFullyVariant) {
  if (!ipt_->random_fully_support().supported) GTEST_SKIP() << "no --random-fully here";
  // A v0.11 agent with an older iptables appended its rules without --random-fully.
  for (const auto& r : masq_rules(kNet, kSubA, false)) {
    Strings a = {"-t", "nat", "-A", "POSTROUTING"};
    a.insert(a.end(), r.spec.begin(), r.spec.end());
    iptables(a);
  }
  // Same network, other subnet, this run uses --random-fully: rule 1 stays (identical), the
  // old 2, 3 and 4 go.
  EXPECT_EQ(recycle_old_masq(*ipt_, kNet, kSubA, kNet, kSubB, true), 3);
  EXPECT_EQ(saved("nat"), Strings{line_of(masq_rules(kNet, kSubB, true)[0])});
  RuleKeeper keeper(*ipt_, "ip-masq", masq_rules(kNet, kSubB, true));
  EXPECT_EQ(keeper.ensure().size(), 3u);
  EXPECT_EQ(saved("nat"), lines_of(masq_rules(kNet, kSubB, true)));
  // -ip-masq turned off: delete_old_masq takes the lot.
  EXPECT_EQ(delete_old_masq(*ipt_, kNet, kSubB), 4);
  EXPECT_TRUE(saved("nat").empty());
}

TEST_F(IptablesLab, RecycleForwardRulesWhenTheNetworkChanged) {
  IP4Net other = IP4Net::parse("10.6.0.0/16");
  RuleKeeper keeper(*ipt_, "forward", forward_rules(kNet));
  ASSERT_EQ(keeper.ensure().size(), 2u);
  EXPECT_EQ(recycle_old_forward(*ipt_, kNet, kNet), 0);
  EXPECT_EQ(saved("filter"), lines_of(forward_rules(kNet)));
  EXPECT_EQ(recycle_old_forward(*ipt_, kNet, other), 2);
  EXPECT_TRUE(saved("filter").empty());
}

TEST_F(IptablesLab, SetRulesSwitchesSubnetWithoutAGap) {
  bool rf = ipt_->random_fully_support().supported;
  RuleKeeper keeper(*ipt_, "ip-masq", masq_rules(kNet, kSubA, rf));
  ASSERT_EQ(keeper.ensure().size(), 4u);
  mark(masq_rules(kNet, kSubA, rf));
  keeper.set_rules(masq_rules(kNet, kSubB, rf));
  auto now = masq_rules(kNet, kSubB, rf);
  EXPECT_EQ(saved("nat", true), (Strings{"[7:70] " + line_of(now[0]), "[7:70] " + line_of(now[1]),
                                         "[0:0] " + line_of(now[2]), "[7:70] " + line_of(now[3])}));
  EXPECT_EQ(keeper.rules(), now);
}

}  // namespace
}  // namespace flannel::testing
