// The lease model: one host's claim on one subnet, and its exact flannel v0.11 encoding.
//
// A lease lives in the store at `<prefix>/subnets/A.B.C.D-N`; its value is the LeaseAttrs JSON
// that Go's json.Marshal writes for flannel v0.11 (compact, fields PublicIP, BackendType,
// BackendData in that order, empty ones left out). Expiration is not part of the value: it comes
// from the store's TTL. Value types, no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/ip.h"

namespace flannel {

using Clock = std::chrono::system_clock;

// What a lease advertises. backend_data is raw compact JSON ("" = absent), e.g.
// {"VtepMAC":"82:4b:b6:2f:54:4e"}; only the backend that wrote it interprets it.
struct LeaseAttrs {
  IP4 public_ip;
  std::string backend_type;  // "" = absent (udp and alloc write none)
  std::string backend_data;  // raw JSON, "" = absent
  // Dual stack (current flannel), last so positional initialisers of the v0.11 fields still work:
  // the host's IPv6 underlay address (nullopt = none) and the raw JSON for the IPv6 side ("" = absent).
  std::optional<IP6> public_ipv6;
  std::string backend_v6_data;
  bool operator==(const LeaseAttrs&) const = default;
};

struct Lease {
  IP4Net subnet;
  LeaseAttrs attrs;
  // nullopt = no TTL (a reservation, or a lease the store keeps forever).
  std::optional<Clock::time_point> expiration;
  // The store's revision of the last write to this key (etcd modifiedIndex, SQLite row
  // revision). 0 = unknown / not yet written. Used for compare-and-swap on renew and delete.
  uint64_t revision = 0;
  // Dual stack: the IPv6 subnet leased beside the IPv4 one; nullopt = IPv4 only (v0.11 format).
  std::optional<IP6Net> ipv6_subnet;
  bool operator==(const Lease&) const = default;
};

// "10.5.34.0-24" for 10.5.34.0/24 (MakeSubnetKey).
std::string subnet_key(const IP4Net& subnet);
// Finds "A.B.C.D-N" anywhere in `key` (full paths allowed, as flannel's unanchored regex does)
// with N <= 32. Returns nullopt when the key does not name a subnet.
std::optional<IP4Net> parse_subnet_key(std::string_view key);

// Encodes attrs exactly as flannel v0.11 writes them, e.g.
// {"PublicIP":"10.37.7.195","BackendType":"vxlan","BackendData":{"VtepMAC":"82:4b:b6:2f:54:4e"}}
std::string encode_lease_attrs(const LeaseAttrs& attrs);
// Decodes a lease value. Key names match case-insensitively (Go encoding/json); unknown keys are
// ignored. Throws ParseError naming the problem for invalid JSON, a non-object, or a PublicIP
// that is missing or not an IPv4 dotted quad. BackendData is kept as compact raw JSON.
LeaseAttrs decode_lease_attrs(std::string_view json);

}  // namespace flannel
