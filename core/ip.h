// IPv4 and IPv6 addresses and CIDR networks: the one address type of the project.
//
// Pure value types: no I/O, no allocation beyond std::string results, safe to copy and to use
// from any thread. Every parse function throws ParseError with a message that names the bad input
// and says what a valid one looks like; nothing here crashes or silently defaults on garbage.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace flannel {

// Thrown by every parser in core/ for malformed input. what() is a user-facing message.
class ParseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An IPv4 address held in host byte order (so arithmetic and comparison are numeric).
struct IP4 {
  uint32_t value = 0;

  // Parses a dotted quad ("10.5.0.1"). Rejects leading/trailing junk, octets > 255, empty parts,
  // and anything with fewer or more than four parts.
  static IP4 parse(std::string_view text);
  // Like parse() but returns nullopt instead of throwing.
  static std::optional<IP4> try_parse(std::string_view text);
  std::string str() const;  // dotted quad
  bool is_zero() const { return value == 0; }
  auto operator<=>(const IP4&) const = default;
};

// An IPv6 address, 16 bytes in network order.
struct IP6 {
  std::array<uint8_t, 16> bytes{};

  // Parses RFC 4291 text forms, including "::" compression and an embedded dotted quad tail.
  static IP6 parse(std::string_view text);
  static std::optional<IP6> try_parse(std::string_view text);
  std::string str() const;  // RFC 5952 canonical form (lowercase, longest zero run compressed)
  auto operator<=>(const IP6&) const = default;
};

// An IPv4 network: address plus prefix length 0..32. Networks built by parse() or
// from_cidr() have their host bits cleared; `ip` of a hand-built value is taken as given.
struct IP4Net {
  IP4 ip;
  int prefix = 0;

  // Parses "A.B.C.D/N" and clears the host bits, as Go's net.ParseCIDR does
  // ("10.5.1.7/16" -> 10.5.0.0/16). Throws ParseError naming the text otherwise.
  static IP4Net parse(std::string_view text);
  static std::optional<IP4Net> try_parse(std::string_view text);
  // Parses "A.B.C.D/N" and keeps the host part (for "10.5.34.1/24" in subnet.env).
  static IP4Net parse_keep_host(std::string_view text);

  std::string str() const;  // "A.B.C.D/N"
  uint32_t mask() const;    // netmask in host order (prefix 0 -> 0)
  uint64_t size() const;    // number of addresses (2^(32-prefix))
  IP4Net network() const;   // host bits cleared
  bool contains(IP4 addr) const;
  bool contains(const IP4Net& other) const;  // other lies wholly inside this
  // True if the two networks share any address (uses the shorter prefix's mask).
  bool overlaps(const IP4Net& other) const;
  IP4 first_host() const;  // network address + 1, e.g. 10.5.34.1 for 10.5.34.0/24
  // The next/previous network of the same length; nullopt when it would leave 0.0.0.0/0.
  std::optional<IP4Net> next() const;
  std::optional<IP4Net> prev() const;
  // All subnets of length `len` (>= prefix) inside this network, in address order, at most
  // `limit` of them. Throws ParseError-like std::invalid_argument if len < prefix or > 32.
  std::vector<IP4Net> subnets(int len, size_t limit) const;
  auto operator<=>(const IP4Net&) const = default;
};

// IPv6 address arithmetic: the address as a 128-bit number (network order = most significant).
using U128 = unsigned __int128;
U128 ip6_to_u128(const IP6& ip);
IP6 ip6_from_u128(U128 v);

// An IPv6 network; same semantics as IP4Net with prefixes 0..128.
struct IP6Net {
  IP6 ip;
  int prefix = 0;

  static IP6Net parse(std::string_view text);  // clears host bits
  static std::optional<IP6Net> try_parse(std::string_view text);
  std::string str() const;
  IP6Net network() const;
  bool contains(const IP6& addr) const;
  bool contains(const IP6Net& other) const;
  bool overlaps(const IP6Net& other) const;
  IP6 first_host() const;
  std::optional<IP6Net> next() const;
  std::optional<IP6Net> prev() const;
  std::vector<IP6Net> subnets(int len, size_t limit) const;
  auto operator<=>(const IP6Net&) const = default;
};

}  // namespace flannel
