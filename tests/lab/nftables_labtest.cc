// nftables mode (backends/rules/nftables.h) against the real kernel, through libnftables, inside
// a fresh lab host namespace. Every nft call of these tests runs in a lab namespace: the code
// under test gets a context created there (make_nft), the checks run `ip netns exec NS nft`.
// The root namespace's ruleset is never read or written; the namespace, and with it every table,
// goes away with the Lab on every path.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "backends/rules/nftables.h"
#include "core/ip.h"
#include "tests/support/lab.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Drift = NftPlan::Drift;

const IP4Net kNet = IP4Net::parse("10.5.0.0/16");
const IP4Net kSubA = IP4Net::parse("10.5.34.0/24");
const IP4Net kSubB = IP4Net::parse("10.5.77.0/24");
const IP6Net kNet6 = IP6Net::parse("fc00::/48");
const IP6Net kSub6 = IP6Net::parse("fc00:0:0:1::/64");

// A context in `netns` (libnftables binds its socket to the creating thread's namespace).
Nftables make_nft(const std::string& netns) {
  EnterNetns in(netns);
  return Nftables();
}

// `nft <args>` inside `netns`: its output; fails the test on a non-zero exit.
std::string nft(const std::string& netns, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"nft"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  int rc = run_command(argv, &out, netns);
  EXPECT_EQ(rc, 0) << "nft failed: " << out;
  return out;
}

// The table as nft -j lists it, split into chains and rules (with handles).
struct Listed {
  int table_handle = 0;
  std::map<std::string, json> chains;               // name -> chain object
  std::map<std::string, std::vector<json>> rules;   // chain -> rule objects, in order
  std::map<std::string, std::vector<int>> handles;  // chain -> [chain handle, rule handles...]
};
Listed list_json(const std::string& netns, bool ipv6) {
  json j = json::parse(nft(
      netns, {"-j", "list", "table", ipv6 ? "ip6" : "ip", ipv6 ? "flannel-ipv6" : "flannel-ipv4"}));
  Listed l;
  for (const auto& item : j.at("nftables")) {
    if (item.contains("table")) l.table_handle = item["table"]["handle"];
    if (item.contains("chain")) {
      const auto& c = item["chain"];
      l.chains[c["name"]] = c;
      l.handles[c["name"]].insert(l.handles[c["name"]].begin(), c["handle"].get<int>());
    }
    if (item.contains("rule")) {
      const auto& r = item["rule"];
      l.rules[r["chain"]].push_back(r["expr"]);
      l.handles[r["chain"]].push_back(r["handle"].get<int>());
    }
  }
  return l;
}

json match(const std::string& op, const std::string& proto, const std::string& field,
           const std::string& addr, int len) {
  return {{"match",
           {{"op", op},
            {"left", {{"payload", {{"protocol", proto}, {"field", field}}}}},
            {"right", {{"prefix", {{"addr", addr}, {"len", len}}}}}}}};
}

void expect_table(const Listed& l, bool ipv6, const std::string& c, int cl, const std::string& p,
                  int pl, bool fully_random) {
  const std::string ip = ipv6 ? "ip6" : "ip";
  ASSERT_EQ(l.chains.size(), 2u);
  const json& post = l.chains.at("postrtg");
  EXPECT_EQ(post["type"], "nat");
  EXPECT_EQ(post["hook"], "postrouting");
  EXPECT_EQ(post["prio"], 100);
  EXPECT_EQ(post["policy"], "accept");
  const json& fwd = l.chains.at("forward");
  EXPECT_EQ(fwd["type"], "filter");
  EXPECT_EQ(fwd["hook"], "forward");
  EXPECT_EQ(fwd["prio"], 0);
  EXPECT_EQ(fwd["policy"], "accept");
  const json ret = {{"return", nullptr}}, acc = {{"accept", nullptr}};
  const json masq = fully_random ? json{{"masquerade", {{"flags", "fully-random"}}}}
                                 : json{{"masquerade", nullptr}};
  const json mark = {{"match",
                      {{"op", "=="},
                       {"left", {{"&", {{{"meta", {{"key", "mark"}}}}, 16384}}}},
                       {"right", 16384}}}};
  const std::string mc = ipv6 ? "ff00::" : "224.0.0.0";
  const int mcl = ipv6 ? 8 : 4;
  std::vector<json> want_post{
      {mark, ret},
      {match("==", ip, "saddr", p, pl), match("==", ip, "daddr", c, cl), ret},
      {match("==", ip, "saddr", c, cl), match("==", ip, "daddr", p, pl), ret},
      {match("!=", ip, "saddr", c, cl), match("==", ip, "daddr", p, pl), ret},
      {match("==", ip, "saddr", c, cl), match("!=", ip, "daddr", mc, mcl), masq},
      {match("!=", ip, "saddr", c, cl), match("==", ip, "daddr", c, cl), masq}};
  EXPECT_EQ(l.rules.at("postrtg"), want_post);
  std::vector<json> want_fwd{{match("==", ip, "saddr", c, cl), acc},
                             {match("==", ip, "daddr", c, cl), acc}};
  EXPECT_EQ(l.rules.at("forward"), want_fwd);
}

class NftablesLab : public ::testing::Test {
 protected:
  void SetUp() override {
    cleanup_stale_labs();
    lab_ = std::make_unique<Lab>("nft");
    ns_ = lab_->add_host().netns;
  }
  std::unique_ptr<Lab> lab_;
  std::string ns_;
};

TEST_F(NftablesLab, EnsureWritesTheTableAndASecondEnsureChangesNothing) {
  NftKeeper keeper(make_nft(ns_), nft_rules(kNet, kSubA, true, true, true));
  NftRepair r = keeper.ensure();
  EXPECT_TRUE(r.repaired);
  EXPECT_EQ(r.drift, Drift::kTableMissing);
  Listed l = list_json(ns_, false);
  expect_table(l, false, "10.5.0.0", 16, "10.5.34.0", 24, true);
  // The text we render is exactly what nft 1.0.6 lists.
  EXPECT_EQ(nft(ns_, {"list", "table", "ip", "flannel-ipv4"}),
            nft_table_text(nft_rules(kNet, kSubA, true, true, true)));
  EXPECT_FALSE(keeper.ensure().repaired);
  EXPECT_EQ(list_json(ns_, false).handles, l.handles);
  EXPECT_EQ(list_json(ns_, false).table_handle, l.table_handle);
}

TEST_F(NftablesLab, Ipv6TheSame) {
  NftKeeper keeper(make_nft(ns_), nft_rules(kNet6, kSub6, true, true, false));
  EXPECT_TRUE(keeper.ensure().repaired);
  Listed l = list_json(ns_, true);
  expect_table(l, true, "fc00::", 48, "fc00:0:0:1::", 64, false);
  EXPECT_EQ(nft(ns_, {"list", "table", "ip6", "flannel-ipv6"}),
            nft_table_text(nft_rules(kNet6, kSub6, true, true, false)));
  EXPECT_FALSE(keeper.ensure().repaired);
  EXPECT_EQ(list_json(ns_, true).handles, l.handles);
  keeper.remove();
  EXPECT_EQ(nft(ns_, {"list", "tables"}), "");
}

TEST_F(NftablesLab, RepairsWhatWasChangedByHandAndLeavesTheRest) {
  NftKeeper keeper(make_nft(ns_), nft_rules(kNet, kSubA, true, true, true));
  keeper.ensure();
  Listed before = list_json(ns_, false);
  // A rule deleted by hand: only postrtg is rewritten; forward and the table keep their handles.
  nft(ns_, {"delete", "rule", "ip", "flannel-ipv4", "postrtg", "handle",
            std::to_string(before.handles["postrtg"][3])});
  NftRepair r = keeper.ensure();
  EXPECT_EQ(r.drift, Drift::kChainsDiffer);
  EXPECT_EQ(r.reason, "chain postrtg differs");
  Listed after = list_json(ns_, false);
  expect_table(after, false, "10.5.0.0", 16, "10.5.34.0", 24, true);
  EXPECT_EQ(after.handles["forward"], before.handles["forward"]);
  EXPECT_EQ(after.table_handle, before.table_handle);
  // A chain flushed by hand.
  nft(ns_, {"flush", "chain", "ip", "flannel-ipv4", "forward"});
  EXPECT_EQ(keeper.ensure().reason, "chain forward differs");
  Listed after2 = list_json(ns_, false);
  expect_table(after2, false, "10.5.0.0", 16, "10.5.34.0", 24, true);
  EXPECT_EQ(after2.handles["postrtg"], after.handles["postrtg"]);
  // The table deleted by hand.
  nft(ns_, {"delete", "table", "ip", "flannel-ipv4"});
  EXPECT_EQ(keeper.ensure().drift, Drift::kTableMissing);
  expect_table(list_json(ns_, false), false, "10.5.0.0", 16, "10.5.34.0", 24, true);
  EXPECT_FALSE(keeper.ensure().repaired);
}

// `nft monitor` prints "# new generation N" once per committed transaction.
TEST_F(NftablesLab, SetRulesIsOneTransaction) {
  NftKeeper keeper(make_nft(ns_), nft_rules(kNet, kSubA, true, true, true));
  keeper.ensure();
  const std::string log = ::testing::TempDir() + "/nft_monitor_" + ns_ + ".log";
  std::remove(log.c_str());
  Process monitor(Process::Spec{{"nft", "monitor"}, {}, {}, ns_, log});
  auto marker = [&](const std::string& name) {
    return wait_until(
        [&] {
          run_command({"nft", "add table ip " + name + "; delete table ip " + name}, nullptr, ns_);
          return read_file(log).find("delete table ip " + name) != std::string::npos;
        },
        10s);
  };
  ASSERT_TRUE(marker("flannel-mark-a"));
  NftRepair r = keeper.set_rules(nft_rules(kNet, kSubB, true, true, true));
  EXPECT_EQ(r.reason, "chain postrtg differs");
  ASSERT_TRUE(marker("flannel-mark-b"));
  std::string text = read_file(log);
  size_t from = text.rfind("flannel-mark-a"), to = text.find("add table ip flannel-mark-b");
  std::string ours = text.substr(text.find('\n', from) + 1, to - text.find('\n', from) - 1);
  size_t gens = 0;
  for (size_t p = ours.find("# new generation"); p != std::string::npos;
       p = ours.find("# new generation", p + 1)) {
    ++gens;
  }
  EXPECT_EQ(gens, 2u) << ours;  // marker a's own commit, then ours
  EXPECT_NE(ours.find("10.5.77.0/24"), std::string::npos) << ours;
  expect_table(list_json(ns_, false), false, "10.5.0.0", 16, "10.5.77.0", 24, true);
  std::remove(log.c_str());
}

TEST_F(NftablesLab, DisablingMasqDropsTheChainAndRemoveDropsTheTable) {
  NftKeeper keeper(make_nft(ns_), nft_rules(kNet, kSubA, true, true, true));
  keeper.ensure();
  keeper.set_rules(nft_rules(kNet, kSubA, false, true, true));
  Listed l = list_json(ns_, false);
  EXPECT_EQ(l.chains.count("postrtg"), 0u);
  EXPECT_EQ(l.chains.count("forward"), 1u);
  keeper.remove();
  EXPECT_EQ(nft(ns_, {"list", "tables"}), "");
  keeper.remove();  // absent: no error
}

TEST_F(NftablesLab, ProbeAndErrors) {
  Nftables n = make_nft(ns_);
  EXPECT_TRUE(n.fully_random_supported());
  EXPECT_EQ(nft(ns_, {"list", "tables"}), "");  // the probe committed nothing
  EXPECT_EQ(n.list_table(false), std::nullopt);
  n.delete_table(false);  // absent: no error
  try {
    n.run(
        "add table ip flannel-ipv4\nadd chain ip flannel-ipv4 c\n"
        "add rule ip flannel-ipv4 c ip saddr 10.5.0.300/16 accept\n");
    ADD_FAILURE() << "no error";
  } catch (const NftablesError& e) {
    EXPECT_NE(std::string(e.what()).find("10.5.0.300/16"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Could not resolve"), std::string::npos) << e.what();
  }
  EXPECT_EQ(nft(ns_, {"list", "tables"}), "");  // nothing of the failed script applied
}

// A context created in namespace A keeps working on A from a thread in namespace B.
TEST_F(NftablesLab, ContextStaysInTheNamespaceItWasCreatedIn) {
  const std::string other = lab_->add_host().netns;
  Nftables n = make_nft(ns_);
  std::thread t([&] {
    EnterNetns in(other);
    n.run(nft_replace_script(nft_rules(kNet, kSubA, false, true, false)));
  });
  t.join();
  EXPECT_NE(nft(ns_, {"list", "tables"}), "");
  EXPECT_EQ(nft(other, {"list", "tables"}), "");
}

TEST_F(NftablesLab, ResyncThreadRepairsAndCounts) {
  NftKeeper keeper(make_nft(ns_), nft_rules(kNet, kSubA, true, true, true));
  keeper.ensure();
  std::atomic<int> restored{0};
  keeper.start(1s, [&](const ResyncEvent& e) {
    if (e.kind == ResyncEvent::Kind::kRestored) ++restored;
  });
  nft(ns_, {"delete", "table", "ip", "flannel-ipv4"});
  ASSERT_TRUE(wait_until([&] { return restored.load() > 0; }, 10s));
  keeper.stop();
  NftKeeperStats s = keeper.stats();
  EXPECT_GE(s.passes, 1u);
  EXPECT_EQ(s.repairs, 1u);
  EXPECT_EQ(s.failures, 0u);
  expect_table(list_json(ns_, false), false, "10.5.0.0", 16, "10.5.34.0", 24, true);
}

}  // namespace
}  // namespace flannel::testing
