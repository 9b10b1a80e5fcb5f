// Masquerade and forward rules with real flanneld processes (issue 20), per mode:
//   Rules/RulesModesLab.*     dual stack, per mode: the exact rule set of both families; pod ->
//                             hub masqueraded, pod -> pod not; a rule deleted, a chain flushed
//                             (and in nftables mode the table deleted) by hand are repaired by the
//                             next check and counted in flannel_rule_repairs_total{mode,family};
//                             restarting in the other mode leaves none of the first mode's rules.
//                             The nftables rules expected are written out here, independently of
//                             backends/rules/nft_rules.h: current flannel's iptables-mode rules
//                             with the kube-proxy mark matched under a mask.
#include "tests/lab/rules_lab.h"
#include "tests/lab/udp_probe.h"

namespace flannel::testing {
namespace {

// ---- 2. Both modes, both families ------------------------------------------------------------

// How host i's rules differ from exactly what mode `mode` installs, in both families ("" =
// they are exactly that).
std::string rules_mismatch(const OverlayLab& lab, int i, Mode mode) {
  const std::string ns = lab.host(i).netns;
  const IP4Net lease4 = lab.lease(i);
  const IP6Net lease6 = *lab.lease6(i);
  std::string diff;
  auto expect = [&](const std::string& what, const Strings& got, const Strings& want) {
    if (got != want)
      diff += what + ":\n  got:\n    " + join(got, "\n    ") + "\n  want:\n    " +
              join(want, "\n    ") + "\n";
  };
  if (mode == Mode::kIptables) {
    const bool rf4 = iptables_in(ns, "iptables").random_fully_support().supported;
    const bool rf6 = iptables_in(ns, "ip6tables").random_fully_support().supported;
    expect("iptables-save -t nat", saved(ns, "iptables-save", "nat"),
           lines_of(masq_rules(kNet4, lease4, rf4)));
    expect("iptables-save -t filter", saved(ns, "iptables-save", "filter"),
           lines_of(forward_rules(kNet4)));
    expect("ip6tables-save -t nat", saved(ns, "ip6tables-save", "nat"),
           lines_of(masq_rules(kNet6, lease6, rf6)));
    expect("ip6tables-save -t filter", saved(ns, "ip6tables-save", "filter"),
           lines_of(forward_rules(kNet6)));
    const std::string tables = nft_tables(ns);
    if (contains(tables, "flannel-ipv4") || contains(tables, "flannel-ipv6"))
      diff += "nftables tables in iptables mode:\n" + tables;
    return diff;
  }
  struct Family {
    const char* nft_family;
    const char* table;
    NftExpected want;
  };
  const bool rf = nft_fully_random_ok(ns);
  for (const auto& f : {Family{"ip", "flannel-ipv4",
                               nft_expected("ip", kNet4.str(), lease4.str(), "224.0.0.0/4", rf)},
                        Family{"ip6", "flannel-ipv6",
                               nft_expected("ip6", kNet6.str(), lease6.str(), "ff00::/8", rf)}}) {
    const auto t = nft_table(ns, f.nft_family, f.table);
    if (!t) {
      diff += std::string("no table ") + f.nft_family + " " + f.table + "\n";
      continue;
    }
    if (t->chains.empty()) diff += "no chains in nft -j output: " + t->json + "\n";
    Strings got_chains, want_chains;
    for (const auto& [name, props] : t->chains) got_chains.push_back(name + ": " + props);
    for (const auto& [name, props] : f.want.chains) want_chains.push_back(name + ": " + props);
    expect(std::string(f.table) + " chains", got_chains, want_chains);
    for (const auto& [chain, rules] : f.want.rules) {
      auto it = t->rules.find(chain);
      expect(std::string(f.table) + " " + chain, it == t->rules.end() ? Strings{} : it->second,
             rules);
    }
  }
  expect("iptables rules naming our networks in nftables mode", flannel_iptables_lines(ns), {});
  return diff;
}

// Awaits host i's exact rule set of `mode` (a repair or a restart may still be on its way);
// returns the last difference ("" = exact within the deadline).
std::string await_exact_rules(const OverlayLab& lab, int i, Mode mode,
                              std::chrono::milliseconds timeout = 5s) {
  std::string diff;
  wait_until(
      [&] {
        diff = rules_mismatch(lab, i, mode);
        return diff.empty();
      },
      timeout);
  return diff;
}

// Pod 0 -> hub is masqueraded to host 0's address, pod 0 -> pod 1 keeps the pod's, both
// families.
void expect_masquerade(OverlayLab& lab, const std::string& when) {
  EXPECT_EQ(source_seen(lab.pod(0).netns, lab.pod(0).addr.str(), lab.lab().hub(), kHub4),
            lab.host(0).addr.str())
      << when << ": IPv4 pod -> hub";
  EXPECT_EQ(source_seen(lab.pod(0).netns, lab.pod(0).addr6->str(), lab.lab().hub(), kHub6),
            lab.host(0).addr6.str())
      << when << ": IPv6 pod -> hub";
  EXPECT_EQ(
      source_seen(lab.pod(0).netns, lab.pod(0).addr.str(), lab.pod(1).netns, lab.pod(1).addr.str()),
      lab.pod(0).addr.str())
      << when << ": IPv4 pod -> pod";
  EXPECT_EQ(source_seen(lab.pod(0).netns, lab.pod(0).addr6->str(), lab.pod(1).netns,
                        lab.pod(1).addr6->str()),
            lab.pod(0).addr6->str())
      << when << ": IPv6 pod -> pod";
}

class RulesModesLab : public ::testing::TestWithParam<Mode> {};

TEST_P(RulesModesLab, ExactRulesMasqueradeRepairAndSwitch) {
  SKIP_UNLESS_ROOT();
  const Mode mode = GetParam();
  OverlayLab lab(mode == Mode::kIptables ? "rmi" : "rmn", config(mode, true), 2);
  lab.customize_start = [](int, Process::Spec& spec) {
    for (const auto& f :
         Strings{"-ip-masq", "-iptables-resync=1", "-healthz-port=" + std::to_string(kHealthzPort)})
      spec.argv.push_back(f);
  };
  lab.start_all();
  for (int i = 0; i < 2; ++i) {
    lab.wait_subnet(i);
    ASSERT_TRUE(lab.lease6(i)) << read_file(lab.subnet_file(i));
  }
  lab.add_pods();
  ASSERT_TRUE(lab.wait_full_mesh()) << lab.dump();
  ASSERT_TRUE(wait_ready(lab, 0)) << read_file(lab.log_file(0));
  const std::string ns = lab.host(0).netns;

  EXPECT_EQ(rules_mismatch(lab, 0, mode), "");
  expect_masquerade(lab, std::string(mode_label(mode)) + " mode");

  // Repairs: per family, a masquerade rule deleted and the forward chain flushed by hand (and in
  // nftables mode the whole table deleted); each is back by the next check and counted.
  struct Damage {
    const char* family;  // metric label
    std::string what;
    std::function<void()> apply;
  };
  std::vector<Damage> damages;
  if (mode == Mode::kIptables) {
    for (const bool v6 : {false, true}) {
      const char* prog = v6 ? "ip6tables" : "iptables";
      const char* fam = v6 ? "ipv6" : "ipv4";
      damages.push_back({fam, std::string(prog) + " -D of the MASQUERADE rule", [&lab, ns, v6] {
                           const Iptables ipt = iptables_in(ns, v6 ? "ip6tables" : "iptables");
                           const bool rf = ipt.random_fully_support().supported;
                           const auto rules = v6 ? masq_rules(kNet6, *lab.lease6(0), rf)
                                                 : masq_rules(kNet4, lab.lease(0), rf);
                           ASSERT_TRUE(ipt.remove(rules[1])) << rules[1].str();
                         }});
      damages.push_back({fam, std::string(prog) + " -F FORWARD", [ns, prog] {
                           std::string out;
                           ASSERT_EQ(run_command({prog, "-F", "FORWARD"}, &out, ns), 0) << out;
                         }});
    }
  } else {
    for (const bool v6 : {false, true}) {
      const std::string fam = v6 ? "ip6" : "ip";
      const std::string table = v6 ? "flannel-ipv6" : "flannel-ipv4";
      const char* label = v6 ? "ipv6" : "ipv4";
      damages.push_back(
          {label, "nft delete rule " + table + " postrtg (the 1st masquerade)", [ns, fam, table] {
             const auto t = nft_table(ns, fam, table);
             ASSERT_TRUE(t);
             const auto& rules = t->rules.at("postrtg");
             size_t k = 0;
             while (k < rules.size() && !contains(rules[k], "masquerade")) ++k;
             ASSERT_LT(k, rules.size()) << join(rules);
             std::string out;
             ASSERT_EQ(run_command({"nft", "delete", "rule", fam, table, "postrtg", "handle",
                                    std::to_string(t->handles.at("postrtg")[k])},
                                   &out, ns),
                       0)
                 << out;
           }});
      damages.push_back(
          {label, "nft flush chain " + table + " forward", [ns, fam, table] {
             std::string out;
             ASSERT_EQ(run_command({"nft", "flush", "chain", fam, table, "forward"}, &out, ns), 0)
                 << out;
           }});
      damages.push_back(
          {label, "nft delete table " + table, [ns, fam, table] {
             std::string out;
             ASSERT_EQ(run_command({"nft", "delete", "table", fam, table}, &out, ns), 0) << out;
           }});
    }
  }
  for (const auto& d : damages) {
    SCOPED_TRACE(d.what);
    const char* other_family = std::string(d.family) == "ipv4" ? "ipv6" : "ipv4";
    const double before = repairs_now(lab, 0, mode, d.family);
    const double before_other = repairs_now(lab, 0, mode, other_family);
    ASSERT_GE(before, 0) << "no /metrics";
    d.apply();
    if (HasFatalFailure()) return;
    const auto t = Clock::now();
    // Repaired: the exact rule set is back.
    const std::string diff = await_exact_rules(lab, 0, mode);
    const long long repaired_ms = ms_since(t);
    EXPECT_EQ(diff, "") << "not repaired within 5 s (resync 1 s)\n" << read_file(lab.log_file(0));
    double after = 0;
    EXPECT_TRUE(wait_until(
        [&] {
          after = repairs_now(lab, 0, mode, d.family);
          return after >= before + 1;
        },
        5s))
        << "flannel_rule_repairs_total{mode=\"" << mode_label(mode) << "\",family=\"" << d.family
        << "\"} stayed at " << before;
    EXPECT_EQ(repairs_now(lab, 0, mode, other_family), before_other)
        << "the other family's repair count moved";
    std::printf("repair %s: %s: back in %lld ms, repairs_total{%s} %.0f -> %.0f\n",
                mode_label(mode), d.what.c_str(), repaired_ms, d.family, before, after);
  }
  expect_masquerade(lab, "after the repairs");

  // Host 1 restarts in the other mode: none of the first mode's rules remain.
  const Mode next = other(mode);
  std::string out;
  ASSERT_EQ(lab.ctl({"config", "set", config(next, true)}, &out), 0) << out;
  ASSERT_EQ(lab.stop(0), 0);
  lab.start(0);
  ASSERT_TRUE(wait_ready(lab, 0)) << read_file(lab.log_file(0));
  EXPECT_EQ(await_exact_rules(lab, 0, next), "");
  if (next == Mode::kIptables) {
    const std::string tables = nft_tables(ns);
    EXPECT_FALSE(contains(tables, "flannel-ipv4")) << tables;
    EXPECT_FALSE(contains(tables, "flannel-ipv6")) << tables;
  } else {
    const Strings left = flannel_iptables_lines(ns);
    EXPECT_TRUE(left.empty()) << join(left);
  }
  expect_masquerade(lab, std::string("after switching to ") + mode_label(next) + " mode");
}

INSTANTIATE_TEST_SUITE_P(Rules, RulesModesLab, ::testing::Values(Mode::kIptables, Mode::kNftables),
                         [](const ::testing::TestParamInfo<Mode>& info) {
                           return info.param == Mode::kIptables ? "Iptables" : "Nftables";
                         });

}  // namespace
}  // namespace flannel::testing
