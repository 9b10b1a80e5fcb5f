// The cluster network config (`<prefix>/config`): decoding, defaults and validation.
//
// Accepts what flannel v0.11 accepts (case-insensitive keys, unknown keys ignored, the same
// defaults) and rejects with v0.11's own error text where v0.11 has one, extended with the
// offending values. Where v0.11 silently misbehaves (missing Network, IPv6 panics, SubnetMin >
// SubnetMax) this rejects the config with an error that says what to change. Pure, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/ip.h"

namespace flannel {

// Thrown by parse_config; what() is a message an operator can act on.
class ConfigError : public ParseError {
 public:
  using ParseError::ParseError;
};

struct Config {
  IP4Net network;            // host bits cleared
  int subnet_len = 0;        // always set after parse_config (default applied)
  IP4 subnet_min;            // first allocatable subnet address (default: network + one subnet)
  IP4 subnet_max;            // last allocatable subnet address (default: the last subnet)
  std::string backend_type;  // lowercased Backend.Type; "udp" when Backend is absent
  std::string backend_json;  // the whole Backend object as compact raw JSON, "" if absent
  // Dual stack (current flannel's EnableIPv4 / EnableIPv6 / IPv6Network / IPv6SubnetLen /
  // IPv6SubnetMin / IPv6SubnetMax); the ipv6_* fields mean something only when enable_ipv6.
  bool enable_ipv4 = true;
  bool enable_ipv6 = false;
  IP6Net ipv6_network;
  int ipv6_subnet_len = 0;
  IP6 ipv6_subnet_min;
  IP6 ipv6_subnet_max;
  // Current flannel's EnableNFTables: the masquerade and forward rules go in nftables tables
  // (flannel-ipv4 / flannel-ipv6) instead of iptables. A host's -enable-nftables flag also turns
  // it on. Not shown by str() unless true.
  bool enable_nftables = false;

  // One line for logs: "Network=10.5.0.0/16 SubnetLen=24 SubnetMin=10.5.1.0
  // SubnetMax=10.5.255.0 Backend=vxlan". With IPv6 on, the IPv6 fields follow the IPv4 ones
  // ("... IPv6Network=fc00::/48 IPv6SubnetLen=64 IPv6SubnetMin=fc00:0:0:1:: IPv6SubnetMax=
  // fc00:0:0:ffff:: Backend=vxlan"); with IPv4 off the IPv4 fields are replaced by
  // "EnableIPv4=false".
  std::string str() const;
  bool operator==(const Config&) const = default;
};

// Decodes and validates a config document, applying v0.11's defaults:
//   SubnetLen 0/absent -> 24 when the Network prefix P <= 22, P + 2 for P in 23..28, error above;
//   SubnetMin absent -> Network + one subnet (the first subnet is skipped);
//   SubnetMax absent -> the last subnet of Network.
// An explicit "SubnetMin":"0.0.0.0" is taken literally (v0.11 treated it as unset).
// Dual stack, as current flannel: EnableIPv4 (default true) and EnableIPv6 (default false), at
// least one of them true. The IPv4 fields are checked only when EnableIPv4 (otherwise they are
// ignored and stay zero). With EnableIPv6, IPv6Network is mandatory and
//   IPv6SubnetLen 0/absent -> 64 when the IPv6Network prefix P6 <= 62, P6 + 2 for P6 in 63..124,
//   error above; explicit values must be <= 126 and >= P6 + 2;
//   IPv6SubnetMin / IPv6SubnetMax (null = absent) default like SubnetMin / SubnetMax.
// The IPv6 fields are ignored when EnableIPv6 is false. EnableNFTables: a bool, default false.
// Throws ConfigError on invalid JSON (message includes the byte offset) or an invalid config.
Config parse_config(std::string_view json);

// Number of subnets of length subnet_len from subnet_min to subnet_max inclusive (0 if min > max).
uint64_t subnet_count(const Config& config);
// Same for the IPv6 range (0 if IPv6 is off or min > max), saturating at UINT64_MAX.
uint64_t ipv6_subnet_count(const Config& config);

}  // namespace flannel
