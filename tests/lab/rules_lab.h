// Shared by the rules lab tests (rules_*_labtest.cc, issue 20): the two modes, the network
// config, the agent's /readyz and /metrics, iptables-save and `nft -j` readers, and the nftables
// rules expected, written out independently of backends/rules/nft_rules.h.
#pragma once

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
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include "backends/rules/iptables.h"
#include "core/ip.h"
#include "tests/lab/overlay_lab.h"
#include "tests/lab/rule_lines.h"
#include "tests/support/lab.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace flannel::testing {

using Strings = std::vector<std::string>;
using Clock = std::chrono::steady_clock;

enum class Mode { kIptables, kNftables };

inline const char* mode_label(Mode m) { return m == Mode::kIptables ? "iptables" : "nftables"; }
inline Mode other(Mode m) { return m == Mode::kIptables ? Mode::kNftables : Mode::kIptables; }
// So gtest names the parameter instead of printing its bytes.
inline void PrintTo(Mode m, std::ostream* os) { *os << mode_label(m); }

constexpr int kHealthzPort = 8471;  // in each lab host's own namespace
const IP4Net kNet4 = IP4Net::parse("10.5.0.0/16");
const IP6Net kNet6 = IP6Net::parse("fd10:5::/48");
const char* const kHub4 = "10.250.0.254";
const char* const kHub6 = "fd00:250::fe";

// The network config of a lab: IPv4 only or dual stack, host-gw, in `mode`.
inline std::string config(Mode mode, bool dual) {
  std::string c = R"({"Network":"10.5.0.0/16",)";
  if (dual) c += R"("EnableIPv6":true,"IPv6Network":"fd10:5::/48",)";
  if (mode == Mode::kNftables) c += R"("EnableNFTables":true,)";
  return c + R"("Backend":{"Type":"host-gw"}})";
}

inline bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

inline std::string join(const Strings& v, const char* sep = "\n") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

inline long long ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

#define SKIP_UNLESS_ROOT() \
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, rules)"

// ---- The agent's HTTP endpoints ------------------------------------------------------------

// GET http://127.0.0.1:<kHealthzPort><path> inside host i's namespace; the status (0 = no
// answer) and the body.
inline int http_get(const OverlayLab& lab, int i, const std::string& path,
                    std::string* body = nullptr) {
  std::string out;
  run_command({"curl", "-s", "-m", "2", "-o", "/dev/stderr", "-w", "%{http_code}",
               "http://127.0.0.1:" + std::to_string(kHealthzPort) + path},
              &out, lab.host(i).netns);
  if (out.size() < 3) return 0;
  if (body) *body = out.substr(0, out.size() - 3);
  return std::atoi(out.substr(out.size() - 3).c_str());
}

inline bool wait_ready(const OverlayLab& lab, int i, std::chrono::milliseconds timeout = 15s) {
  return wait_until([&] { return http_get(lab, i, "/readyz") == 200; }, timeout);
}

// The value of flannel_rule_repairs_total{mode=..,family=..} (labels in any order); nullopt if
// the series is not in the text.
inline std::optional<double> repairs(const std::string& metrics, Mode mode,
                                     const std::string& family) {
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

inline double repairs_now(const OverlayLab& lab, int i, Mode mode, const std::string& family) {
  std::string body;
  if (http_get(lab, i, "/metrics", &body) != 200) return -1;
  return repairs(body, mode, family).value_or(0);
}

// ---- iptables ------------------------------------------------------------------------------

// The "-A ..." lines of `<save> [-t table]` in `netns` (save: iptables-save, iptables-legacy-save,
// ip6tables-nft-save, ...; table "" = every table).
inline Strings saved(const std::string& netns, const std::string& save,
                     const std::string& table = "") {
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
inline Strings flannel_iptables_lines(const std::string& netns) {
  Strings found;
  for (const char* save :
       {"iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save", "ip6tables-nft-save"})
    for (const auto& l : saved(netns, save))
      if (contains(l, "10.5.") || contains(l, "fd10:5:"))
        found.push_back(std::string(save) + ": " + l);
  return found;
}

inline Iptables iptables_in(const std::string& netns, const char* prog) {
  return Iptables({"ip", "netns", "exec", netns, prog});
}

// ---- nftables ------------------------------------------------------------------------------

// One expression of `nft -j` output, written the way `nft list` prints it.
inline std::string nft_text(const nlohmann::json& e) {
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
inline std::string nft_rule_text(const nlohmann::json& exprs) {
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

inline std::optional<NftTable> nft_table(const std::string& netns, const std::string& family,
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

inline std::string nft_tables(const std::string& netns) {
  std::string out;
  run_command({"nft", "list", "tables"}, &out, netns);
  return out;
}

// Whether the kernel of `netns` takes `masquerade fully-random` (a dry run, `nft -c`, of a
// scratch table: nothing is committed).
inline bool nft_fully_random_ok(const std::string& netns) {
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

inline NftExpected nft_expected(const std::string& fam, const std::string& c, const std::string& p,
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

}  // namespace flannel::testing
