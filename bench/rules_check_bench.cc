// rules_check_bench: what keeping the -ip-masq and forward rules in place costs (issue 20), in
// the three ways an agent can do it, measured side by side in one run:
//
//   v0.11 / ours before  flannel v0.11's ensureIPTables: per set, `iptables -C` for each rule
//                        (4 masq + 2 forward = 6 processes per check; our RuleKeeper's idle check
//                        was the same until 76b4b03); when one is missing, -D of every rule of
//                        the set (errors ignored), then -C and -A of each, in order (v0.11 only:
//                        our old RuleKeeper inserted just the missing rules, one -I each)
//   ours, iptables       RuleKeeper::ensure() of the masq and the forward keeper: one
//                        `iptables -S CHAIN` each (2 processes), compared in-process; a repair
//                        is one `iptables-restore --noflush` per set
//   ours, nftables       NftKeeper::ensure() of the IPv4 table (masq + forward): one `list table`
//                        through libnftables in-process (no process); a repair is one transaction
//
//   idle check     every rule in place: wall time and CPU (ours: user+sys of this process;
//                  children: user+sys of the iptables processes, RUSAGE_CHILDREN) per check,
//                  the three ways interleaved check by check; then the CPU of 60 s at the
//                  default -iptables-resync=5 (12 checks) as % of one core
//   live (--live)  the same checks run for real, once per second for S seconds, interleaved:
//                  CPU over that time as % of one core
//   full resync    the whole set removed by someone else (iptables: every rule deleted;
//                  nftables: the table deleted), then one check that puts it back; wall and CPU,
//                  median of R, interleaved
//
// Everything runs in lab namespaces (tests/support/lab.h): the iptables ways in lab host 1 (this
// thread is moved there with EnterNetns, and the iptables children inherit its namespace, which
// the bench checks before touching a rule), nftables in lab host 2 (a libnftables context is
// bound to the namespace of the thread that creates it). The root namespace's rules are never
// read or written.
//
// Usage (root): rules_check_bench [checks=100] [resyncs=20] [--live SECONDS]
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backends/rules/iptables.h"
#include "backends/rules/nft_probe.h"
#include "backends/rules/nft_rules.h"
#include "backends/rules/nftables.h"
#include "backends/rules/rule_keeper.h"
#include "bench/bench_util.h"
#include "core/ip.h"
#include "tests/support/lab.h"
#include "tests/support/process.h"

using namespace flannel;
using namespace flannel::testing;
using namespace flannel::bench_util;
using SteadyClock = std::chrono::steady_clock;

namespace {

const IP4Net kNetwork = IP4Net::parse("10.5.0.0/16");
const IP4Net kSubnet = IP4Net::parse("10.5.34.0/24");

// ---- Measuring -------------------------------------------------------------------------------

double tv_ms(const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; }

struct Cost {
  double wall_ms = 0, self_ms = 0, child_ms = 0;
  double cpu_ms() const { return self_ms + child_ms; }
  Cost& operator+=(const Cost& o) {
    wall_ms += o.wall_ms;
    self_ms += o.self_ms;
    child_ms += o.child_ms;
    return *this;
  }
};

// Wall time and CPU of f(): this process (all threads) and the children it waited for.
Cost measure(const std::function<void()>& f) {
  rusage s0{}, c0{}, s1{}, c1{};
  ::getrusage(RUSAGE_SELF, &s0);
  ::getrusage(RUSAGE_CHILDREN, &c0);
  const auto t0 = SteadyClock::now();
  f();
  const auto t1 = SteadyClock::now();
  ::getrusage(RUSAGE_SELF, &s1);
  ::getrusage(RUSAGE_CHILDREN, &c1);
  Cost c;
  c.wall_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  c.self_ms = tv_ms(s1.ru_utime) + tv_ms(s1.ru_stime) - tv_ms(s0.ru_utime) - tv_ms(s0.ru_stime);
  c.child_ms = tv_ms(c1.ru_utime) + tv_ms(c1.ru_stime) - tv_ms(c0.ru_utime) - tv_ms(c0.ru_stime);
  c.child_ms = std::max(0.0, c.child_ms);  // no child: 0, not a rounding -0.000
  return c;
}

struct Samples {
  std::vector<double> wall, self, child, cpu;
  void add(const Cost& c) {
    wall.push_back(c.wall_ms);
    self.push_back(c.self_ms);
    child.push_back(c.child_ms);
    cpu.push_back(c.cpu_ms());
  }
  static double mean(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / static_cast<double>(v.size());
  }
};

void require(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

// ---- The three ways --------------------------------------------------------------------------

// flannel v0.11's ensureIPTables for one set (network/iptables.go): -C each rule until one is
// missing; if all are there, done; else -D all (errors ignored), then AppendUnique each (-C, -A).
void v011_ensure(const Iptables& ipt, const std::vector<IptablesRule>& rules) {
  bool all = true;
  for (const auto& r : rules)
    if (!ipt.exists(r)) {
      all = false;
      break;
    }
  if (all) return;
  for (const auto& r : rules) ipt.remove(r);
  for (const auto& r : rules)
    if (!ipt.exists(r)) ipt.append(r);
}

// Every rule of `rules` listed exactly once in its chain (the check of a repair, not timed).
void require_installed(const Iptables& ipt, const std::vector<IptablesRule>& rules,
                       const std::string& what) {
  const std::string listing = ipt.list(rules.front().table, rules.front().chain);
  for (auto pos : listed_positions(listing, rules))
    require(pos.has_value(), what + ": a rule is missing after the repair:\n" + listing);
  size_t lines = 0;
  for (size_t at = 0; (at = listing.find("\n-A ", at)) != std::string::npos; ++at) ++lines;
  require(lines == rules.size(), what + ": duplicate or foreign rules:\n" + listing);
}

void remove_all(const Iptables& ipt, const std::vector<IptablesRule>& rules) {
  for (const auto& r : rules) ipt.remove(r);
}

// The network namespace of `path` as readlink prints it: "net:[4026532...]".
std::string netns_id(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + path);
  return "net:[" + std::to_string(st.st_ino) + "]";
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

double pct_core(double cpu_ms, double seconds) { return cpu_ms / (seconds * 1e3) * 100.0; }

int run(int checks, int resyncs, int live_s) {
  Lab lab("rcb");
  const Lab::Host h_ipt = lab.add_host();  // copies: add_host() may move the vector
  const Lab::Host h_nft = lab.add_host();
  const std::string home_ns = netns_id("/proc/thread-self/ns/net");  // where we were started

  // nftables: the context is made in host 2 and stays bound there.
  std::optional<NftKeeper> nft_keeper;
  std::optional<Nftables> nft_other;  // "someone else", who deletes the table
  bool nft_fully_random = false;
  {
    EnterNetns in(h_nft.netns);
    Nftables probe;
    nft_fully_random = probe.fully_random_supported();
    nft_keeper.emplace(Nftables(), nft_rules(kNetwork, kSubnet, /*masq=*/true, /*forward=*/true,
                                             nft_fully_random));
    nft_other.emplace();
  }

  // iptables: this thread (and so every iptables child) in host 1 from here on.
  EnterNetns in(h_ipt.netns);
  const std::string lab_ns = netns_id("/run/netns/" + h_ipt.netns);
  require(netns_id("/proc/thread-self/ns/net") == lab_ns, "this thread is not in the lab host");
  require(lab_ns != home_ns, "the lab host is the namespace the bench was started in");
  // The children of the same runner Iptables uses (backends/process/) must start in it too.
  const auto child = Iptables({"readlink"}).run({"/proc/self/ns/net"});
  require(child.exit_code == 0 && trim(child.out) == lab_ns,
          "an iptables child would not run in the lab host (" + trim(child.out) + " != " + lab_ns +
              ")");

  const Iptables ipt;
  const std::string version = ipt.version();
  const bool random_fully = ipt.random_fully_support().supported;
  const auto masq = masq_rules(kNetwork, kSubnet, random_fully);
  const auto fwd = forward_rules(kNetwork);
  RuleKeeper masq_keeper(ipt, "ip-masq", masq);
  RuleKeeper fwd_keeper(ipt, "forward", fwd);

  std::printf("rules_check_bench: %s, masquerade %s; nftables (libnftables in-process), %s\n",
              version.c_str(), random_fully ? "--random-fully" : "without --random-fully",
              nft_fully_random ? "fully-random" : "without fully-random");
  std::printf("lab: iptables in %s (children checked: %s), nftables in %s\n", h_ipt.netns.c_str(),
              lab_ns.c_str(), h_nft.netns.c_str());

  // Install, and check where the rules went (from outside, with `ip netns exec`).
  masq_keeper.ensure();
  fwd_keeper.ensure();
  require_installed(ipt, masq, "ip-masq");
  require_installed(ipt, fwd, "forward");
  {
    std::string out;
    run_command({"iptables", "-t", "nat", "-S", "POSTROUTING"}, &out, h_ipt.netns);
    require(listed_positions(out, masq)[0].has_value(), "masq rules not seen in the lab host");
    require(nft_keeper->ensure().repaired, "the nftables table was not installed");
    out.clear();
    run_command({"nft", "list", "table", "ip", std::string(kNftTable4)}, &out, h_nft.netns);
    require(out.find("masquerade") != std::string::npos, "nft table not seen in the lab host");
  }

  const auto v011_check = [&] {
    v011_ensure(ipt, masq);
    v011_ensure(ipt, fwd);
  };
  const auto ours_check = [&] {
    require(masq_keeper.ensure().empty() && fwd_keeper.ensure().empty(),
            "RuleKeeper repaired a rule during the idle check");
  };
  const auto nft_check = [&] {
    require(!nft_keeper->ensure().repaired, "NftKeeper repaired the table during the idle check");
  };
  // Warm up (the first nft check after the install compares with the read-back listing).
  for (int i = 0; i < 3; ++i) {
    v011_check();
    ours_check();
    nft_check();
  }

  // The agent's idle pass with iptables-nft (RuleKeeper::set_change_probe): one
  // NFT_MSG_GETGEN, the same generation as the last clean check, so no iptables at all.
  const auto gen_check = [&] {
    require(nft_ruleset_generation().has_value(), "cannot read the nftables generation");
  };

  // ---- 1. Idle check, interleaved --------------------------------------------------------------
  Samples idle[4];
  for (int i = 0; i < checks; ++i) {
    idle[0].add(measure(v011_check));
    idle[1].add(measure(ours_check));
    idle[2].add(measure(nft_check));
    idle[3].add(measure(gen_check));
  }

  // ---- 2. Live: one check of each way per second -----------------------------------------------
  Cost live[3];
  int live_passes = 0;
  if (live_s > 0) {
    const auto start = SteadyClock::now();
    auto next = start;
    while (SteadyClock::now() - start < std::chrono::seconds(live_s)) {
      live[0] += measure(v011_check);
      live[1] += measure(ours_check);
      live[2] += measure(nft_check);
      ++live_passes;
      next += std::chrono::seconds(1);
      std::this_thread::sleep_until(next);
    }
  }

  // ---- 3. Full resync, interleaved --------------------------------------------------------------
  Samples full[3];
  for (int i = 0; i < resyncs; ++i) {
    remove_all(ipt, masq);
    remove_all(ipt, fwd);
    full[0].add(measure(v011_check));
    require_installed(ipt, masq, "v0.11 ip-masq");
    require_installed(ipt, fwd, "v0.11 forward");

    remove_all(ipt, masq);
    remove_all(ipt, fwd);
    full[1].add(measure([&] {
      require(masq_keeper.ensure().size() == masq.size(), "RuleKeeper did not restore 4 rules");
      require(fwd_keeper.ensure().size() == fwd.size(), "RuleKeeper did not restore 2 rules");
    }));
    require_installed(ipt, masq, "ours ip-masq");
    require_installed(ipt, fwd, "ours forward");

    nft_other->delete_table(false);
    require(!nft_other->list_table(false).has_value(), "the nftables table is still there");
    full[2].add(measure([&] {
      const NftRepair r = nft_keeper->ensure();
      require(r.repaired && r.drift == NftPlan::Drift::kTableMissing,
              "NftKeeper did not put the missing table back");
    }));
  }
  nft_keeper->remove();  // the lab's namespaces go with `lab`; this is only tidy

  // ---- Report -----------------------------------------------------------------------------------
  const char* names[4] = {"v0.11 / ours before (6 x -C)", "ours, iptables (2 x -S)",
                          "ours, nftables (in-process)", "ours, iptables-nft, gen unchanged"};
  const int procs_idle[4] = {6, 2, 0, 0};
  std::printf("\n1. Idle check, every rule in place: %d checks of each way, interleaved\n", checks);
  std::printf("%-30s %6s %12s %12s %12s %12s %14s\n", "way", "procs", "wall p50 ms", "CPU ms/check",
              "(ours", "children)", "60 s at 5 s");
  for (int w = 0; w < 4; ++w) {
    const double cpu = Samples::mean(idle[w].cpu);
    std::printf("%-30s %6d %12.3f %12.3f %12.3f %12.3f %13.3f%%\n", names[w], procs_idle[w],
                median(idle[w].wall), cpu, Samples::mean(idle[w].self),
                Samples::mean(idle[w].child), pct_core(cpu * 12, 60));
  }
  const double base_cpu = Samples::mean(idle[0].cpu), base_wall = median(idle[0].wall);
  for (int w = 1; w < 4; ++w)
    std::printf("  v0.11 / %s: CPU x%.1f, wall x%.1f\n", names[w],
                base_cpu / Samples::mean(idle[w].cpu), base_wall / median(idle[w].wall));

  if (live_s > 0) {
    std::printf("\n2. Live: %d passes, one check of each way per second, over %d s of real time\n",
                live_passes, live_s);
    std::printf("%-30s %14s %14s %12s\n", "way", "CPU ms total", "(children)", "% of a core");
    for (int w = 0; w < 3; ++w)
      std::printf("%-30s %14.1f %14.1f %11.3f%%\n", names[w], live[w].cpu_ms(), live[w].child_ms,
                  pct_core(live[w].cpu_ms(), live_s));
  }

  // v0.11: per set one failing -C, -D each, -C and -A each (13 + 7); ours: per set -S, -C of each
  // rule the listing lacks, one iptables-restore (6 + 4).
  const int procs_full[3] = {20, 10, 0};
  names[0] = "v0.11 (-D all, -C/-A each)";
  std::printf("\n3. Full resync: the whole set removed, one check puts it back; median of %d\n",
              resyncs);
  std::printf("%-30s %6s %12s %12s %12s %12s\n", "way", "procs", "wall p50 ms", "CPU p50 ms",
              "(ours", "children)");
  for (int w = 0; w < 3; ++w)
    std::printf("%-30s %6d %12.3f %12.3f %12.3f %12.3f\n", names[w], procs_full[w],
                median(full[w].wall), median(full[w].cpu), median(full[w].self),
                median(full[w].child));
  const double fb_cpu = median(full[0].cpu), fb_wall = median(full[0].wall);
  for (int w = 1; w < 3; ++w)
    std::printf("  v0.11 / %s: CPU x%.1f, wall x%.1f\n", names[w], fb_cpu / median(full[w].cpu),
                fb_wall / median(full[w].wall));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> pos;
  int live_s = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--live" && i + 1 < argc) live_s = std::max(0, std::atoi(argv[++i]));
    else pos.push_back(std::max(1, std::atoi(argv[i])));
  }
  const int checks = pos.size() > 0 ? pos[0] : 100;
  const int resyncs = pos.size() > 1 ? pos[1] : 20;
  if (geteuid() != 0) {
    std::fprintf(stderr, "rules_check_bench needs root (it builds network namespaces)\n");
    return 2;
  }
  cleanup_stale_labs();
  try {
    return run(checks, resyncs, live_s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rules_check_bench: %s\n", e.what());
    return 1;
  }
}
