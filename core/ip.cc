// IPv4/IPv6 address and network arithmetic. See ip.h for the contract.
//
// Parsing follows Go 1.10's net package (the one flannel v0.11 was built with) where that matters
// for compatibility: decimal octets may carry leading zeros ("010" is 10, never octal), a CIDR
// prefix is a plain decimal number, and ParseCIDR clears the host bits.
#include "core/ip.h"

#include <algorithm>
#include <cstdio>

namespace flannel {
namespace {

using u128 = unsigned __int128;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A non-empty run of decimal digits whose value is <= max; nullopt otherwise. Stops accumulating
// as soon as the value exceeds max, so long digit strings cannot overflow.
std::optional<uint32_t> parse_dec(std::string_view s, uint32_t max) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
    if (v > max) return std::nullopt;
  }
  return static_cast<uint32_t>(v);
}

std::optional<uint32_t> parse_ip4_value(std::string_view s) {
  uint32_t value = 0;
  for (int part = 0; part < 4; ++part) {
    size_t dot = s.find('.');
    std::string_view octet = part < 3 ? s.substr(0, dot) : s;
    if (part < 3 && dot == std::string_view::npos) return std::nullopt;
    auto v = parse_dec(octet, 255);
    if (!v) return std::nullopt;
    value = (value << 8) | *v;
    if (part < 3) s.remove_prefix(dot + 1);
  }
  return value;
}

// Splits "addr/len"; both halves must be non-empty and the prefix a decimal <= max_prefix.
std::optional<std::pair<std::string_view, int>> split_cidr(std::string_view text, int max_prefix) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto len = parse_dec(text.substr(slash + 1), static_cast<uint32_t>(max_prefix));
  if (!len) return std::nullopt;
  return std::make_pair(text.substr(0, slash), static_cast<int>(*len));
}

uint32_t mask4(int prefix) { return prefix <= 0 ? 0 : prefix >= 32 ? ~0u : ~0u << (32 - prefix); }

u128 to_u128(const IP6& ip) {
  u128 v = 0;
  for (uint8_t b : ip.bytes) v = (v << 8) | b;
  return v;
}

IP6 from_u128(u128 v) {
  IP6 ip;
  for (int i = 15; i >= 0; --i) {
    ip.bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
  return ip;
}

u128 mask6(int prefix) {
  if (prefix <= 0) return 0;
  if (prefix >= 128) return ~u128{0};
  return ~u128{0} << (128 - prefix);
}

// Parses the colon-separated groups of one side of a "::" (or of a whole uncompressed address).
// A dotted-quad tail counts as two groups and is only allowed when `v4_tail_ok`.
bool parse_groups(std::string_view s, bool v4_tail_ok, std::vector<uint16_t>& out) {
  if (s.empty()) return true;
  while (true) {
    size_t colon = s.find(':');
    std::string_view piece = s.substr(0, colon);
    bool last = colon == std::string_view::npos;
    if (last && v4_tail_ok && piece.find('.') != std::string_view::npos) {
      auto v4 = parse_ip4_value(piece);
      if (!v4) return false;
      out.push_back(static_cast<uint16_t>(*v4 >> 16));
      out.push_back(static_cast<uint16_t>(*v4 & 0xffff));
      return true;
    }
    if (piece.empty() || piece.size() > 4) return false;
    uint32_t g = 0;
    for (char c : piece) {
      int d;
      if (is_digit(c)) d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else return false;
      g = g * 16 + static_cast<uint32_t>(d);
    }
    out.push_back(static_cast<uint16_t>(g));
    if (last) return true;
    s.remove_prefix(colon + 1);
  }
}

std::optional<IP6> parse_ip6(std::string_view text) {
  std::vector<uint16_t> left, right;
  size_t dc = text.find("::");
  if (dc == std::string_view::npos) {
    if (!parse_groups(text, true, left) || left.size() != 8) return std::nullopt;
  } else {
    // "::" stands for one or more zero groups, so at most 7 explicit groups may surround it.
    if (!parse_groups(text.substr(0, dc), false, left)) return std::nullopt;
    if (!parse_groups(text.substr(dc + 2), true, right)) return std::nullopt;
    if (left.size() + right.size() > 7) return std::nullopt;
  }
  IP6 ip;
  auto put = [&ip](size_t group, uint16_t g) {
    ip.bytes[group * 2] = static_cast<uint8_t>(g >> 8);
    ip.bytes[group * 2 + 1] = static_cast<uint8_t>(g & 0xff);
  };
  for (size_t i = 0; i < left.size(); ++i) put(i, left[i]);
  for (size_t i = 0; i < right.size(); ++i) put(8 - right.size() + i, right[i]);
  return ip;
}

}  // namespace

// ---- IP4 ----

std::optional<IP4> IP4::try_parse(std::string_view text) {
  auto v = parse_ip4_value(text);
  if (!v) return std::nullopt;
  return IP4{*v};
}

IP4 IP4::parse(std::string_view text) {
  if (auto ip = try_parse(text)) return *ip;
  throw ParseError("invalid IPv4 address \"" + std::string(text) +
                   "\": expected a dotted quad like 10.5.0.1");
}

std::string IP4::str() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", value >> 24, (value >> 16) & 0xff,
                (value >> 8) & 0xff, value & 0xff);
  return buf;
}

// ---- IP6 ----

std::optional<IP6> IP6::try_parse(std::string_view text) { return parse_ip6(text); }

IP6 IP6::parse(std::string_view text) {
  if (auto ip = parse_ip6(text)) return *ip;
  throw ParseError("invalid IPv6 address \"" + std::string(text) +
                   "\": expected RFC 4291 text like fd00::1 or 2001:db8:0:1::5");
}

std::string IP6::str() const {
  uint16_t g[8];
  for (size_t i = 0; i < 8; ++i) g[i] = static_cast<uint16_t>(bytes[2 * i] << 8 | bytes[2 * i + 1]);
  char buf[64];
  // IPv4-mapped addresses print in mixed notation (RFC 5952 section 5).
  if (g[0] == 0 && g[1] == 0 && g[2] == 0 && g[3] == 0 && g[4] == 0 && g[5] == 0xffff) {
    std::snprintf(buf, sizeof buf, "::ffff:%u.%u.%u.%u", bytes[12], bytes[13], bytes[14],
                  bytes[15]);
    return buf;
  }
  // Longest run of zero groups, first one on a tie; a single zero group is not compressed.
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  if (best_len < 2) best = -1;
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    std::snprintf(buf, sizeof buf, "%x", g[i]);
    out += buf;
  }
  return out;
}

// ---- IP4Net ----

std::optional<IP4Net> IP4Net::try_parse(std::string_view text) {
  auto split = split_cidr(text, 32);
  if (!split) return std::nullopt;
  auto ip = IP4::try_parse(split->first);
  if (!ip) return std::nullopt;
  return IP4Net{*ip, split->second}.network();
}

IP4Net IP4Net::parse(std::string_view text) {
  if (auto n = try_parse(text)) return *n;
  throw ParseError("invalid IPv4 CIDR \"" + std::string(text) +
                   "\": expected A.B.C.D/N with N from 0 to 32, e.g. 10.5.0.0/16");
}

IP4Net IP4Net::parse_keep_host(std::string_view text) {
  auto split = split_cidr(text, 32);
  auto ip = split ? IP4::try_parse(split->first) : std::nullopt;
  if (!ip) {
    throw ParseError("invalid IPv4 CIDR \"" + std::string(text) +
                     "\": expected A.B.C.D/N with N from 0 to 32, e.g. 10.5.34.1/24");
  }
  return IP4Net{*ip, split->second};
}

std::string IP4Net::str() const { return ip.str() + "/" + std::to_string(prefix); }
uint32_t IP4Net::mask() const { return mask4(prefix); }
uint64_t IP4Net::size() const { return uint64_t{1} << (32 - prefix); }
IP4Net IP4Net::network() const { return IP4Net{IP4{ip.value & mask()}, prefix}; }
bool IP4Net::contains(IP4 addr) const { return (addr.value & mask()) == (ip.value & mask()); }
bool IP4Net::contains(const IP4Net& other) const {
  return other.prefix >= prefix && contains(other.ip);
}
bool IP4Net::overlaps(const IP4Net& other) const {
  uint32_t m = mask4(std::min(prefix, other.prefix));
  return (ip.value & m) == (other.ip.value & m);
}
IP4 IP4Net::first_host() const { return IP4{network().ip.value + 1}; }

std::optional<IP4Net> IP4Net::next() const {
  uint64_t n = uint64_t{network().ip.value} + size();
  if (n > 0xffffffffULL) return std::nullopt;
  return IP4Net{IP4{static_cast<uint32_t>(n)}, prefix};
}

std::optional<IP4Net> IP4Net::prev() const {
  uint64_t base = network().ip.value;
  if (base < size()) return std::nullopt;
  return IP4Net{IP4{static_cast<uint32_t>(base - size())}, prefix};
}

std::vector<IP4Net> IP4Net::subnets(int len, size_t limit) const {
  if (len < prefix || len > 32) {
    throw std::invalid_argument("cannot split " + str() + " into /" + std::to_string(len) +
                                " subnets: length must be between " + std::to_string(prefix) +
                                " and 32");
  }
  uint64_t count = uint64_t{1} << (len - prefix);
  uint64_t step = uint64_t{1} << (32 - len);
  uint64_t n = std::min<uint64_t>(count, limit);
  std::vector<IP4Net> out;
  out.reserve(n);
  uint64_t base = network().ip.value;
  for (uint64_t i = 0; i < n; ++i)
    out.push_back(IP4Net{IP4{static_cast<uint32_t>(base + i * step)}, len});
  return out;
}

// ---- IP6Net ----

std::optional<IP6Net> IP6Net::try_parse(std::string_view text) {
  auto split = split_cidr(text, 128);
  if (!split) return std::nullopt;
  auto ip = parse_ip6(split->first);
  if (!ip) return std::nullopt;
  return IP6Net{*ip, split->second}.network();
}

IP6Net IP6Net::parse(std::string_view text) {
  if (auto n = try_parse(text)) return *n;
  throw ParseError("invalid IPv6 CIDR \"" + std::string(text) +
                   "\": expected ADDR/N with N from 0 to 128, e.g. fd00:10::/64");
}

std::string IP6Net::str() const { return ip.str() + "/" + std::to_string(prefix); }
IP6Net IP6Net::network() const { return IP6Net{from_u128(to_u128(ip) & mask6(prefix)), prefix}; }
bool IP6Net::contains(const IP6& addr) const {
  u128 m = mask6(prefix);
  return (to_u128(addr) & m) == (to_u128(ip) & m);
}
bool IP6Net::contains(const IP6Net& other) const {
  return other.prefix >= prefix && contains(other.ip);
}
bool IP6Net::overlaps(const IP6Net& other) const {
  u128 m = mask6(std::min(prefix, other.prefix));
  return (to_u128(ip) & m) == (to_u128(other.ip) & m);
}
IP6 IP6Net::first_host() const { return from_u128((to_u128(ip) & mask6(prefix)) + 1); }

std::optional<IP6Net> IP6Net::next() const {
  if (prefix <= 0) return std::nullopt;
  u128 base = to_u128(ip) & mask6(prefix);
  u128 n = base + (u128{1} << (128 - prefix));
  if (n < base) return std::nullopt;  // wrapped past ffff:...:ffff
  return IP6Net{from_u128(n), prefix};
}

std::optional<IP6Net> IP6Net::prev() const {
  if (prefix <= 0) return std::nullopt;
  u128 base = to_u128(ip) & mask6(prefix);
  u128 size = u128{1} << (128 - prefix);
  if (base < size) return std::nullopt;
  return IP6Net{from_u128(base - size), prefix};
}

std::vector<IP6Net> IP6Net::subnets(int len, size_t limit) const {
  if (len < prefix || len > 128) {
    throw std::invalid_argument("cannot split " + str() + " into /" + std::to_string(len) +
                                " subnets: length must be between " + std::to_string(prefix) +
                                " and 128");
  }
  // 2^(len-prefix) may not fit in 128 bits; only the limit matters then.
  int bits = len - prefix;
  uint64_t n = bits >= 64 ? limit : std::min<uint64_t>(uint64_t{1} << bits, limit);
  u128 step = len == 0 ? 0 : u128{1} << (128 - len);
  u128 base = to_u128(ip) & mask6(prefix);
  std::vector<IP6Net> out;
  out.reserve(n);
  for (uint64_t i = 0; i < n; ++i) out.push_back(IP6Net{from_u128(base + step * i), len});
  return out;
}

U128 ip6_to_u128(const IP6& ip) { return to_u128(ip); }
IP6 ip6_from_u128(U128 v) { return from_u128(v); }

}  // namespace flannel
