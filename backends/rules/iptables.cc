#include "backends/rules/iptables.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "backends/process/child_process.h"

namespace flannel {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

std::string first_line(std::string_view text) {
  while (!text.empty() && (text.front() == '\n' || text.front() == ' ')) text.remove_prefix(1);
  return std::string(text.substr(0, text.find('\n')));
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// The messages iptables (and go-iptables' IsNotExist) use for "that rule is not there".
bool says_not_exist(std::string_view err) {
  return err.find("does a matching rule exist") != std::string_view::npos ||
         err.find("Bad rule") != std::string_view::npos ||
         err.find("No chain/target/match by that name") != std::string_view::npos;
}

const std::vector<IptablesRule>& empty_rules() {
  static const std::vector<IptablesRule> none;
  return none;
}

bool contains(const std::vector<IptablesRule>& set, const IptablesRule& r) {
  return std::find(set.begin(), set.end(), r) != set.end();
}

// -D of `rule`, tolerating a --random-fully variant this iptables cannot even parse (exit 2):
// such a rule cannot have been added by this userspace. Returns 1 if deleted, else 0.
int remove_variant(const Iptables& ipt, const IptablesRule& rule) {
  bool rf = std::find(rule.spec.begin(), rule.spec.end(), "--random-fully") != rule.spec.end();
  if (rf) {
    auto r = ipt.run(iptables_args(IptablesOp::kDelete, rule));
    if (r.exit_code == 0) return 1;
    if (r.exit_code == 2 || (r.exit_code == 1 && says_not_exist(r.err))) return 0;
  }
  return ipt.remove(rule) ? 1 : 0;
}

// Deletes each of `candidates` not in `keep` (duplicates in candidates are tried once).
int delete_except(const Iptables& ipt, const std::vector<IptablesRule>& candidates,
                  const std::vector<IptablesRule>& keep) {
  int n = 0;
  std::vector<IptablesRule> done;
  for (const auto& r : candidates) {
    if (contains(keep, r) || contains(done, r)) continue;
    done.push_back(r);
    n += remove_variant(ipt, r);
  }
  return n;
}

template <typename Net>
std::vector<IptablesRule> both_masq_variants(const Net& network, const Net& subnet) {
  auto rules = masq_rules(network, subnet, false);
  for (auto& r : masq_rules(network, subnet, true)) rules.push_back(std::move(r));
  return rules;
}

}  // namespace

// ---- Rules -----------------------------------------------------------------------------------

std::string IptablesRule::str() const { return "-t " + table + " " + chain + " " + join(spec); }

namespace {

// The masq set of one family, from the network and subnet in text form and the family's
// multicast range (which must not be masqueraded).
std::vector<IptablesRule> masq_rule_set(const std::string& n, const std::string& s,
                                        const char* multicast, bool random_fully) {
  std::vector<std::string> masq = {"-j", "MASQUERADE"};
  if (random_fully) masq.push_back("--random-fully");
  auto rule = [&](std::vector<std::string> match, const std::vector<std::string>& target) {
    match.insert(match.end(), target.begin(), target.end());
    return IptablesRule{"nat", "POSTROUTING", std::move(match)};
  };
  return {
      rule({"-s", n, "-d", n}, {"-j", "RETURN"}),
      rule({"-s", n, "!", "-d", multicast}, masq),
      rule({"!", "-s", n, "-d", s}, {"-j", "RETURN"}),
      rule({"!", "-s", n, "-d", n}, masq),
  };
}

std::vector<IptablesRule> forward_rule_set(const std::string& n) {
  return {
      IptablesRule{"filter", "FORWARD", {"-s", n, "-j", "ACCEPT"}},
      IptablesRule{"filter", "FORWARD", {"-d", n, "-j", "ACCEPT"}},
  };
}

}  // namespace

std::vector<IptablesRule> masq_rules(const IP4Net& network, const IP4Net& lease_subnet,
                                     bool random_fully) {
  return masq_rule_set(network.network().str(), lease_subnet.network().str(), "224.0.0.0/4",
                       random_fully);
}

std::vector<IptablesRule> masq_rules(const IP6Net& network, const IP6Net& lease_subnet,
                                     bool random_fully) {
  return masq_rule_set(network.network().str(), lease_subnet.network().str(), "ff00::/8",
                       random_fully);
}

std::vector<IptablesRule> forward_rules(const IP4Net& network) {
  return forward_rule_set(network.network().str());
}

std::vector<IptablesRule> forward_rules(const IP6Net& network) {
  return forward_rule_set(network.network().str());
}

std::vector<std::string> iptables_args(IptablesOp op, const IptablesRule& rule, int position) {
  std::vector<std::string> a = {"--wait", "-t", rule.table};
  switch (op) {
    case IptablesOp::kCheck: a.push_back("-C"); break;
    case IptablesOp::kInsert: a.push_back("-I"); break;
    case IptablesOp::kAppend: a.push_back("-A"); break;
    case IptablesOp::kDelete: a.push_back("-D"); break;
  }
  a.push_back(rule.chain);
  if (op == IptablesOp::kInsert) {
    if (position < 1) {
      throw std::invalid_argument("iptables insert position must be >= 1, got " +
                                  std::to_string(position));
    }
    a.push_back(std::to_string(position));
  }
  a.insert(a.end(), rule.spec.begin(), rule.spec.end());
  return a;
}

std::string IptablesVersion::str() const {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

std::optional<IptablesVersion> parse_iptables_version(std::string_view text) {
  for (size_t i = text.find('v'); i != std::string_view::npos; i = text.find('v', i + 1)) {
    int parts[3] = {0, 0, 0};
    size_t p = i + 1;
    bool ok = true;
    for (int k = 0; k < 3 && ok; ++k) {
      size_t start = p;
      int value = 0;
      while (p < text.size() && text[p] >= '0' && text[p] <= '9' && p - start < 6) {
        value = value * 10 + (text[p] - '0');
        ++p;
      }
      if (p == start) ok = false;
      parts[k] = value;
      if (ok && k < 2) {
        if (p < text.size() && text[p] == '.') ++p;
        else ok = false;
      }
    }
    if (ok) return IptablesVersion{parts[0], parts[1], parts[2]};
  }
  return std::nullopt;
}

bool random_fully_probe_accepted(int exit_code, std::string_view err) {
  if (exit_code == 0) return true;
  return exit_code == 1 && (err.find("does a matching rule exist") != std::string_view::npos ||
                            err.find("Bad rule") != std::string_view::npos);
}

std::vector<std::optional<int>> listed_positions(std::string_view list_output,
                                                 const std::vector<IptablesRule>& rules) {
  std::vector<std::optional<int>> pos(rules.size());
  std::istringstream in{std::string(list_output)};
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.rfind("-A ", 0) != 0) continue;
    ++n;
    std::istringstream words(line);
    std::vector<std::string> tokens;
    for (std::string w; words >> w;) tokens.push_back(w);
    if (tokens.size() < 2) continue;
    for (size_t i = 0; i < rules.size(); ++i) {
      if (pos[i] || tokens[1] != rules[i].chain) continue;
      if (std::equal(tokens.begin() + 2, tokens.end(), rules[i].spec.begin(), rules[i].spec.end()))
        pos[i] = n;
    }
  }
  return pos;
}

std::vector<InsertStep> plan_inserts(const std::vector<bool>& present,
                                     const std::vector<std::optional<int>>& position) {
  if (present.size() != position.size())
    throw std::invalid_argument("plan_inserts: present and position differ in size");
  std::vector<std::optional<int>> at = position;
  std::vector<InsertStep> steps;
  int after = 0;  // the lowest place taken by an earlier rule of the set (0 = none)
  for (size_t i = 0; i < present.size(); ++i) {
    if (present[i]) {
      if (at[i]) after = std::max(after, *at[i]);
      continue;
    }
    int p = after + 1;
    steps.push_back({i, p});
    for (auto& a : at)
      if (a && *a >= p) ++*a;
    at[i] = p;
    after = p;
  }
  return steps;
}

std::string restore_inserts(const std::string& table, const std::vector<IptablesRule>& rules,
                            const std::vector<int>& positions) {
  if (rules.size() != positions.size())
    throw std::invalid_argument("restore_inserts: " + std::to_string(rules.size()) + " rules but " +
                                std::to_string(positions.size()) + " positions");
  auto check = [](const std::string& token) {
    if (token.empty() || token.find_first_of(" \t\n\"'") != std::string::npos)
      throw std::invalid_argument("restore_inserts: token \"" + token +
                                  "\" is empty or holds a space, quote or newline");
  };
  std::string out = "*" + table + "\n";
  for (size_t i = 0; i < rules.size(); ++i) {
    const IptablesRule& r = rules[i];
    if (r.table != table)
      throw std::invalid_argument("restore_inserts: rule " + r.str() + " is not in table " + table);
    if (positions[i] < 1)
      throw std::invalid_argument("restore_inserts: position " + std::to_string(positions[i]) +
                                  " for " + r.str() + " (positions start at 1)");
    check(r.chain);
    out += "-I " + r.chain + " " + std::to_string(positions[i]);
    for (const auto& t : r.spec) {
      check(t);
      out += " " + t;
    }
    out += "\n";
  }
  return out + "COMMIT\n";
}

std::string restore_remove_chain(const std::string& table, std::string_view save_output,
                                 const std::string& chain) {
  std::string jumps;
  bool declared = false;
  std::istringstream in{std::string(save_output)};
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(":" + chain + " ", 0) == 0) declared = true;
    bool jump =
        line.size() > chain.size() + 4 &&
        line.compare(line.size() - chain.size() - 4, std::string::npos, " -j " + chain) == 0;
    if (line.rfind("-A ", 0) == 0 && jump && line.rfind("-A " + chain + " ", 0) != 0)
      jumps += "-D " + line.substr(3) + "\n";
  }
  if (jumps.empty() && !declared) return "";
  std::string out = "*" + table + "\n" + jumps;
  if (declared) out += "-F " + chain + "\n-X " + chain + "\n";
  return out + "COMMIT\n";
}

int count_saved_rules(std::string_view save_output) {
  int n = 0;
  size_t pos = 0;
  while (pos < save_output.size()) {
    size_t end = save_output.find('\n', pos);
    if (end == std::string_view::npos) end = save_output.size();
    if (save_output.substr(pos, 3) == "-A ") ++n;
    pos = end + 1;
  }
  return n;
}

// ---- Iptables --------------------------------------------------------------------------------

Iptables::Iptables(std::vector<std::string> command, std::chrono::milliseconds timeout)
    : command_(std::move(command)), timeout_(timeout) {
  if (command_.empty() || command_[0].empty())
    throw std::invalid_argument("Iptables: the command must name a program");
  if (timeout_.count() <= 0)
    throw std::invalid_argument("Iptables: the timeout must be > 0, got " +
                                std::to_string(timeout_.count()) + " ms");
}

bool Iptables::ipv6() const {
  std::string_view v = command_.back();
  if (auto slash = v.rfind('/'); slash != std::string_view::npos) v.remove_prefix(slash + 1);
  return v.rfind("ip6tables", 0) == 0;
}

std::string Iptables::command_str() const { return join(command_); }

Iptables::Result Iptables::run(const std::vector<std::string>& args) const {
  return run_tool("", args, "");
}

Iptables::Result Iptables::run_tool(const std::string& suffix, const std::vector<std::string>& args,
                                    const std::string& input) const {
  std::vector<std::string> argv = command_;
  argv.back() +=
      suffix;  // the program is the last word: "iptables", or "ip netns exec NS iptables"
  // Not only PATH: a daemon's minimal PATH (cron, some units) may leave out the sbin directories.
  auto exe = find_program(argv[0], {"/usr/sbin", "/sbin", "/usr/bin", "/bin"});
  if (!exe) {
    const char* path = std::getenv("PATH");
    throw IptablesError("cannot run " + argv[0] + ": not found in PATH (" + (path ? path : "") +
                            ") nor /usr/sbin, /sbin; install the iptables package",
                        IptablesError::Kind::kNotInstalled);
  }
  ChildSpec spec{.argv = argv, .stdin_data = input, .timeout = timeout_};
  spec.argv[0] = *exe;
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  ChildResult r = run_child(spec);
  if (!r.error.empty()) throw IptablesError(r.error, IptablesError::Kind::kNotInstalled);
  if (r.timed_out) {
    throw IptablesError("`" + join(argv) + " " + join(args) + "` did not finish within " +
                            std::to_string(timeout_.count()) +
                            " ms and was killed (is another process holding the xtables lock?)",
                        IptablesError::Kind::kTimeout);
  }
  int code = r.status.code >= 0 ? r.status.code : 128 + r.status.signal;
  return Result{code, std::move(r.out), std::move(r.err)};
}

void Iptables::fail(const std::vector<std::string>& args, const Result& r) const {
  std::string err = trim(r.err.empty() ? r.out : r.err);
  throw IptablesError("`" + command_str() + " " + join(args) + "` failed (exit " +
                          std::to_string(r.exit_code) + ")" + (err.empty() ? "" : ": " + err),
                      IptablesError::Kind::kFailed);
}

bool Iptables::exists(const IptablesRule& rule) const {
  auto args = iptables_args(IptablesOp::kCheck, rule);
  auto r = run(args);
  if (r.exit_code == 0) return true;
  if (r.exit_code == 1) return false;
  fail(args, r);
}

void Iptables::insert(const IptablesRule& rule, int position) const {
  auto args = iptables_args(IptablesOp::kInsert, rule, position);
  if (auto r = run(args); r.exit_code != 0) fail(args, r);
}

void Iptables::append(const IptablesRule& rule) const {
  auto args = iptables_args(IptablesOp::kAppend, rule);
  if (auto r = run(args); r.exit_code != 0) fail(args, r);
}

bool Iptables::remove(const IptablesRule& rule) const {
  auto args = iptables_args(IptablesOp::kDelete, rule);
  auto r = run(args);
  if (r.exit_code == 0) return true;
  if (r.exit_code == 1 && says_not_exist(r.err)) return false;
  fail(args, r);
}

std::string Iptables::list(const std::string& table, const std::string& chain) const {
  std::vector<std::string> args = {"--wait", "-t", table, "-S", chain};
  auto r = run(args);
  if (r.exit_code != 0) fail(args, r);
  return r.out;
}

void Iptables::restore(const std::string& input) const {
  std::vector<std::string> args = {"--noflush", "--wait"};
  auto r = run_tool("-restore", args, input);
  if (r.exit_code != 0) {
    std::string err = trim(r.err.empty() ? r.out : r.err);
    throw IptablesError("`" + command_str() + "-restore --noflush --wait` failed (exit " +
                            std::to_string(r.exit_code) + ")" + (err.empty() ? "" : ": " + err) +
                            "; its input was:\n" + input,
                        IptablesError::Kind::kFailed);
  }
}

std::string Iptables::save(const std::string& table) const {
  std::vector<std::string> args;
  if (!table.empty()) args = {"-t", table};
  auto r = run_tool("-save", args, "");
  if (r.exit_code != 0) {
    std::string err = trim(r.err.empty() ? r.out : r.err);
    throw IptablesError("`" + command_str() + "-save` failed (exit " + std::to_string(r.exit_code) +
                            ")" + (err.empty() ? "" : ": " + err),
                        IptablesError::Kind::kFailed);
  }
  return r.out;
}

std::string Iptables::version() const {
  std::vector<std::string> args = {"--version"};
  auto r = run(args);
  if (r.exit_code != 0) fail(args, r);
  return first_line(r.out);
}

RandomFullySupport Iptables::random_fully_support() const {
  std::string text;
  try {
    text = version();
  } catch (const IptablesError& e) {
    if (e.kind() != IptablesError::Kind::kFailed) throw;
    return {false, e.what()};
  }
  return random_fully_support(text);
}

RandomFullySupport Iptables::random_fully_support(const std::string& text) const {
  auto v = parse_iptables_version(text);
  if (!v) return {false, "cannot read a version in `" + command_str() + " --version`: " + text};
  if (*v < kRandomFullyMinVersion) {
    return {false, text + " is older than " + kRandomFullyMinVersion.str() +
                       ", which added MASQUERADE --random-fully"};
  }
  // A TEST-NET-1 rule (RFC 5737; for ip6tables the RFC 3849 documentation prefix) that no one
  // installs; -C changes nothing.
  const char* probe_addr = ipv6() ? "2001:db8::1/128" : "192.0.2.1/32";
  IptablesRule probe{"nat",
                     "POSTROUTING",
                     {"-s", probe_addr, "-d", probe_addr, "-j", "MASQUERADE", "--random-fully"}};
  auto r = run(iptables_args(IptablesOp::kCheck, probe));
  if (random_fully_probe_accepted(r.exit_code, r.err))
    return {true, text + " accepts MASQUERADE --random-fully"};
  return {false, text + " does not accept MASQUERADE --random-fully: " +
                     first_line(r.err.empty() ? r.out : r.err)};
}

// ---- Recycling -------------------------------------------------------------------------------

namespace {

template <typename Net>
int recycle_masq(const Iptables& iptables, const Net& old_network, const Net& old_subnet,
                 const Net& new_network, const Net& new_subnet, bool new_random_fully) {
  // When nothing changed, every old rule of the same variant is kept below; the other variant
  // (another --random-fully decision) still goes.
  return delete_except(iptables, both_masq_variants(old_network, old_subnet),
                       masq_rules(new_network, new_subnet, new_random_fully));
}

template <typename Net>
int recycle_forward(const Iptables& iptables, const Net& old_network, const Net& new_network) {
  if (old_network.network() == new_network.network()) return 0;
  return delete_except(iptables, forward_rules(old_network), forward_rules(new_network));
}

}  // namespace

int recycle_old_masq(const Iptables& iptables, const IP4Net& old_network, const IP4Net& old_subnet,
                     const IP4Net& new_network, const IP4Net& new_subnet, bool new_random_fully) {
  return recycle_masq(iptables, old_network, old_subnet, new_network, new_subnet, new_random_fully);
}

int recycle_old_masq(const Iptables& iptables, const IP6Net& old_network, const IP6Net& old_subnet,
                     const IP6Net& new_network, const IP6Net& new_subnet, bool new_random_fully) {
  return recycle_masq(iptables, old_network, old_subnet, new_network, new_subnet, new_random_fully);
}

int delete_old_masq(const Iptables& iptables, const IP4Net& old_network, const IP4Net& old_subnet) {
  return delete_except(iptables, both_masq_variants(old_network, old_subnet), empty_rules());
}

int delete_old_masq(const Iptables& iptables, const IP6Net& old_network, const IP6Net& old_subnet) {
  return delete_except(iptables, both_masq_variants(old_network, old_subnet), empty_rules());
}

int delete_old_forward(const Iptables& iptables, const IP4Net& network) {
  return delete_except(iptables, forward_rules(network), empty_rules());
}

int delete_old_forward(const Iptables& iptables, const IP6Net& network) {
  return delete_except(iptables, forward_rules(network), empty_rules());
}

int recycle_old_forward(const Iptables& iptables, const IP4Net& old_network,
                        const IP4Net& new_network) {
  return recycle_forward(iptables, old_network, new_network);
}

int recycle_old_forward(const Iptables& iptables, const IP6Net& old_network,
                        const IP6Net& new_network) {
  return recycle_forward(iptables, old_network, new_network);
}

}  // namespace flannel
