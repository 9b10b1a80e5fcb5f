// subnet.env: the file flanneld writes for docker/CNI, and reads back at startup to find the
// subnet it held before (flannel v0.11 main.go: WriteSubnetFile / ReadCIDRFromSubnetFile).
// Rendering and parsing only; writing the file atomically is the daemon's job.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/ip.h"
#include "core/lease.h"

namespace flannel {

struct SubnetEnv {
  IP4Net network;  // config Network, e.g. 10.5.0.0/16
  IP4Net subnet;   // host part kept: first host of the lease and its prefix, e.g. 10.5.34.1/24
  int mtu = 0;
  bool ipmasq = false;
  // Dual stack (current flannel): written only when set; `ipv4` false leaves out the IPv4 lines.
  std::optional<IP6Net> ipv6_network{};  // config IPv6Network, e.g. fc00::/48
  std::optional<IP6Net> ipv6_subnet{};   // host part kept, e.g. fc00:0:0:1::1/64
  bool ipv4 = true;
};

// The SubnetEnv for a lease: subnet = lease's first host / lease prefix (10.5.34.0/24
// -> 10.5.34.1/24).
SubnetEnv make_subnet_env(const IP4Net& network, const IP4Net& lease_subnet, int mtu, bool ipmasq);
// The same for a lease of either or both families under `config` (IPv6 lines only when
// config.enable_ipv6, IPv4 lines only when config.enable_ipv4).
SubnetEnv make_subnet_env(const Config& config, const LeaseKey& lease, int mtu, bool ipmasq);

// Exactly the four lines v0.11 writes, e.g.
// "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
// With IPv6, current flannel's order: FLANNEL_NETWORK, FLANNEL_SUBNET (if IPv4),
// FLANNEL_IPV6_NETWORK, FLANNEL_IPV6_SUBNET (if IPv6), FLANNEL_MTU, FLANNEL_IPMASQ.
std::string render_subnet_env(const SubnetEnv& env);

// Parses a dotenv file the way godotenv (which v0.11 uses to read it back) does, for the forms
// that occur in practice: KEY=VALUE lines, an optional "export " prefix, blank lines, "#" comment
// lines, inline " # comments" after unquoted values, 'single quoted' values (literal) and
// "double quoted" values (\n, \r, \", \\ unescaped; # allowed inside). Spaces around the key and
// value are trimmed; CRLF line ends are accepted. A later duplicate key wins.
// Throws ParseError naming the line number for a line that is not KEY=VALUE, an empty key, or
// an unterminated quote.
std::map<std::string, std::string> parse_env_file(std::string_view text);

// The IPv4 CIDR stored under `key`, normalised to its network address ("10.5.34.1/24" ->
// 10.5.34.0/24). nullopt when the key is absent or empty; also nullopt when the value is not an
// IPv4 CIDR, in which case *warning (if given) says why, so the caller can log it and go on as
// v0.11 does. *warning is written only in that case; otherwise it keeps what it held.
std::optional<IP4Net> cidr_from_env(const std::map<std::string, std::string>& env,
                                    const std::string& key, std::string* warning = nullptr);

// cidr_from_env(env, "FLANNEL_SUBNET", warning): the subnet this host held before a restart.
std::optional<IP4Net> previous_subnet_from_env(const std::map<std::string, std::string>& env,
                                               std::string* warning = nullptr);

// The IPv6 CIDR under `key` (e.g. FLANNEL_IPV6_SUBNET), normalised to its network address; as
// cidr_from_env otherwise.
std::optional<IP6Net> cidr6_from_env(const std::map<std::string, std::string>& env,
                                     const std::string& key, std::string* warning = nullptr);

// The lease key this host held before a restart, for `config`'s families: FLANNEL_SUBNET (or
// the 0.0.0.0/0 placeholder when IPv4 is off) and FLANNEL_IPV6_SUBNET if present. nullopt when
// the file names no subnet of an enabled family. Whether it fits the config is the allocator's
// call (a missing IPv6 part with IPv6 on makes it incompatible, as in current flannel).
// Unlike cidr_from_env, *warning (if given) is always overwritten: "" when nothing was wrong,
// else the reason(s) joined with "; ". A bad IPv6 value with IPv4 on still returns the IPv4 key.
std::optional<LeaseKey> previous_key_from_env(const std::map<std::string, std::string>& env,
                                              const Config& config, std::string* warning = nullptr);

}  // namespace flannel
