// agent_scale_bench: one real flanneld in a lab host namespace starting with N leases already in
// the store (SQLite file, or etcd v2 in the lab hub), vxlan and host-gw:
//
//   start -> all in kernel    fork of flanneld until every peer's route (vxlan: also its
//                             neighbour and FDB entry) is in the agent's namespace
//   subnet.env -> all         from the subnet file appearing (lease held) to the same point: the
//                             peer set (the list the lease was chosen from) and the backend sync
//   RSS after sync            VmRSS and RssAnon of the agent 0.5 s after the last entry appeared,
//                             and its peak (VmHWM: the list, decode and sync's transient memory)
//   one new peer              then E single leases written one at a time, each waited for in the
//                             kernel: the agent's own time per event (watch answer returned ->
//                             last netlink ack; its -v=2 "Peer changes applied in N us" line, the
//                             same figure as the flannel_peer_apply_seconds histogram on /metrics),
//                             p50 / p99 / max, and the bench's store-write -> route-seen time
//
// Kernel entries are counted from netlink notifications (routes and neighbours/FDB groups) on a
// socket opened in the agent's namespace before the agent starts, so the bench takes no RTNL
// lock while the agent writes; the counts are checked against a dump at the end.
//
// Usage (root, from the build dir):
//   agent_scale_bench [--peers N] [--runs R] [--events E] [--stores sqlite,etcd]
//                     [--backends vxlan,host-gw] [--smaps]  (defaults 10000, 3, 1000, both, both)
// --smaps prints the agent's mappings holding >= 512 kB after each sync. AGENT_SCALE_BENCH_KEEP=1
// keeps the directory with the agents' logs.
// Times are medians of R runs (a fresh lab host each); the events run once, after the last run.
//
// Namespaces are fl<pid>-* (Lab), removed on exit and by cleanup_stale_labs(); leases live in
// 10.64.0.0/10, peer PublicIPs in 172.31.0.0/16 on the host's eth0 (added inside the lab only).
#include <fcntl.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "bench/lab_client.h"
#include "bench/route_watch.h"
#include "stores/open_store.h"
#include "tests/support/lab.h"
#include "tests/support/lab_store.h"
#include "tests/support/peer_ns.h"
#include "tests/support/process.h"

using namespace flannel;
using namespace flannel::testing;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

using namespace flannel::bench_util;

namespace {

constexpr uint32_t kNetBase = (10u << 24) | (64u << 16);  // 10.64.0.0/10
constexpr size_t kMaxPeers = 16384;                       // /24s in a /10

std::string config_json(const std::string& type) {
  return R"({"Network":"10.64.0.0/10","SubnetLen":24,"Backend":{"Type":")" + type + R"("}})";
}

Lease peer_lease(size_t i, const std::string& type) {
  Lease l;
  l.subnet.ip.value = kNetBase + (static_cast<uint32_t>(i) << 8);
  l.subnet.prefix = 24;
  l.attrs.public_ip.value = (172u << 24) | (31u << 16) | (static_cast<uint32_t>(1 + i / 250) << 8) |
                            static_cast<uint32_t>(2 + i % 250);
  l.attrs.backend_type = type;
  if (type == "vxlan") {
    char mac[64];
    std::snprintf(mac, sizeof(mac), R"({"VtepMAC":"0a:58:00:00:%02zx:%02zx"})", i >> 8, i & 0xff);
    l.attrs.backend_data = mac;
  }
  return l;
}

// Peer index of a 10.64.0.0/10 /24 network address, or -1.
long peer_index(uint32_t addr_host_order) {
  if ((addr_host_order & 0xffc00000u) != kNetBase || (addr_host_order & 0xff) != 0) return -1;
  return static_cast<long>((addr_host_order - kNetBase) >> 8);
}

double ms_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The mappings of `pid` holding at least 512 kB of RSS, largest first ("<rss kB> <name>").
std::string big_mappings(pid_t pid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/smaps"));
  std::vector<std::pair<long, std::string>> maps;
  std::string line, name;
  while (std::getline(in, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find('-') < 16) {
      std::istringstream f(line);
      std::string range, perms, off, dev, inode;
      f >> range >> perms >> off >> dev >> inode;
      std::getline(f, name);
      name.erase(0, name.find_first_not_of(' '));
      if (name.empty()) name = "[anon]";
      name += " " + perms;
    } else if (line.rfind("Rss:", 0) == 0) {
      maps.emplace_back(std::stol(line.substr(4)), name);
    }
  }
  std::sort(maps.rbegin(), maps.rend());
  std::string out;
  for (const auto& [kb, n] : maps)
    if (kb >= 512) out += "    " + std::to_string(kb) + " kB " + n + "\n";
  return out;
}

// Counts, per peer index, the routes, IPv4 neighbours and bridge FDB entries announced in one
// namespace (netlink notifications; a thread of its own).
class KernelWatch {
 public:
  enum Kind { kRoute, kNeigh, kFdb, kKinds };

  explicit KernelWatch(const std::string& netns)
      : sk_(open_rtnl_watch(netns, {RTNLGRP_IPV4_ROUTE, RTNLGRP_NEIGH})) {
    for (auto& s : seen_) s.assign(kMaxPeers, false);
    thread_ = std::thread([this] { loop(); });
  }
  ~KernelWatch() {
    stop_ = true;
    thread_.join();
    nl_socket_free(sk_);
  }

  // Waits until every index in [from, to) has been seen for each kind in `kinds`; returns the
  // time the last one arrived, or nullopt after `timeout` (or if the socket overflowed).
  std::optional<SteadyClock::time_point> wait_all(size_t from, size_t to,
                                                  const std::vector<Kind>& kinds,
                                                  std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    bool ok = cv_.wait_for(lock, timeout, [&] {
      if (overflow_) return true;
      for (Kind k : kinds)
        if (count_in(k, from, to) < to - from) return false;
      return true;
    });
    if (!ok || overflow_) return std::nullopt;
    SteadyClock::time_point last{};
    for (Kind k : kinds) last = std::max(last, last_[k]);
    return last;
  }
  bool overflowed() {
    std::lock_guard lock(mu_);
    return overflow_;
  }

 private:
  size_t count_in(Kind k, size_t from, size_t to) const {
    return static_cast<size_t>(std::count(seen_[k].begin() + static_cast<long>(from),
                                          seen_[k].begin() + static_cast<long>(to), true));
  }

  void note(Kind k, long index) {
    if (index < 0 || static_cast<size_t>(index) >= kMaxPeers) return;
    std::lock_guard lock(mu_);
    if (!seen_[k][index]) {
      seen_[k][index] = true;
      last_[k] = SteadyClock::now();
      cv_.notify_all();
    }
  }

  static int on_msg(nl_msg* msg, void* arg) {
    auto* self = static_cast<KernelWatch*>(arg);
    nlmsghdr* h = nlmsg_hdr(msg);
    if (h->nlmsg_type == RTM_NEWROUTE) {
      auto* rt = static_cast<rtmsg*>(nlmsg_data(h));
      nlattr* tb[RTA_MAX + 1];
      if (rt->rtm_family != AF_INET || rt->rtm_dst_len != 24 || rt->rtm_table != RT_TABLE_MAIN ||
          nlmsg_parse(h, sizeof(rtmsg), tb, RTA_MAX, nullptr) < 0 || !tb[RTA_DST])
        return NL_OK;
      self->note(kRoute, peer_index(ntohl(nla_get_u32(tb[RTA_DST]))));
    } else if (h->nlmsg_type == RTM_NEWNEIGH) {
      auto* nd = static_cast<ndmsg*>(nlmsg_data(h));
      nlattr* tb[NDA_MAX + 1];
      if (nlmsg_parse(h, sizeof(ndmsg), tb, NDA_MAX, nullptr) < 0) return NL_OK;
      if (nd->ndm_family == AF_INET && tb[NDA_DST]) {
        self->note(kNeigh, peer_index(ntohl(nla_get_u32(tb[NDA_DST]))));
      } else if (nd->ndm_family == AF_BRIDGE && tb[NDA_LLADDR] && nla_len(tb[NDA_LLADDR]) == 6) {
        auto* mac = static_cast<const uint8_t*>(nla_data(tb[NDA_LLADDR]));
        if (mac[0] == 0x0a && mac[1] == 0x58 && mac[2] == 0 && mac[3] == 0)
          self->note(kFdb, (static_cast<long>(mac[4]) << 8) | mac[5]);
      }
    }
    return NL_OK;
  }

  void loop() {
    nl_cb* base = nl_socket_get_cb(sk_);  // a new reference (nl_cb_get)
    nl_cb* cb = nl_cb_clone(base);
    nl_cb_put(base);
    nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, &KernelWatch::on_msg, this);
    pollfd p{nl_socket_get_fd(sk_), POLLIN, 0};
    while (!stop_) {
      if (::poll(&p, 1, 20) <= 0) continue;
      int n = nl_recvmsgs_report(sk_, cb);
      if (n < 0 && n != -NLE_AGAIN) {
        std::lock_guard lock(mu_);
        overflow_ = true;
        cv_.notify_all();
        break;
      }
    }
    nl_cb_put(cb);
  }

  nl_sock* sk_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<bool> seen_[kKinds];
  SteadyClock::time_point last_[kKinds]{};
  bool overflow_ = false;
};

// Writes leases [from, to) with `threads` writers (each with its own store handle).
bool write_leases(const LabStore& ls, const Lab& lab, size_t from, size_t to,
                  const std::string& type, int threads) {
  std::atomic<bool> ok{true};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::unique_ptr<PeerNs::Enter> in;
      if (ls.is_etcd()) in = std::make_unique<PeerNs::Enter>(lab.hub());
      auto store = open_lab_store(ls);
      for (size_t i = from + static_cast<size_t>(t); i < to && ok;
           i += static_cast<size_t>(threads)) {
        Lease out;
        Status s = store->create_lease(peer_lease(i, type), std::chrono::hours(24), &out);
        if (!s.ok()) {
          std::fprintf(stderr, "create %zu: %s\n", i, s.message.c_str());
          ok = false;
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  return ok;
}

struct RunResult {
  double start_ms = -1, env_ms = -1;  // process start / subnet.env -> all in the kernel
  long rss_kb = -1, anon_kb = -1, peak_kb = -1;
  double user_ms = 0, sys_ms = 0;  // the agent's CPU time until then
};

// AGENT_SCALE_BENCH_WRAP (e.g. "heaptrack -o /tmp/agent"): a command the agent runs under.
std::vector<std::string> agent_argv(const LabStore& store, const std::string& env_file) {
  std::vector<std::string> argv;
  if (const char* wrap = getenv("AGENT_SCALE_BENCH_WRAP")) {
    std::istringstream in(wrap);
    for (std::string w; in >> w;) argv.push_back(w);
  }
  argv.push_back(std::string(FLANNEL_BIN_DIR) + "/flanneld");
  for (const auto& f : store.flags()) argv.push_back(f);
  argv.push_back("-subnet-file=" + env_file);
  argv.push_back("-iface=eth0");
  argv.push_back("-v=2");
  return argv;
}

// Our own subnet from the subnet file (to skip it and to delete its lease afterwards).
std::optional<IP4Net> own_subnet(const std::string& env_file) {
  std::istringstream in(read_file(env_file));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("FLANNEL_SUBNET=", 0) == 0) {
      IP4Net n = IP4Net::parse(line.substr(15));
      n.ip.value &= ~((1u << (32 - n.prefix)) - 1);
      return n;
    }
  return std::nullopt;
}

bool smaps = false;  // --smaps: print the agent's big mappings after each sync

void bench(LabStore::Kind kind, const std::string& type, size_t peers, int runs, size_t events,
           const std::string& dir) {
  const std::string name = to_string(kind) + " " + type;
  Lab lab("s");
  std::string sdir = dir + "/" + to_string(kind) + "-" + type;
  std::filesystem::create_directories(sdir);
  LabStore store(kind, lab, sdir, "/flannel-bench/network");
  std::string out;
  if (store.ctl({"config", "set", config_json(type)}, &out) != 0) {
    std::fprintf(stderr, "%s: config set failed: %s\n", name.c_str(), out.c_str());
    return;
  }
  auto t_fill = SteadyClock::now();
  if (!write_leases(store, lab, 0, peers, type, store.is_etcd() ? 8 : 1)) return;
  std::fprintf(stderr, "%s: wrote %zu leases in %.1f s\n", name.c_str(), peers,
               ms_between(t_fill, SteadyClock::now()) / 1000);
  std::vector<KernelWatch::Kind> kinds{KernelWatch::kRoute};
  if (type == "vxlan") kinds = {KernelWatch::kRoute, KernelWatch::kNeigh, KernelWatch::kFdb};

  std::vector<RunResult> results;
  for (int r = 0; r < runs; ++r) {
    const auto& host = lab.add_host();
    // Peer PublicIPs on-link for host-gw (after 10.250.0.I, so -iface=eth0 keeps that address).
    run_command({"ip", "addr", "add", "172.31.0.1/16", "dev", "eth0"}, nullptr, host.netns);
    std::string env_file = sdir + "/subnet" + std::to_string(r) + ".env";
    std::string log = sdir + "/agent" + std::to_string(r) + ".log";
    KernelWatch kw(host.netns);
    auto t0 = SteadyClock::now();
    Process p({agent_argv(store, env_file), {}, {"NOTIFY_SOCKET"}, host.netns, log});
    SteadyClock::time_point t_env{};
    auto deadline = t0 + 60s;
    while (!std::filesystem::exists(env_file) && SteadyClock::now() < deadline) usleep(200);
    t_env = SteadyClock::now();
    auto done = kw.wait_all(0, peers, kinds, 60s);
    if (!done) {
      std::fprintf(stderr, "%s: not all %zu peers reached the kernel%s; agent log:\n%s\n",
                   name.c_str(), peers, kw.overflowed() ? " (notification socket overflowed)" : "",
                   p.output().substr(0, 4000).c_str());
      return;
    }
    RunResult res;
    res.start_ms = ms_between(t0, *done);
    res.env_ms = ms_between(t_env, *done);
    std::this_thread::sleep_for(500ms);
    res.rss_kb = status_kb(p.pid(), "VmRSS");
    res.anon_kb = status_kb(p.pid(), "RssAnon");
    res.peak_kb = status_kb(p.pid(), "VmHWM");
    ProcCpu cpu = proc_cpu(p.pid());
    res.user_ms = cpu.user;
    res.sys_ms = cpu.sys;
    if (smaps)
      std::fprintf(stderr, "%s mappings >= 512 kB RSS after the sync:\n%s", name.c_str(),
                   big_mappings(p.pid()).c_str());
    // Cross-check with a dump: the peers' routes (main table, proto boot) are all there.
    std::string routes;
    run_command({"sh", "-c", "ip route show proto boot | grep -c '^10\\.'"}, &routes, host.netns);
    if (std::stoul(routes) < peers)
      std::fprintf(stderr, "%s: dump shows %s routes, expected %zu\n", name.c_str(), routes.c_str(),
                   peers);
    results.push_back(res);
    std::fprintf(stderr,
                 "%s run %d: start->all %.0f ms, subnet.env->all %.0f ms, RSS %.1f MB (anon %.1f, "
                 "peak %.1f), agent CPU user %.0f ms sys %.0f ms\n",
                 name.c_str(), r + 1, res.start_ms, res.env_ms, res.rss_kb / 1024.0,
                 res.anon_kb / 1024.0, res.peak_kb / 1024.0, res.user_ms, res.sys_ms);

    auto own = own_subnet(env_file);
    if (r == runs - 1 && events > 0) {
      std::unique_ptr<PeerNs::Enter> in;
      if (store.is_etcd()) in = std::make_unique<PeerNs::Enter>(lab.hub());
      auto writer = open_lab_store(store);
      std::vector<double> e2e;
      size_t written = 0;
      for (size_t i = peers; written < events && i < kMaxPeers; ++i) {
        Lease l = peer_lease(i, type);
        if (own && l.subnet == *own) continue;
        Lease created;
        auto tw = SteadyClock::now();
        Status s = writer->create_lease(l, std::chrono::hours(24), &created);
        if (!s.ok()) {
          std::fprintf(stderr, "%s: event lease %zu: %s\n", name.c_str(), i, s.message.c_str());
          break;
        }
        auto seen = kw.wait_all(i, i + 1, kinds, 10s);
        if (!seen) {
          std::fprintf(stderr, "%s: event %zu never reached the kernel\n", name.c_str(), i);
          break;
        }
        e2e.push_back(ms_between(tw, *seen));
        ++written;
      }
      std::this_thread::sleep_for(200ms);
      auto agent = applied_ms(read_file(log));
      std::printf(
          "%-11s one new peer x%zu: agent time (watch answer -> last ack) p50 %.2f ms  p99 %.2f ms "
          " "
          "max %.2f ms  (%zu measured); store write -> route seen p50 %.1f ms  p99 %.1f ms\n",
          name.c_str(), written, percentile(agent, 0.5), percentile(agent, 0.99),
          percentile(agent, 1.0), agent.size(), percentile(e2e, 0.5), percentile(e2e, 0.99));
      // The agent's idle figures after the events, for the record.
      std::printf("%-11s RSS after the events %.1f MB (anon %.1f MB)\n", name.c_str(),
                  status_kb(p.pid(), "VmRSS") / 1024.0, status_kb(p.pid(), "RssAnon") / 1024.0);
      for (size_t i = peers; i < peers + written + 1 && i < kMaxPeers; ++i)
        writer->delete_lease(peer_lease(i, type).subnet);
    }
    p.signal(SIGTERM);
    p.wait(5s);
    if (own) {
      std::unique_ptr<PeerNs::Enter> in;
      if (store.is_etcd()) in = std::make_unique<PeerNs::Enter>(lab.hub());
      open_lab_store(store)->delete_lease(*own);
    }
  }
  std::vector<double> start, env, rss, anon, peak, user, sys;
  for (const auto& r : results) {
    user.push_back(r.user_ms);
    sys.push_back(r.sys_ms);
    start.push_back(r.start_ms);
    env.push_back(r.env_ms);
    rss.push_back(r.rss_kb / 1024.0);
    anon.push_back(r.anon_kb / 1024.0);
    peak.push_back(r.peak_kb / 1024.0);
  }
  std::printf(
      "%-11s %zu peers: start -> all in kernel median %.0f ms (min %.0f, max %.0f); subnet.env -> "
      "all "
      "%.0f ms; RSS after sync %.1f MB (anon %.1f MB, peak %.1f MB); agent CPU user %.0f ms, sys "
      "%.0f ms  "
      "(runs=%zu)\n",
      name.c_str(), peers, percentile(start, 0.5), percentile(start, 0), percentile(start, 1),
      percentile(env, 0.5), percentile(rss, 0.5), percentile(anon, 0.5), percentile(peak, 0.5),
      percentile(user, 0.5), percentile(sys, 0.5), results.size());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  size_t peers = 10000, events = 1000;
  int runs = 3;
  std::vector<std::string> stores{"sqlite", "etcd"}, backends{"vxlan", "host-gw"};
  for (int i = 1; i < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--smaps") {
      smaps = true;
      --i;
      continue;
    }
    std::string v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--peers") peers = std::stoul(v);
    else if (a == "--runs") runs = std::stoi(v);
    else if (a == "--events") events = std::stoul(v);
    else if (a == "--stores") stores = split_list(v);
    else if (a == "--backends") backends = split_list(v);
    else {
      std::fprintf(stderr,
                   "agent_scale_bench: unknown option %s (valid: --peers --runs --events "
                   "--stores --backends --smaps)\n",
                   a.c_str());
      return 2;
    }
  }
  if (peers + events >= kMaxPeers) {
    std::fprintf(stderr, "agent_scale_bench: --peers + --events must stay below %zu\n", kMaxPeers);
    return 2;
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "agent_scale_bench: needs root (network namespaces)\n");
    return 1;
  }
  cleanup_stale_labs();
  char tmpl[] = "/run/flannel-scale-bench-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  for (const auto& s : stores) {
    LabStore::Kind kind = s == "etcd" ? LabStore::Kind::kEtcd : LabStore::Kind::kSqlite;
    for (const auto& b : backends) {
      try {
        bench(kind, b, peers, runs, events, dir);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s %s: %s\n", s.c_str(), b.c_str(), e.what());
      }
    }
  }
  if (getenv("AGENT_SCALE_BENCH_KEEP")) std::fprintf(stderr, "kept %s\n", dir.c_str());
  else std::filesystem::remove_all(dir);
  return 0;
}
