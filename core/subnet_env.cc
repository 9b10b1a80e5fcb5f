#include "core/subnet_env.h"

namespace flannel {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

[[noreturn]] void bad_line(size_t line_no, std::string_view line, const std::string& why) {
  throw ParseError("env file line " + std::to_string(line_no) + ": " + why + ": \"" +
                   std::string(line) + "\" (expected KEY=VALUE)");
}

// The value part of a line (after '='), unquoted and with any trailing comment removed.
std::string parse_value(std::string_view raw, size_t line_no, std::string_view line) {
  std::string_view v = trim(raw);
  if (!v.empty() && (v.front() == '\'' || v.front() == '"')) {
    const char q = v.front();
    std::string out;
    for (size_t i = 1; i < v.size(); ++i) {
      char c = v[i];
      if (c == q) return out;  // anything after the closing quote is a comment or ignored
      if (q == '"' && c == '\\' && i + 1 < v.size()) {
        char n = v[++i];
        out += n == 'n' ? '\n' : n == 'r' ? '\r' : n;
        continue;
      }
      out += c;
    }
    bad_line(line_no, line,
             std::string("unterminated ") + (q == '"' ? "double" : "single") + " quote");
  }
  // Unquoted: a '#' at the start or after whitespace begins a comment.
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '#' && (i == 0 || v[i - 1] == ' ' || v[i - 1] == '\t')) {
      v = trim(v.substr(0, i));
      break;
    }
  }
  return std::string(v);
}

}  // namespace

SubnetEnv make_subnet_env(const IP4Net& network, const IP4Net& lease_subnet, int mtu, bool ipmasq) {
  return SubnetEnv{network, IP4Net{lease_subnet.first_host(), lease_subnet.prefix}, mtu, ipmasq};
}

SubnetEnv make_subnet_env(const Config& config, const LeaseKey& lease, int mtu, bool ipmasq) {
  SubnetEnv e = make_subnet_env(config.network, lease.subnet, mtu, ipmasq);
  e.ipv4 = config.enable_ipv4;
  if (config.enable_ipv6 && lease.ipv6_subnet) {
    e.ipv6_network = config.ipv6_network;
    e.ipv6_subnet = IP6Net{lease.ipv6_subnet->first_host(), lease.ipv6_subnet->prefix};
  }
  return e;
}

std::string render_subnet_env(const SubnetEnv& e) {
  std::string out;
  if (e.ipv4)
    out += "FLANNEL_NETWORK=" + e.network.str() + "\nFLANNEL_SUBNET=" + e.subnet.str() + "\n";
  if (e.ipv6_network) out += "FLANNEL_IPV6_NETWORK=" + e.ipv6_network->str() + "\n";
  if (e.ipv6_subnet) out += "FLANNEL_IPV6_SUBNET=" + e.ipv6_subnet->str() + "\n";
  return out + "FLANNEL_MTU=" + std::to_string(e.mtu) +
         "\nFLANNEL_IPMASQ=" + (e.ipmasq ? "true" : "false") + "\n";
}

std::map<std::string, std::string> parse_env_file(std::string_view text) {
  std::map<std::string, std::string> env;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    std::string_view t = trim(line);
    if (t.empty() || t.front() == '#') continue;
    size_t eq = t.find('=');
    if (eq == std::string_view::npos) bad_line(line_no, t, "no '='");
    std::string_view key = t.substr(0, eq);
    // Check for "export " before trimming, so that "export =1" is an empty key, not "export".
    if (key.substr(0, 7) == "export " || key.substr(0, 7) == "export\t") key.remove_prefix(7);
    key = trim(key);
    if (key.empty()) bad_line(line_no, t, "empty key");
    env[std::string(key)] = parse_value(t.substr(eq + 1), line_no, t);
  }
  return env;
}

std::optional<IP4Net> cidr_from_env(const std::map<std::string, std::string>& env,
                                    const std::string& key, std::string* warning) {
  auto it = env.find(key);
  if (it == env.end() || it->second.empty()) return std::nullopt;
  if (auto n = IP4Net::try_parse(it->second)) return n;
  if (warning) {
    *warning = "ignoring " + key + "=\"" + it->second + "\": not an IPv4 CIDR like 10.5.34.1/24";
  }
  return std::nullopt;
}

std::optional<IP4Net> previous_subnet_from_env(const std::map<std::string, std::string>& env,
                                               std::string* warning) {
  return cidr_from_env(env, "FLANNEL_SUBNET", warning);
}

std::optional<IP6Net> cidr6_from_env(const std::map<std::string, std::string>& env,
                                     const std::string& key, std::string* warning) {
  auto it = env.find(key);
  if (it == env.end() || it->second.empty()) return std::nullopt;
  if (auto n = IP6Net::try_parse(it->second)) return n;
  if (warning) {
    *warning =
        "ignoring " + key + "=\"" + it->second + "\": not an IPv6 CIDR like fc00:0:0:1::1/64";
  }
  return std::nullopt;
}

std::optional<LeaseKey> previous_key_from_env(const std::map<std::string, std::string>& env,
                                              const Config& config, std::string* warning) {
  std::string w4, w6;
  std::optional<IP4Net> v4 = config.enable_ipv4 ? previous_subnet_from_env(env, &w4) : std::nullopt;
  std::optional<IP6Net> v6 =
      config.enable_ipv6 ? cidr6_from_env(env, "FLANNEL_IPV6_SUBNET", &w6) : std::nullopt;
  if (warning) *warning = w4.empty() ? w6 : w6.empty() ? w4 : w4 + "; " + w6;
  if (config.enable_ipv4 ? !v4 : !v6) return std::nullopt;
  return LeaseKey{v4 ? *v4 : kNoIPv4Subnet, v6};
}

}  // namespace flannel
