// The lease model: one host's claim on one subnet (or one IPv4 and one IPv6 subnet), and its
// exact flannel encoding.
//
// An IPv4-only lease lives in the store at `<prefix>/subnets/A.B.C.D-N`; its value is the
// LeaseAttrs JSON that Go's json.Marshal writes for flannel v0.11 (compact, fields PublicIP,
// BackendType, BackendData in that order, empty ones left out). A dual-stack lease (current
// flannel) lives at `<prefix>/subnets/A.B.C.D-N&<ipv6>-M` and its value adds PublicIPv6 and
// BackendV6Data. An IPv6-only lease uses the v4 part `0.0.0.0-0` (current flannel's allocator
// writes the same, and its key parser requires a v4 part). A lease's identity is its whole key
// (LeaseKey), never the IPv4 subnet alone. Expiration is not part of the value: it comes from
// the store's TTL. Value types, no I/O.
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
  // the host's IPv6 underlay address (nullopt = none) and the raw JSON for the IPv6 side ("" =
  // absent).
  std::optional<IP6> public_ipv6{};
  std::string backend_v6_data{};
  bool operator==(const LeaseAttrs&) const = default;
};

// The identity of a lease: its IPv4 subnet and, for a dual-stack or IPv6-only lease, its IPv6
// subnet. Converts implicitly from an IPv4 subnet (an IPv4-only lease, v0.11's only kind).
struct LeaseKey {
  IP4Net subnet;
  std::optional<IP6Net> ipv6_subnet{};

  LeaseKey() = default;
  LeaseKey(IP4Net v4, std::optional<IP6Net> v6 = std::nullopt)  // NOLINT: implicit on purpose
      : subnet(v4), ipv6_subnet(v6) {}
  // True when the v4 part is a real subnet (not the 0.0.0.0/0 placeholder of IPv6-only leases).
  bool has_ipv4() const { return subnet.prefix != 0; }
  // For logs: "10.5.1.0/24", "10.5.1.0/24 fc00:0:0:1::/64" or "fc00:0:0:1::/64" (IPv6 only).
  std::string str() const;
  auto operator<=>(const LeaseKey&) const = default;
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
  std::optional<IP6Net> ipv6_subnet{};
  // The store's revision of the write that created this key (etcd createdIndex /
  // create_revision, SQLite's created column); renewals keep it. 0 = unknown (a store row from
  // before the column, or a lease not read from a store). Of two overlapping peer leases, the
  // one created first is kept (admission.h).
  uint64_t created = 0;

  LeaseKey key() const { return LeaseKey{subnet, ipv6_subnet}; }
  bool operator==(const Lease&) const = default;
};

// The v4 part of the key of an IPv6-only lease: 0.0.0.0/0 ("0.0.0.0-0").
inline constexpr IP4Net kNoIPv4Subnet{};

// "10.5.34.0-24" for 10.5.34.0/24, "10.5.1.0-24&fc00:0:0:1::-64" for a dual-stack key
// (MakeSubnetKey; the IPv6 address in RFC 5952 form).
std::string subnet_key(const LeaseKey& key);
// Finds "A.B.C.D-N" anywhere in `key` (full paths allowed, as flannel v0.11's unanchored regex
// does) with N <= 32. If that match is followed by "&", the rest of the key must be current
// flannel's IPv6 part "<ipv6>-M": lowercase hex digits and colons only, M <= 127, at the end of
// the key; otherwise the whole key is rejected (as current flannel ignores it). Returns nullopt
// when the key does not name a subnet.
std::optional<LeaseKey> parse_subnet_key(std::string_view key);

// Encodes attrs exactly as flannel writes them. Without public_ipv6 and backend_v6_data, v0.11's
// form, e.g.
// {"PublicIP":"10.37.7.195","BackendType":"vxlan","BackendData":{"VtepMAC":"82:4b:b6:2f:54:4e"}}
// With either, current flannel's: PublicIP, PublicIPv6 (null if unset), BackendType,
// BackendData, BackendV6Data. Throws std::invalid_argument when backend_data or
// backend_v6_data is not valid JSON (a bug in the backend that built it, never user input).
std::string encode_lease_attrs(const LeaseAttrs& attrs);
// Decodes a lease value. Key names match case-insensitively (Go encoding/json); unknown keys are
// ignored. Throws ParseError naming the problem for invalid JSON, a non-object, a PublicIP
// that is missing or not an IPv4 dotted quad, a BackendType that is neither null nor a string,
// or a PublicIPv6 that is neither null nor an IPv6 address string. BackendData and
// BackendV6Data are kept as compact raw JSON (null counts as absent).
LeaseAttrs decode_lease_attrs(std::string_view json);

}  // namespace flannel
