// iptables: the ip-masq and FORWARD rules flannel v0.11 installs (facts §4), kept in place by a
// resync thread, without v0.11's weaknesses (facts §7.17):
//
//   v0.11                                        here
//   --random-fully from `iptables --version`     version >= 1.6.2 AND a probe the kernel side
//   only                                         accepts (random_fully_support())
//   one missing rule -> delete all, re-append    only the missing rule is inserted; the others
//   (a window with no MASQUERADE)                are never touched (RuleKeeper::ensure())
//   -A: an earlier DROP in FORWARD wins          -I at the top of the chain, in order
//   resync 0 = busy loop                         period < 1 s is rejected; stop() wakes at once
//   recycle when network && subnet changed       when either changed (recycle_old_masq())
//   rules are never removed                      remove(), set_rules(), recycle_old_forward()
//
// The rules themselves are byte-for-byte v0.11's, so a host can go back and forth between the
// two agents and each one recognises (-C) and recycles (-D) the other's rules.
//
// The iptables binary (Debian 12: iptables 1.8.9, nft backend) is run as a child process, argv
// only (no shell), always with --wait, in the network namespace of the calling process. Every
// failure throws IptablesError naming the command and quoting iptables' stderr.
//
// Pure functions (rule building, argv building, version and output parsing, insert planning)
// run no process and are testable without root.
//
// Thread safety: Iptables is immutable and may be used from any thread. RuleKeeper serialises
// its own operations with a mutex; its public methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "backends/backend.h"
#include "core/ip.h"
#include "core/thread_annotations.h"

namespace flannel {

class IptablesError : public BackendError {
 public:
  enum class Kind {
    kFailed,        // iptables ran and exited non-zero (message quotes its stderr)
    kNotInstalled,  // the binary is not on PATH, /usr/sbin or /sbin, or cannot be executed
    kTimeout,       // iptables did not finish in time (xtables lock held by someone else?)
  };
  IptablesError(const std::string& what, Kind kind) : BackendError(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// One rule: what follows `-t TABLE -A CHAIN` on an `iptables -S` line.
struct IptablesRule {
  std::string table;              // "nat", "filter"
  std::string chain;              // "POSTROUTING", "FORWARD"
  std::vector<std::string> spec;  // e.g. {"-s", "10.5.0.0/16", "-j", "ACCEPT"}

  // "-t filter FORWARD -s 10.5.0.0/16 -j ACCEPT", for messages.
  std::string str() const;
  bool operator==(const IptablesRule&) const = default;
};

// ---- Rule sets (pure) ------------------------------------------------------------------------

// The four nat POSTROUTING rules of `--ip-masq`, in v0.11's order (N = network, S = our lease
// subnet; both written in network form, so 10.5.34.1/24 gives 10.5.34.0/24):
//   1. -s N -d N -j RETURN                                 pod to pod: no NAT
//   2. -s N ! -d 224.0.0.0/4 -j MASQUERADE [--random-fully]  pod to outside: NAT
//   3. ! -s N -d S -j RETURN                                 outside to our pods: no NAT
//   4. ! -s N -d N -j MASQUERADE [--random-fully]            outside (host) to other pods: NAT
std::vector<IptablesRule> masq_rules(const IP4Net& network, const IP4Net& lease_subnet,
                                     bool random_fully);

// The two filter FORWARD rules of `--iptables-forward-rules`: -s N -j ACCEPT, -d N -j ACCEPT.
std::vector<IptablesRule> forward_rules(const IP4Net& network);

// Dual stack: the same sets for ip6tables (IPv6Network and our IPv6 subnet), with ff00::/8 in
// place of 224.0.0.0/4. They mirror this agent's IPv4 rules (v0.11's, in POSTROUTING and
// FORWARD, no comments); current flannel puts its v6 rules in its own FLANNEL-POSTRTG /
// FLANNEL-FWD chains with comments and a kube-proxy mark rule (facts §2.8).
std::vector<IptablesRule> masq_rules(const IP6Net& network, const IP6Net& lease_subnet,
                                     bool random_fully);
std::vector<IptablesRule> forward_rules(const IP6Net& network);

// ---- Building blocks (pure) ------------------------------------------------------------------

enum class IptablesOp { kCheck, kInsert, kAppend, kDelete };

// The arguments after the program name: {"--wait", "-t", table, OP, chain, [position,] spec...},
// OP being -C, -I (position, 1-based, required >= 1), -A or -D. Throws std::invalid_argument for
// an insert position < 1.
std::vector<std::string> iptables_args(IptablesOp op, const IptablesRule& rule, int position = 0);

struct IptablesVersion {
  int major = 0, minor = 0, patch = 0;
  std::string str() const;  // "1.8.9"
  auto operator<=>(const IptablesVersion&) const = default;
};

// The first "vX.Y.Z" in `iptables --version` output ("iptables v1.8.9 (nf_tables)"); nullopt if
// there is none.
std::optional<IptablesVersion> parse_iptables_version(std::string_view version_output);

// The first userspace release with MASQUERADE --random-fully.
inline constexpr IptablesVersion kRandomFullyMinVersion{1, 6, 2};

// Judges the probe `iptables -t nat -C POSTROUTING <test-net rule> -j MASQUERADE --random-fully`:
// true when the rule was understood (exit 0, or exit 1 "Bad rule (does a matching rule exist in
// that chain?)"); false for "unknown option", "Extension ... does not exist / not supported" and
// any other failure, i.e. when a real insert with --random-fully would fail.
bool random_fully_probe_accepted(int exit_code, std::string_view stderr_text);

// 1-based position of the first `-A <chain> <spec>` line of `iptables -S <chain>` output that
// matches each rule exactly (token by token), nullopt for rules not listed.
std::vector<std::optional<int>> listed_positions(std::string_view list_output,
                                                 const std::vector<IptablesRule>& rules);

// One `-I chain position` of a missing rule.
struct InsertStep {
  size_t rule = 0;   // index into the rule set
  int position = 1;  // 1-based, valid at the moment this step runs (earlier steps applied)
};

// Where to insert the missing rules of one chain so that the set ends up in order at the top:
// a missing rule goes right after the lowest-placed earlier rule of the set (or to position 1 if
// no earlier rule is present). Present rules are never moved. `present[i]` comes from -C;
// `position[i]` from listed_positions() (nullopt = present but not found in the listing, which is
// then ignored for placement). Steps are in rule order and account for the shifts they cause.
std::vector<InsertStep> plan_inserts(const std::vector<bool>& present,
                                     const std::vector<std::optional<int>>& position);

// The input of one `iptables-restore --noflush` that inserts each rule (all in `table`) at the
// position given (1-based, valid when its line runs: earlier lines applied), in one commit:
//   *nat\n-I POSTROUTING 1 -s 10.5.0.0/16 -d 10.5.0.0/16 -j RETURN\n...COMMIT\n
// Throws std::invalid_argument if the sizes differ, a position is < 1, a rule is in another
// table, or a token holds a space, quote or newline (iptables-restore would split or misread it).
std::string restore_inserts(const std::string& table, const std::vector<IptablesRule>& rules,
                            const std::vector<int>& positions);

// The iptables-restore input that removes `chain` from `table` given `iptables-save -t table`
// output: each rule of another chain that jumps to it (-j CHAIN), then its rules and the chain
// itself. "" when the save shows neither. Current flannel's FLANNEL-POSTRTG (nat) and FLANNEL-FWD
// (filter) go this way when nftables mode takes over a host.
std::string restore_remove_chain(const std::string& table, std::string_view save_output,
                                 const std::string& chain);

// The number of rules ("-A ..." lines) in `iptables-save` or `iptables -S` output.
int count_saved_rules(std::string_view save_output);

// ---- Running iptables ------------------------------------------------------------------------

struct RandomFullySupport {
  bool supported = false;
  std::string reason;  // e.g. "iptables v1.8.9 (nf_tables) accepts MASQUERADE --random-fully"
};

class Iptables {
 public:
  struct Result {
    int exit_code = 0;
    std::string out, err;
  };

  // `command` is the program plus any leading arguments; iptables_args() are appended. The
  // default runs `iptables` from PATH (falling back to /usr/sbin and /sbin). Tests pass e.g.
  // {"ip", "netns", "exec", NS, "iptables"}. Each run is killed after `timeout`. Throws
  // std::invalid_argument for an empty command or a timeout <= 0.
  explicit Iptables(std::vector<std::string> command = {"iptables"},
                    std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // Runs command + args, returns the exit code and output. Throws IptablesError kNotInstalled
  // or kTimeout only; a non-zero exit is returned, not thrown.
  Result run(const std::vector<std::string>& args) const;

  // -C: true if the rule is in the chain, false if iptables says it is not (exit 1). Throws
  // IptablesError for anything else (bad option, no permission, ...). Any exit 1 counts as
  // "not there" (remove() also checks iptables' message; this does not).
  bool exists(const IptablesRule& rule) const;
  // -I chain position (1-based). Throws IptablesError on failure.
  void insert(const IptablesRule& rule, int position) const;
  // -A. Throws IptablesError on failure.
  void append(const IptablesRule& rule) const;
  // -D (the first matching copy): true if deleted, false if the rule was not there. Throws
  // IptablesError for other failures.
  bool remove(const IptablesRule& rule) const;
  // Runs the restore tool of this iptables (the program with "-restore" appended, e.g.
  // iptables-legacy-restore) with --noflush --wait and `input` on stdin: iptables-restore
  // applies each table's lines in one commit. Throws IptablesError on failure.
  void restore(const std::string& input) const;
  // `<program>-save [-t table]` output (all tables when table is ""). Throws IptablesError.
  std::string save(const std::string& table = "") const;
  // `iptables -t table -S chain` output. Throws IptablesError on failure.
  std::string list(const std::string& table, const std::string& chain) const;
  // The first line of `iptables --version`, e.g. "iptables v1.8.9 (nf_tables)". Throws
  // IptablesError when it cannot be run or exits non-zero.
  std::string version() const;

  // Whether to add --random-fully: userspace >= 1.6.2 and the -C probe (see
  // random_fully_probe_accepted) passes. Never throws for an unsupported answer; throws
  // IptablesError kNotInstalled / kTimeout if iptables cannot be run at all.
  RandomFullySupport random_fully_support() const;
  // The same given the version() text already read (no second `--version` process).
  RandomFullySupport random_fully_support(const std::string& version_text) const;

  // The command line, for messages: "iptables".
  std::string command_str() const;
  // True when the program is ip6tables or one of its flavours (ip6tables-legacy, ...): the
  // --random-fully probe then uses an IPv6 rule.
  bool ipv6() const;

 private:
  [[noreturn]] void fail(const std::vector<std::string>& args, const Result& r) const;
  // run() of the program with `suffix` appended ("-restore", "-save"), `input` on stdin.
  Result run_tool(const std::string& suffix, const std::vector<std::string>& args,
                  const std::string& input) const;

  std::vector<std::string> command_;
  std::chrono::milliseconds timeout_;
};

// ---- Recycling rules of a previous run -------------------------------------------------------

// At start, with -ip-masq: deletes the masq rules a previous run installed for
// (old_network, old_subnet) (read back from subnet.env) if EITHER differs from the new values
// (v0.11 needed both to differ). Both variants are tried, with and without --random-fully, so the
// rules of an agent built against another iptables go too. Rules that are also in
// masq_rules(new_network, new_subnet, new_random_fully) are kept, so a MASQUERADE rule that
// stays valid never leaves the chain. Returns the number of rules deleted. Throws IptablesError.
int recycle_old_masq(const Iptables& iptables, const IP4Net& old_network, const IP4Net& old_subnet,
                     const IP4Net& new_network, const IP4Net& new_subnet, bool new_random_fully);

// When -ip-masq is now off but the previous subnet.env says FLANNEL_IPMASQ=true: deletes that
// run's masq rules (both --random-fully variants). Returns the number deleted. Throws
// IptablesError.
int delete_old_masq(const Iptables& iptables, const IP4Net& old_network, const IP4Net& old_subnet);

// Deletes the FORWARD rules for old_network if it differs from new_network (v0.11 never did).
// Returns the number deleted. Throws IptablesError.
int recycle_old_forward(const Iptables& iptables, const IP4Net& old_network,
                        const IP4Net& new_network);

// Deletes the FORWARD rules for `network` (switching to nftables mode). Returns the number
// deleted. Throws IptablesError.
int delete_old_forward(const Iptables& iptables, const IP4Net& network);
int delete_old_forward(const Iptables& iptables, const IP6Net& network);

// The same three for the IPv6 rules (run them on an ip6tables Iptables).
int recycle_old_masq(const Iptables& iptables, const IP6Net& old_network, const IP6Net& old_subnet,
                     const IP6Net& new_network, const IP6Net& new_subnet, bool new_random_fully);
int delete_old_masq(const Iptables& iptables, const IP6Net& old_network, const IP6Net& old_subnet);
int recycle_old_forward(const Iptables& iptables, const IP6Net& old_network,
                        const IP6Net& new_network);

}  // namespace flannel
