// idle_cpu_bench: what N idle flanneld agents cost the machine (issue 22). N agents, each on its
// own lab host namespace, share one store (a SQLite file, or etcd v2 in the lab hub), all hold
// leases, nothing changes. For each combination of agent count, store and -ip-masq:
//
//   baseline      the machine's non-idle CPU (/proc/stat) over --baseline seconds with the lab
//                 and the store (etcd running) up but no agent yet
//   agents        start N agents (host-gw, -iface=eth0, -ip-masq for the masq rows, the default
//                 -iptables-resync of 5 s), wait until every one has written its subnet file
//                 (holds a lease), let them settle for 5 s, then over --seconds of wall time:
//     own         the agents' own CPU (utime + stime of /proc/PID/stat, summed)
//     children    their waited-for children's CPU (cutime + cstime: the iptables runs)
//     machine     the machine's non-idle CPU over the window minus the baseline's rate: what the
//                 agents cost including the kernel's work for them and the store's (on a shared
//                 machine this also holds any change in other load between the two windows)
//     etcd        the etcd server's own CPU (etcd rows)
//   leased        from the first agent's start to the last subnet file (100 agents started at
//                 once: all leased)
//   events        then --events single leases written one at a time by the bench, each waited
//                 for in every agent's kernel (bench/lease_fanout.h): write -> route per agent,
//                 write -> the last of the N kernels, and the store's share (write -> the agent's
//                 watch answer); p50 / p99. The agents run with -v=2 for their per-change time
//                 (one log line per change; nothing at -v=2 is logged while idle).
// All figures in % of one core. Each combination runs the "before" binary (--binary-before) and
// the "after" one (this build's flanneld) back to back, in alternating order, on a fresh lab and
// a fresh store each time, so both see the same machine load.
//
// Usage (root, from the build dir):
//   idle_cpu_bench [--agents 30,100] [--stores sqlite,etcd] [--masq on,off] [--seconds 60]
//                  [--baseline 10] [--events 20] [--binary-before PATH] [--binary-after PATH]
// Without --binary-before only the "after" binary runs. IDLE_CPU_BENCH_KEEP=1 keeps the directory
// with the agents' logs.
//
// Namespaces are fl<pid>-* (Lab), removed on exit and by cleanup_stale_labs(); the network is
// 10.5.0.0/16 inside the lab only.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "bench/lease_fanout.h"
#include "tests/support/lab.h"
#include "tests/support/lab_store.h"
#include "tests/support/process.h"

using namespace flannel::testing;
using namespace flannel::bench_util;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr const char* kConfig = R"({"Network":"10.5.0.0/16","Backend":{"Type":"host-gw"}})";

// The machine's non-idle jiffies (first line of /proc/stat: user nice system irq softirq steal;
// guest time is already in user) at a moment of steady time.
struct MachineCpu {
  double busy_jiffies = 0;
  SteadyClock::time_point at;
};

MachineCpu machine_cpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return {user + nice + system + irq + softirq + steal, SteadyClock::now()};
}

// % of one core between two readings.
double machine_pct(const MachineCpu& a, const MachineCpu& b) {
  double seconds = std::chrono::duration<double>(b.at - a.at).count();
  return 100.0 * (b.busy_jiffies - a.busy_jiffies) /
         (seconds * static_cast<double>(sysconf(_SC_CLK_TCK)));
}

struct Result {
  bool ok = false;
  double baseline = 0;  // machine, no agents
  double machine = 0;   // machine during the window minus baseline
  double own = 0, children = 0;
  double etcd = -1;       // etcd's own CPU, -1 for SQLite
  double leased_ms = -1;  // first agent started -> every subnet file written
  Fanout fanout;
};

struct Combo {
  int agents;
  LabStore::Kind kind;
  bool masq;
};

std::string label(const Combo& c) {
  return std::to_string(c.agents) + " " + to_string(c.kind) + " masq " + (c.masq ? "on" : "off");
}

Result run_once(const Combo& c, const std::string& binary, int seconds, int baseline_s, int events,
                const std::string& dir) {
  Result r;
  Lab lab("i");
  for (int i = 0; i < c.agents; ++i) lab.add_host();
  std::filesystem::create_directories(dir);
  LabStore store(c.kind, lab, dir, "/flannel-bench/network");
  std::string out;
  if (store.ctl({"config", "set", kConfig}, &out) != 0) {
    std::fprintf(stderr, "config set failed: %s\n", out.c_str());
    return r;
  }
  std::this_thread::sleep_for(2s);  // the lab's ip commands and etcd's start are over
  MachineCpu b0 = machine_cpu();
  std::this_thread::sleep_for(std::chrono::seconds(baseline_s));
  r.baseline = machine_pct(b0, machine_cpu());

  std::vector<std::unique_ptr<Process>> agents;
  std::vector<std::string> logs;
  auto started = SteadyClock::now();
  for (int i = 0; i < c.agents; ++i) {
    std::vector<std::string> argv{binary};
    for (const auto& f : store.flags()) argv.push_back(f);
    argv.push_back("-subnet-file=" + dir + "/h" + std::to_string(i) + ".env");
    argv.push_back("-iface=eth0");
    argv.push_back("-v=2");
    if (c.masq) argv.push_back("-ip-masq");
    logs.push_back(dir + "/h" + std::to_string(i) + ".log");
    agents.push_back(std::make_unique<Process>(
        Process::Spec{argv, {}, {"NOTIFY_SOCKET"}, lab.hosts()[i].netns, logs.back()}));
  }
  auto stop_all = [&] {
    for (auto& p : agents) p->signal(SIGTERM);
    for (auto& p : agents)
      if (!p->wait(5s)) p->signal(SIGKILL);
  };
  auto deadline = SteadyClock::now() + 30s + std::chrono::milliseconds(500 * c.agents);
  for (int i = 0; i < c.agents; ++i) {
    while (!std::filesystem::exists(dir + "/h" + std::to_string(i) + ".env")) {
      if (SteadyClock::now() > deadline || !agents[i]->running()) {
        std::fprintf(stderr, "agent %d got no lease:\n%s\n", i,
                     agents[i]->output().substr(0, 2000).c_str());
        stop_all();
        return r;
      }
      std::this_thread::sleep_for(20ms);
    }
  }
  r.leased_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - started).count();
  std::this_thread::sleep_for(5s);  // settle: the last peers' routes, the first rules checks

  std::vector<ProcCpu> a0;
  for (auto& p : agents) a0.push_back(proc_cpu(p->pid()));
  ProcCpu e0 = store.is_etcd() ? proc_cpu(store.etcd_pid()) : ProcCpu{};
  MachineCpu m0 = machine_cpu();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  MachineCpu m1 = machine_cpu();
  ProcCpu e1 = store.is_etcd() ? proc_cpu(store.etcd_pid()) : ProcCpu{};
  double window_ms = std::chrono::duration<double, std::milli>(m1.at - m0.at).count();
  double own = 0, children = 0;
  for (size_t i = 0; i < agents.size(); ++i) {
    ProcCpu now = proc_cpu(agents[i]->pid());
    if (!agents[i]->running()) {
      std::fprintf(stderr, "agent %zu exited during the window:\n%s\n", i,
                   agents[i]->output().substr(0, 2000).c_str());
      stop_all();
      return r;
    }
    own += now.own() - a0[i].own();
    children += now.children() - a0[i].children();
  }
  if (events > 0)
    r.fanout = measure_fanout(store, lab, logs, flannel::IP4Net::parse("10.5.0.0/16"),
                              flannel::IP4::parse("10.250.0.253"), events);
  stop_all();
  r.ok = true;
  r.own = 100.0 * own / window_ms;
  r.children = 100.0 * children / window_ms;
  r.machine = machine_pct(m0, m1) - r.baseline;
  if (store.is_etcd()) r.etcd = 100.0 * (e1.own() - e0.own()) / window_ms;
  return r;
}

void print_result(const std::string& which, const Combo& c, const Result& r) {
  if (!r.ok) {
    std::fprintf(stderr, "%-26s %-6s FAILED\n", label(c).c_str(), which.c_str());
    return;
  }
  std::fprintf(stderr,
               "%-26s %-6s agents %6.2f%% (own %5.2f + children %5.2f)  machine over baseline "
               "%6.2f%% (baseline %5.2f%%)",
               label(c).c_str(), which.c_str(), r.own + r.children, r.own, r.children, r.machine,
               r.baseline);
  if (r.etcd >= 0) std::fprintf(stderr, "  etcd %5.2f%%", r.etcd);
  std::fprintf(stderr, "  all leased in %.0f ms\n", r.leased_ms);
  const Fanout& f = r.fanout;
  if (f.written > 0 || !f.error.empty())
    std::fprintf(
        stderr,
        "%-26s %-6s %d leases: store p50 %.2f p99 %.2f ms, kernel p50 %.2f p99 %.2f ms, "
        "last kernel p50 %.2f p99 %.2f ms (missed %d, agents without store figure %d)%s%s\n",
        label(c).c_str(), which.c_str(), f.written, percentile(f.store_ms, 0.5),
        percentile(f.store_ms, 0.99), percentile(f.kernel_ms, 0.5), percentile(f.kernel_ms, 0.99),
        percentile(f.last_ms, 0.5), percentile(f.last_ms, 0.99), f.missed, f.agents_no_store,
        f.error.empty() ? "" : " error: ", f.error.c_str());
}

// "p50 / p99" of samples in ms.
std::string p50_p99(const Result& r, const std::vector<double>& v) {
  if (!r.ok || v.empty()) return "";
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.2f / %.2f", percentile(v, 0.5), percentile(v, 0.99));
  return buf;
}

std::string pct(const Result& r, double v) {
  if (!r.ok) return "failed";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f %%", v);
  return buf;
}

std::string ratio(const Result& before, const Result& after, double b, double a) {
  if (!before.ok || !after.ok || a <= 0 || b <= 0) return "";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "x%.1f", b / a);
  return buf;
}

struct Row {
  Combo combo;
  Result before, after;
};

// Start and event latency, before and after, one row per combination.
void print_latency_table(const std::vector<Row>& rows, bool with_before, int events) {
  std::printf(
      "\nStart and events: all leased (first start -> last subnet file), then %d single leases "
      "each waited for in every agent's kernel, ms p50 / p99 (store: write -> the agent's watch "
      "answer; kernel: write -> route, every agent; last: write -> the last of the N kernels)\n\n",
      events);
  std::printf(
      "| agents | store | -ip-masq | all leased before | all leased after | store before | store "
      "after | kernel before | kernel after | last kernel before | last kernel after |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  auto leased = [](const Result& r) {
    return r.ok ? std::to_string(static_cast<long>(r.leased_ms)) : std::string();
  };
  for (const auto& r : rows) {
    const Result &b = r.before, &a = r.after;
    std::printf("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.combo.agents,
                to_string(r.combo.kind).c_str(), r.combo.masq ? "on" : "off",
                with_before ? leased(b).c_str() : "", leased(a).c_str(),
                p50_p99(b, b.fanout.store_ms).c_str(), p50_p99(a, a.fanout.store_ms).c_str(),
                p50_p99(b, b.fanout.kernel_ms).c_str(), p50_p99(a, a.fanout.kernel_ms).c_str(),
                p50_p99(b, b.fanout.last_ms).c_str(), p50_p99(a, a.fanout.last_ms).c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> agent_counts{"30", "100"}, stores{"sqlite", "etcd"}, masqs{"on", "off"};
  int seconds = 60, baseline_s = 10, events = 20;
  std::string before, after = std::string(FLANNEL_BIN_DIR) + "/flanneld";
  for (int i = 1; i < argc; i += 2) {
    std::string a = argv[i];
    std::string v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--agents") agent_counts = split_list(v);
    else if (a == "--stores") stores = split_list(v);
    else if (a == "--masq") masqs = split_list(v);
    else if (a == "--seconds") seconds = std::stoi(v);
    else if (a == "--baseline") baseline_s = std::stoi(v);
    else if (a == "--events") events = std::stoi(v);
    else if (a == "--binary-before") before = v;
    else if (a == "--binary-after") after = v;
    else {
      std::fprintf(stderr,
                   "idle_cpu_bench: unknown option %s (valid: --agents --stores --masq --seconds "
                   "--baseline --events --binary-before --binary-after)\n",
                   a.c_str());
      return 2;
    }
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "idle_cpu_bench: needs root (network namespaces)\n");
    return 1;
  }
  cleanup_stale_labs();
  char tmpl[] = "/run/flannel-idle-bench-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);

  std::vector<Combo> combos;
  for (const auto& n : agent_counts)
    for (const auto& s : stores)
      for (const auto& m : masqs)
        combos.push_back({std::stoi(n),
                          s == "etcd" ? LabStore::Kind::kEtcd : LabStore::Kind::kSqlite,
                          m == "on"});
  std::vector<Row> rows;
  int run = 0;
  for (size_t k = 0; k < combos.size(); ++k) {
    Row row{combos[k], {}, {}};
    // Alternate which binary goes first, so a drift in the machine's load favours neither.
    std::vector<std::pair<std::string, Result*>> order{{"after", &row.after}};
    if (!before.empty()) {
      if (k % 2 == 0) order.insert(order.begin(), {"before", &row.before});
      else order.push_back({"before", &row.before});
    }
    for (auto& [which, res] : order) {
      const std::string& bin = which == "before" ? before : after;
      try {
        *res = run_once(row.combo, bin, seconds, baseline_s, events,
                        dir + "/run" + std::to_string(run++));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s %s: %s\n", label(row.combo).c_str(), which.c_str(), e.what());
      }
      print_result(which, row.combo, *res);
    }
    rows.push_back(row);
  }

  std::printf(
      "\nIdle cost, %% of one core over %d s (agents: own + children CPU; machine: non-idle CPU "
      "minus a %d s baseline before the agents started)\n\n",
      seconds, baseline_s);
  std::printf(
      "| agents | store | -ip-masq | machine before | machine after | ratio | agents before | "
      "agents after | ratio | etcd before | etcd after | baseline before / after |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    const Result &b = r.before, &a = r.after;
    bool etcd = r.combo.kind != LabStore::Kind::kSqlite;
    std::printf("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n",
                r.combo.agents, to_string(r.combo.kind).c_str(), r.combo.masq ? "on" : "off",
                before.empty() ? "" : pct(b, b.machine).c_str(), pct(a, a.machine).c_str(),
                ratio(b, a, b.machine, a.machine).c_str(),
                before.empty() ? "" : pct(b, b.own + b.children).c_str(),
                pct(a, a.own + a.children).c_str(),
                ratio(b, a, b.own + b.children, a.own + a.children).c_str(),
                etcd && !before.empty() ? pct(b, b.etcd).c_str() : "",
                etcd ? pct(a, a.etcd).c_str() : "",
                before.empty() ? "" : pct(b, b.baseline).c_str(), pct(a, a.baseline).c_str());
  }
  print_latency_table(rows, !before.empty(), events);
  std::fflush(stdout);
  if (getenv("IDLE_CPU_BENCH_KEEP")) std::fprintf(stderr, "kept %s\n", dir.c_str());
  else std::filesystem::remove_all(dir);
  return 0;
}
