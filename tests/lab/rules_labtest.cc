// Masquerade and forward rules with real flanneld processes (issue 20, "rules that never leave a
// gap"), in both modes: iptables (v0.11's rules in nat POSTROUTING and filter FORWARD,
// backends/rules/iptables.h) and nftables ("EnableNFTables": true or -enable-nftables: tables
// ip flannel-ipv4 / ip6 flannel-ipv6, chains postrtg and forward). Every rule, route, socket and
// capture lives in namespaces the Lab makes; nothing touches the root namespace.
//
//   Rules/RulesNoGapLab.*     a pod streams UDP to the hub (10.250.0.254) while its host's agent
//                             is restarted 20 times (kill -9 and SIGTERM in turn); tcpdump on the
//                             hub must see no packet with the pod's source address, and no loss
//                             beyond 1%. Each datagram leaves from a source port of its own, so
//                             each is a new conntrack flow and gets a fresh NAT decision from the
//                             rules in force at that moment: a ping stream (one ICMP id, one flow)
//                             keeps the NAT of its first packet and would ride over any gap. A
//                             positive control first (agent stopped, masquerade removed by hand)
//                             proves the capture does see a pod-sourced packet. Sensitivity: a
//                             flush + restore of the chain at each restart (a few ms, as current
//                             flannel's ClearChain + restore) let 67 (iptables) and 171
//                             (nftables) of ~3000 datagrams out unmasqueraded.
//   Rules/RulesModesLab.*     dual stack, per mode: the exact rule set of both families; pod ->
//                             hub masqueraded, pod -> pod not; a rule deleted, a chain flushed
//                             (and in nftables mode the table deleted) by hand are repaired by the
//                             next check and counted in flannel_rule_repairs_total{mode,family};
//                             restarting in the other mode leaves none of the first mode's rules.
//                             The nftables rules expected are written out here, independently of
//                             backends/rules/nft_rules.h: current flannel's iptables-mode rules
//                             with the kube-proxy mark matched under a mask.
//   RulesFlavourLab.*         -iptables-mode=auto follows the iptables flavour (legacy or nft)
//                             the host already holds rules in; =legacy / =nft override it; the
//                             switch to nftables mode removes our iptables rules from whichever
//                             flavour holds them.
//   RulesBlackholeLab.*       -ip-blackhole-route keeps a blackhole route to our lease subnet
//                             (both families, both modes); one deleted by hand comes back.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/rules/iptables.h"
#include "core/ip.h"
#include "tests/lab/overlay_lab.h"
#include "tests/lab/rule_lines.h"
#include "tests/support/lab.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using Strings = std::vector<std::string>;
using Clock = std::chrono::steady_clock;

enum class Mode { kIptables, kNftables };

const char* mode_label(Mode m) { return m == Mode::kIptables ? "iptables" : "nftables"; }
Mode other(Mode m) { return m == Mode::kIptables ? Mode::kNftables : Mode::kIptables; }
// So gtest names the parameter instead of printing its bytes.
void PrintTo(Mode m, std::ostream* os) { *os << mode_label(m); }

constexpr int kHealthzPort = 8471;  // in each lab host's own namespace
const IP4Net kNet4 = IP4Net::parse("10.5.0.0/16");
const IP6Net kNet6 = IP6Net::parse("fd10:5::/48");
const char* const kHub4 = "10.250.0.254";
const char* const kHub6 = "fd00:250::fe";

// The network config of a lab: IPv4 only or dual stack, host-gw, in `mode`.
std::string config(Mode mode, bool dual) {
  std::string c = R"({"Network":"10.5.0.0/16",)";
  if (dual) c += R"("EnableIPv6":true,"IPv6Network":"fd10:5::/48",)";
  if (mode == Mode::kNftables) c += R"("EnableNFTables":true,)";
  return c + R"("Backend":{"Type":"host-gw"}})";
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

std::string join(const Strings& v, const char* sep = "\n") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

long long ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

#define SKIP_UNLESS_ROOT() \
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, rules)"

// ---- The agent's HTTP endpoints ------------------------------------------------------------

// GET http://127.0.0.1:<kHealthzPort><path> inside host i's namespace; the status (0 = no
// answer) and the body.
int http_get(const OverlayLab& lab, int i, const std::string& path, std::string* body = nullptr) {
  std::string out;
  run_command({"curl", "-s", "-m", "2", "-o", "/dev/stderr", "-w", "%{http_code}",
               "http://127.0.0.1:" + std::to_string(kHealthzPort) + path},
              &out, lab.host(i).netns);
  if (out.size() < 3) return 0;
  if (body) *body = out.substr(0, out.size() - 3);
  return std::atoi(out.substr(out.size() - 3).c_str());
}

bool wait_ready(const OverlayLab& lab, int i, std::chrono::milliseconds timeout = 15s) {
  return wait_until([&] { return http_get(lab, i, "/readyz") == 200; }, timeout);
}

// The value of flannel_rule_repairs_total{mode=..,family=..} (labels in any order); nullopt if
// the series is not in the text.
std::optional<double> repairs(const std::string& metrics, Mode mode, const std::string& family) {
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("flannel_rule_repairs_total{", 0) != 0) continue;
    const size_t close = line.find('}');
    if (close == std::string::npos) continue;
    const std::string labels = line.substr(0, close);
    if (!contains(labels, std::string("mode=\"") + mode_label(mode) + "\"") ||
        !contains(labels, "family=\"" + family + "\""))
      continue;
    return std::stod(line.substr(close + 1));
  }
  return std::nullopt;
}

double repairs_now(const OverlayLab& lab, int i, Mode mode, const std::string& family) {
  std::string body;
  if (http_get(lab, i, "/metrics", &body) != 200) return -1;
  return repairs(body, mode, family).value_or(0);
}

// ---- iptables ------------------------------------------------------------------------------

// The "-A ..." lines of `<save> [-t table]` in `netns` (save: iptables-save, iptables-legacy-save,
// ip6tables-nft-save, ...; table "" = every table).
Strings saved(const std::string& netns, const std::string& save, const std::string& table = "") {
  Strings argv{save};
  if (!table.empty()) argv.insert(argv.end(), {"-t", table});
  std::string out;
  run_command(argv, &out, netns);
  Strings lines;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);)
    if (l.rfind("-A ", 0) == 0) lines.push_back(l);
  return lines;
}

// The lines of every iptables flavour and family that name one of our networks.
Strings flannel_iptables_lines(const std::string& netns) {
  Strings found;
  for (const char* save :
       {"iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save", "ip6tables-nft-save"})
    for (const auto& l : saved(netns, save))
      if (contains(l, "10.5.") || contains(l, "fd10:5:"))
        found.push_back(std::string(save) + ": " + l);
  return found;
}

Iptables iptables_in(const std::string& netns, const char* prog) {
  return Iptables({"ip", "netns", "exec", netns, prog});
}

// ---- nftables ------------------------------------------------------------------------------

// One expression of `nft -j` output, written the way `nft list` prints it.
std::string nft_text(const nlohmann::json& e) {
  if (e.is_number_integer()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%08llx", static_cast<unsigned long long>(e.get<int64_t>()));
    return buf;
  }
  if (e.is_string()) return e.get<std::string>();
  if (e.contains("payload"))
    return e["payload"].value("protocol", "?") + " " + e["payload"].value("field", "?");
  if (e.contains("meta")) return "meta " + e["meta"].value("key", "?");
  if (e.contains("prefix"))
    return e["prefix"]["addr"].get<std::string>() + "/" +
           std::to_string(e["prefix"]["len"].get<int>());
  if (e.contains("&")) return nft_text(e["&"][0]) + " & " + nft_text(e["&"][1]);
  return e.dump();
}

// A rule's statements as one line: "ip saddr 10.5.0.0/16 ip daddr != 224.0.0.0/4 masquerade
// fully-random". Counters are written without their values.
std::string nft_rule_text(const nlohmann::json& exprs) {
  Strings words;
  for (const auto& x : exprs) {
    if (x.contains("match")) {
      const auto& m = x["match"];
      const std::string op = m.value("op", "==");
      const bool masked = m["left"].is_object() && m["left"].contains("&");
      std::string s = nft_text(m["left"]) + " ";
      if (op != "==" || masked) s += op + " ";
      words.push_back(s + nft_text(m["right"]));
    } else if (x.contains("masquerade")) {
      std::string s = "masquerade";
      const auto& mq = x["masquerade"];
      if (mq.is_object() && mq.contains("flags")) {
        if (mq["flags"].is_string()) s += " " + mq["flags"].get<std::string>();
        for (const auto& f : mq["flags"].is_array() ? mq["flags"] : nlohmann::json::array())
          s += " " + f.get<std::string>();
      }
      words.push_back(s);
    } else if (x.contains("counter")) {
      words.push_back("counter");
    } else if (x.is_object() && x.size() == 1) {
      words.push_back(x.begin().key());  // return, accept, drop, ...
    } else {
      words.push_back(x.dump());
    }
  }
  return join(words, " ");
}

// A table as `nft -j list table <family> <name>` shows it, parsed.
struct NftTable {
  // chain name -> "type nat hook postrouting prio 100 policy accept"
  std::map<std::string, std::string> chains;
  // chain name -> its rules, in order
  std::map<std::string, Strings> rules;
  // chain name -> the handle of each rule, in order
  std::map<std::string, std::vector<int64_t>> handles;
  std::string json;  // nft's output, for messages
};

std::optional<NftTable> nft_table(const std::string& netns, const std::string& family,
                                  const std::string& name) {
  std::string out;
  if (run_command({"nft", "-j", "list", "table", family, name}, &out, netns) != 0)
    return std::nullopt;
  NftTable t;
  t.json = out;
  const nlohmann::json doc = nlohmann::json::parse(out);
  for (const auto& item : doc.at("nftables")) {
    if (item.contains("chain")) {
      const auto& c = item["chain"];
      t.chains[c["name"]] = "type " + c.value("type", "-") + " hook " + c.value("hook", "-") +
                            " prio " + std::to_string(c.value("prio", -1)) + " policy " +
                            c.value("policy", "-");
      t.rules[c["name"]];
    } else if (item.contains("rule")) {
      const auto& r = item["rule"];
      t.rules[r["chain"]].push_back(nft_rule_text(r["expr"]));
      t.handles[r["chain"]].push_back(r["handle"].get<int64_t>());
    }
  }
  return t;
}

std::string nft_tables(const std::string& netns) {
  std::string out;
  run_command({"nft", "list", "tables"}, &out, netns);
  return out;
}

// Whether the kernel of `netns` takes `masquerade fully-random` (a dry run, `nft -c`, of a
// scratch table: nothing is committed).
bool nft_fully_random_ok(const std::string& netns) {
  return run_command({"nft", "-c",
                      "add table ip lab-probe; add chain ip lab-probe c { type nat hook "
                      "postrouting priority srcnat; }; add rule ip lab-probe c masquerade "
                      "fully-random"},
                     nullptr, netns) == 0;
}

// What the nftables mode must hold in a table: its two chains and their rules, current
// flannel's iptables-mode rules written for nft (the kube-proxy mark matched with a mask, like
// iptables' 0x4000/0x4000). `fam` is "ip" or "ip6", C the network, P our lease subnet, M the
// multicast range.
struct NftExpected {
  std::map<std::string, std::string> chains;
  std::map<std::string, Strings> rules;
};

NftExpected nft_expected(const std::string& fam, const std::string& c, const std::string& p,
                         const std::string& m, bool fully_random) {
  const std::string masq = fully_random ? " masquerade fully-random" : " masquerade";
  NftExpected e;
  e.chains["postrtg"] = "type nat hook postrouting prio 100 policy accept";
  e.chains["forward"] = "type filter hook forward prio 0 policy accept";
  e.rules["postrtg"] = {
      "meta mark & 0x00004000 == 0x00004000 return",
      fam + " saddr " + p + " " + fam + " daddr " + c + " return",
      fam + " saddr " + c + " " + fam + " daddr " + p + " return",
      fam + " saddr != " + c + " " + fam + " daddr " + p + " return",
      fam + " saddr " + c + " " + fam + " daddr != " + m + masq,
      fam + " saddr != " + c + " " + fam + " daddr " + c + masq,
  };
  e.rules["forward"] = {fam + " saddr " + c + " accept", fam + " daddr " + c + " accept"};
  return e;
}

// ---- UDP probes ----------------------------------------------------------------------------

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
};

SockAddr sockaddr_of(const std::string& addr, int port) {
  SockAddr a;
  if (addr.find(':') != std::string::npos) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET6, addr.c_str(), &s6->sin6_addr) != 1)
      throw std::runtime_error("bad address " + addr);
    a.len = sizeof(sockaddr_in6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&a.ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, addr.c_str(), &s4->sin_addr) != 1)
      throw std::runtime_error("bad address " + addr);
    a.len = sizeof(sockaddr_in);
  }
  return a;
}

std::string addr_str(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
  else ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  return buf;
}

// A UDP socket bound to addr:port (port 0 = any), opened in the current thread's namespace (a
// socket stays in the namespace it was made in).
class UdpSocket {
 public:
  UdpSocket(const std::string& addr, int port) {
    const SockAddr a = sockaddr_of(addr, port);
    fd_ = ::socket(a.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&a.ss), a.len) != 0) {
      const std::string err = std::strerror(errno);
      ::close(fd_);
      throw std::runtime_error("bind " + addr + ":" + std::to_string(port) + ": " + err);
    }
  }
  // The same, made inside `netns`.
  static UdpSocket in(const std::string& netns, const std::string& addr, int port) {
    EnterNetns enter(netns);
    return UdpSocket(addr, port);
  }
  UdpSocket(UdpSocket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  UdpSocket& operator=(UdpSocket&&) = delete;
  ~UdpSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool send_to(const std::string& addr, int port, const std::string& payload) const {
    const SockAddr a = sockaddr_of(addr, port);
    return ::sendto(fd_, payload.data(), payload.size(), 0,
                    reinterpret_cast<const sockaddr*>(&a.ss),
                    a.len) == static_cast<ssize_t>(payload.size());
  }
  // The source address of the next datagram within `timeout` ("" if none came).
  std::string receive_from(std::chrono::milliseconds timeout) const {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return "";
    char buf[256];
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    if (::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len) < 0)
      return "";
    return addr_str(from);
  }

 private:
  int fd_ = -1;
};

// Sends UDP datagrams from `from_addr` in namespace `from_ns` (a fresh socket, so a fresh flow,
// each time) to `to_addr` in `to_ns`, until one arrives; returns the source address the receiver
// saw ("" if none arrived within 5 s).
std::string source_seen(const std::string& from_ns, const std::string& from_addr,
                        const std::string& to_ns, const std::string& to_addr) {
  constexpr int kPort = 9997;
  UdpSocket sink = UdpSocket::in(to_ns, to_addr, kPort);
  std::string seen;
  wait_until(
      [&] {
        UdpSocket src = UdpSocket::in(from_ns, from_addr, 0);
        src.send_to(to_addr, kPort, "probe");
        seen = sink.receive_from(200ms);
        return !seen.empty();
      },
      5s);
  return seen;
}

// ---- tcpdump on the hub --------------------------------------------------------------------

// One captured datagram: its source address and destination port, as `tcpdump -n -r` prints
// "12:00:00.000000 IP 10.250.0.1.20005 > 10.250.0.254.9999: UDP, length 8".
struct Captured {
  std::string src;
  int dport = 0;
};

class HubCapture {
 public:
  HubCapture(OverlayLab& lab, const std::string& filter)
      : file_(lab.dir() + "/hub.pcap"),
        tcpdump_(Process::Spec{
            {"tcpdump", "-n", "-i", "br0", "-U", "--immediate-mode", "-w", file_, filter},
            {},
            {},
            lab.lab().hub(),
            lab.dir() + "/tcpdump.log"}) {
    if (!wait_until([&] { return contains(tcpdump_.output(), "listening on"); }, 10s))
      throw std::runtime_error("tcpdump did not start: " + tcpdump_.output());
  }
  // What the capture file holds so far (tcpdump keeps writing).
  std::vector<Captured> packets() const {
    std::string out;
    run_command({"tcpdump", "-n", "-r", file_}, &out);
    std::vector<Captured> got;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      std::string time, ip, src, gt, dst;
      if (!(words >> time >> ip >> src >> gt >> dst) || (ip != "IP" && ip != "IP6") || gt != ">")
        continue;
      Captured c;
      c.src = src.substr(0, src.rfind('.'));
      c.dport = std::atoi(dst.substr(dst.rfind('.') + 1).c_str());
      got.push_back(c);
    }
    return got;
  }
  // SIGINT, then waits for tcpdump to close the file.
  void stop() {
    tcpdump_.signal(SIGINT);
    tcpdump_.wait(5s);
  }
  std::string log() const { return tcpdump_.output(); }

 private:
  std::string file_;
  Process tcpdump_;
};

// ---- 1. No gap across 20 restarts ------------------------------------------------------------

class RulesNoGapLab : public ::testing::TestWithParam<Mode> {};

TEST_P(RulesNoGapLab, PodToHubStaysMasqueradedThrough20Restarts) {
  const Mode mode = GetParam();
  SKIP_UNLESS_ROOT();
  OverlayLab lab(mode == Mode::kIptables ? "rgi" : "rgn", config(mode, false), 1);
  lab.customize_start = [](int, Process::Spec& spec) {
    for (const auto& f :
         Strings{"-ip-masq", "-iptables-resync=1", "-healthz-port=" + std::to_string(kHealthzPort)})
      spec.argv.push_back(f);
  };
  lab.start(0);
  const IP4Net lease = lab.wait_subnet(0).network();
  lab.add_pods();
  ASSERT_TRUE(wait_ready(lab, 0)) << read_file(lab.log_file(0));
  const std::string pod = lab.pod(0).addr.str();
  const std::string host = lab.host(0).addr.str();
  ASSERT_EQ(source_seen(lab.pod(0).netns, pod, lab.lab().hub(), kHub4), host)
      << "pod -> hub before the test\n"
      << lab.dump();

  constexpr int kStreamPort = 9999, kControlPort = 9998;
  UdpSocket hub_sink = UdpSocket::in(lab.lab().hub(), kHub4, kStreamPort);  // no ICMP unreachable
  HubCapture capture(lab, "udp and dst host " + std::string(kHub4) + " and (dst port " +
                              std::to_string(kStreamPort) + " or dst port " +
                              std::to_string(kControlPort) + ")");

  // Positive control: with the agent stopped and its masquerade removed by hand, pod datagrams
  // reach the hub with the pod's address, and the capture must say so.
  ASSERT_EQ(lab.stop(0), 0);
  std::string out;
  if (mode == Mode::kIptables)
    ASSERT_EQ(run_command({"iptables", "-t", "nat", "-F", "POSTROUTING"}, &out, lab.host(0).netns),
              0)
        << out;
  else
    ASSERT_EQ(run_command({"nft", "flush", "chain", "ip", "flannel-ipv4", "postrtg"}, &out,
                          lab.host(0).netns),
              0)
        << out;
  constexpr int kControlPackets = 20;
  {
    EnterNetns in_pod(lab.pod(0).netns);
    for (int k = 0; k < kControlPackets; ++k)
      UdpSocket(pod, 0).send_to(kHub4, kControlPort, "control");
  }
  lab.start(0);
  ASSERT_TRUE(wait_ready(lab, 0)) << read_file(lab.log_file(0));

  // The stream: 500 datagrams a second, each from its own source port (10000, 10001, ...).
  std::atomic<bool> stop_stream{false};
  std::atomic<int> sent{0}, send_errors{0};
  std::thread sender([&] {
    EnterNetns in_pod(lab.pod(0).netns);
    auto next = Clock::now();
    for (int seq = 0; !stop_stream; ++seq) {
      try {
        if (UdpSocket(pod, 10000 + seq % 50000).send_to(kHub4, kStreamPort, std::to_string(seq)))
          ++sent;
        else ++send_errors;
      } catch (const std::exception&) { ++send_errors; }
      // Pacing of the stream (its rate), not synchronisation; a sender that fell behind does
      // not burst to catch up.
      next += 2ms;
      if (Clock::now() > next + 50ms) next = Clock::now();
      std::this_thread::sleep_until(next);
    }
  });
  struct JoinSender {
    std::atomic<bool>& stop;
    std::thread& t;
    ~JoinSender() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } join_sender{stop_stream, sender};
  ASSERT_TRUE(wait_until([&] { return sent >= 100; }, 5s)) << "the stream does not flow";

  constexpr int kRestarts = 20;
  const auto t0 = Clock::now();
  long long slowest_ready_ms = 0;
  for (int r = 0; r < kRestarts; ++r) {
    if (r % 2 == 0) {
      lab.daemon(0)->signal(SIGKILL);
      ASSERT_TRUE(lab.daemon(0)->wait(5s)) << "restart " << r + 1 << ": not dead after kill -9";
    } else {
      ASSERT_EQ(lab.stop(0), 0) << "restart " << r + 1 << ": SIGTERM\n"
                                << read_file(lab.log_file(0));
    }
    const auto t = Clock::now();
    lab.start(0);
    ASSERT_TRUE(wait_ready(lab, 0)) << "restart " << r + 1 << "\n" << read_file(lab.log_file(0));
    slowest_ready_ms = std::max(slowest_ready_ms, ms_since(t));
    ASSERT_EQ(lab.wait_subnet(0).network(), lease) << "restart " << r + 1 << " moved the lease";
  }
  const long long restarts_ms = ms_since(t0);
  const int sent_at_end = sent;
  ASSERT_TRUE(wait_until([&] { return sent >= sent_at_end + 100; }, 5s));
  stop_stream = true;
  sender.join();

  // Let the capture take in the last datagrams (all of them, unless some were lost).
  const int total = sent + kControlPackets;
  wait_until([&] { return static_cast<int>(capture.packets().size()) >= total; }, 3s);
  capture.stop();
  int stream_seen = 0, from_pod = 0, from_host = 0, from_other = 0, control_from_pod = 0;
  for (const auto& c : capture.packets()) {
    if (c.dport == kControlPort) {
      control_from_pod += c.src == pod;
      continue;
    }
    ++stream_seen;
    if (c.src == pod) ++from_pod;
    else if (c.src == host) ++from_host;
    else ++from_other;
  }
  const int lost = sent - stream_seen;
  std::printf(
      "no-gap %s: %d restarts (kill -9 / SIGTERM in turn) in %lld ms, slowest to ready %lld ms; "
      "sent %d (send errors %d), seen on hub %d: masqueraded %d, unmasqueraded %d, other %d; "
      "lost %d (%.2f%%); control: %d/%d unmasqueraded seen\n",
      mode_label(mode), kRestarts, restarts_ms, slowest_ready_ms, sent.load(), send_errors.load(),
      stream_seen, from_host, from_pod, from_other, lost, sent ? 100.0 * lost / sent : 0.0,
      control_from_pod, kControlPackets);
  EXPECT_GT(control_from_pod, 0)
      << "the capture never showed the pod's address, even with the masquerade removed:\n"
      << capture.log();
  EXPECT_EQ(from_pod, 0) << "datagrams left host 1 with the pod's address: a gap in the rules";
  EXPECT_EQ(from_other, 0);
  EXPECT_EQ(send_errors, 0);
  // The bound: a lab veth and bridge lose nothing by themselves; 1% leaves room for a stray drop.
  EXPECT_LE(lost, sent / 100) << "sent " << sent << ", seen " << stream_seen;
}

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

INSTANTIATE_TEST_SUITE_P(Rules, RulesNoGapLab, ::testing::Values(Mode::kIptables, Mode::kNftables),
                         [](const ::testing::TestParamInfo<Mode>& info) {
                           return info.param == Mode::kIptables ? "Iptables" : "Nftables";
                         });
INSTANTIATE_TEST_SUITE_P(Rules, RulesModesLab, ::testing::Values(Mode::kIptables, Mode::kNftables),
                         [](const ::testing::TestParamInfo<Mode>& info) {
                           return info.param == Mode::kIptables ? "Iptables" : "Nftables";
                         });

// ---- 3. iptables flavour ---------------------------------------------------------------------

TEST(RulesFlavourLab, AutoFollowsTheHostsFlavourAndExplicitModesOverrideIt) {
  SKIP_UNLESS_ROOT();
  // Host 1: 3 foreign rules in iptables-legacy, -iptables-mode left at its default (auto).
  // Host 2: 3 in iptables-nft, -iptables-mode=auto. Host 3: legacy rules, -iptables-mode=nft.
  // Host 4: nft rules, -iptables-mode=legacy.
  struct Host {
    const char* foreign;  // the flavour holding someone else's rules
    const char* flag;     // "" = default
    const char* want;     // where ours must be
  };
  const std::vector<Host> hosts = {{"legacy", "", "legacy"},
                                   {"nft", "-iptables-mode=auto", "nft"},
                                   {"legacy", "-iptables-mode=nft", "nft"},
                                   {"nft", "-iptables-mode=legacy", "legacy"}};
  OverlayLab lab("rf", config(Mode::kIptables, false), static_cast<int>(hosts.size()));
  for (size_t i = 0; i < hosts.size(); ++i) {
    const std::string prog = std::string("iptables-") + hosts[i].foreign;
    const std::string ns = lab.host(static_cast<int>(i)).netns;
    std::string out;
    ASSERT_EQ(run_command({prog, "-N", "LAB-OTHERS"}, &out, ns), 0) << out;
    for (const char* src : {"192.0.2.1", "192.0.2.2", "192.0.2.3"})
      ASSERT_EQ(run_command({prog, "-A", "LAB-OTHERS", "-s", src, "-j", "ACCEPT"}, &out, ns), 0)
          << out;
  }
  lab.customize_start = [&](int i, Process::Spec& spec) {
    spec.argv.push_back("-ip-masq");
    if (*hosts[i].flag) spec.argv.push_back(hosts[i].flag);
  };
  lab.start_all();
  for (size_t i = 0; i < hosts.size(); ++i) {
    const int h = static_cast<int>(i);
    SCOPED_TRACE("host " + std::to_string(h + 1) + ": foreign rules in " + hosts[i].foreign + ", " +
                 (*hosts[i].flag ? hosts[i].flag : "default mode"));
    const IP4Net lease = lab.wait_subnet(h).network();  // rules are in before subnet.env
    const std::string ns = lab.host(h).netns;
    const std::string want = std::string("iptables-") + hosts[i].want + "-save";
    const std::string other = std::string("iptables-") +
                              (std::string(hosts[i].want) == "nft" ? "legacy" : "nft") + "-save";
    Strings nat = saved(ns, want, "nat");
    Strings in_other = saved(ns, other, "nat");
    // Either --random-fully variant counts: the flavour is what is tested, not the probe.
    std::set<std::string> masq;
    for (const bool rf : {false, true})
      for (const auto& l : lines_of(masq_rules(kNet4, lease, rf))) masq.insert(l);
    int ours = 0, ours_elsewhere = 0;
    for (const auto& l : nat) ours += masq.count(l);
    for (const auto& l : in_other) ours_elsewhere += masq.count(l);
    EXPECT_EQ(ours, 4) << want << ":\n" << join(nat) << "\nlog:\n" << read_file(lab.log_file(h));
    EXPECT_EQ(ours_elsewhere, 0) << other << ":\n" << join(in_other);
    EXPECT_EQ(saved(ns, want, "filter").size(),
              (std::string(hosts[i].want) == hosts[i].foreign ? 3u : 0u) + 2u)
        << join(saved(ns, want, "filter"));
  }
}

TEST(RulesFlavourLab, NftablesModeRemovesOurIptablesRulesFromEitherFlavour) {
  SKIP_UNLESS_ROOT();
  // Our rules went to iptables-nft (-iptables-mode=nft) on a host whose other software uses
  // iptables-legacy (10 rules). The agent then restarts in nftables mode with the default
  // -iptables-mode=auto, which now picks legacy (10 rules against our 6): our iptables-nft rules
  // must go all the same, or the host masquerades in two places.
  OverlayLab lab("rc", config(Mode::kIptables, false), 1);
  const std::string ns = lab.host(0).netns;
  std::string out;
  ASSERT_EQ(run_command({"iptables-legacy", "-N", "LAB-OTHERS"}, &out, ns), 0) << out;
  for (int k = 1; k <= 10; ++k)
    ASSERT_EQ(run_command({"iptables-legacy", "-A", "LAB-OTHERS", "-s",
                           "192.0.2." + std::to_string(k), "-j", "ACCEPT"},
                          &out, ns),
              0)
        << out;
  bool nft_mode = false;
  lab.customize_start = [&](int, Process::Spec& spec) {
    for (const auto& f : Strings{"-ip-masq", "-healthz-port=" + std::to_string(kHealthzPort),
                                 nft_mode ? "-enable-nftables" : "-iptables-mode=nft"})
      spec.argv.push_back(f);
  };
  lab.start(0);
  lab.wait_subnet(0);
  ASSERT_TRUE(wait_ready(lab, 0)) << read_file(lab.log_file(0));
  ASSERT_EQ(saved(ns, "iptables-nft-save", "nat").size(), 4u)
      << join(saved(ns, "iptables-nft-save", "nat"));
  ASSERT_EQ(lab.stop(0), 0);
  nft_mode = true;
  lab.start(0);
  ASSERT_TRUE(wait_ready(lab, 0)) << read_file(lab.log_file(0));
  ASSERT_TRUE(nft_table(ns, "ip", "flannel-ipv4")) << read_file(lab.log_file(0));
  Strings left;
  EXPECT_TRUE(wait_until(
      [&] {
        left = flannel_iptables_lines(ns);
        return left.empty();
      },
      5s))
      << "our iptables rules outlived the switch to nftables mode:\n"
      << join(left) << "\nlog:\n"
      << read_file(lab.log_file(0));
}

// ---- 4. Blackhole route ----------------------------------------------------------------------

TEST(RulesBlackholeLab, OurLeaseIsBlackholedInBothModesAndRepaired) {
  SKIP_UNLESS_ROOT();
  // Host 1: iptables mode; host 2: nftables mode by flag; both -ip-blackhole-route. Host 3 runs
  // without the flag and must get none. No pods: no cni0 route to the lease (the case the route
  // is for: no bridge plugin).
  OverlayLab lab("rb", config(Mode::kIptables, true), 3);
  lab.customize_start = [](int i, Process::Spec& spec) {
    spec.argv.push_back("-iptables-resync=1");
    if (i < 2) spec.argv.push_back("-ip-blackhole-route");
    if (i == 1) spec.argv.push_back("-enable-nftables");
  };
  lab.start_all();
  for (int i = 0; i < 3; ++i) {
    lab.wait_subnet(i);
    ASSERT_TRUE(lab.lease6(i)) << read_file(lab.subnet_file(i));
  }
  auto holes = [&](int i, bool v6) {
    return lab.ip(i, {v6 ? "-6" : "-4", "route", "show", "type", "blackhole"});
  };
  // True if `ip route show type blackhole` of host i lists our lease subnet ("blackhole DST ...").
  auto has_hole = [&](int i, bool v6) {
    const std::string dst = v6 ? lab.lease6(i)->str() : lab.lease(i).str();
    std::istringstream in(holes(i, v6));
    for (std::string type, to; in >> type >> to; in.ignore(1 << 20, '\n'))
      if (type == "blackhole" && to == dst) return true;
    return false;
  };
  for (int i = 0; i < 2; ++i) {
    for (const bool v6 : {false, true}) {
      SCOPED_TRACE("host " + std::to_string(i + 1) + (v6 ? " IPv6" : " IPv4"));
      EXPECT_TRUE(wait_until([&] { return has_hole(i, v6); }, 5s)) << holes(i, v6) << "\n"
                                                                   << read_file(lab.log_file(i));
      const std::string dst = v6 ? lab.lease6(i)->str() : lab.lease(i).str();
      std::string out;
      ASSERT_EQ(run_command({"ip", v6 ? "-6" : "-4", "route", "del", "blackhole", dst}, &out,
                            lab.host(i).netns),
                0)
          << out;
      // Not checked absent here: the next check may already have put it back (seen: 110 ms).
      const auto t = Clock::now();
      EXPECT_TRUE(wait_until([&] { return has_hole(i, v6); }, 5s))
          << "not back within 5 s (resync 1 s)\n"
          << read_file(lab.log_file(i));
      std::printf("blackhole host %d %s: back %lld ms after deletion\n", i + 1, v6 ? "v6" : "v4",
                  ms_since(t));
    }
  }
  // Host 3 has had the same time to add one by mistake.
  EXPECT_EQ(holes(2, false), "");
  EXPECT_EQ(holes(2, true), "");
}

}  // namespace
}  // namespace flannel::testing
