// IPv4 packet helpers for a userspace router (the udp backend's proxy): header parsing, the
// Internet checksum and its incremental update, TTL handling, and ICMP error construction.
//
// Everything works on raw bytes in network order through explicit byte loads and stores, so the
// results are the same on any host endianness (flannel v0.11's proxy assumed little-endian).
// Pure functions: no I/O, no allocation, never reads or writes outside the spans they are given.
// Safe to call from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/ip.h"

namespace flannel::ipv4 {

constexpr size_t kMinHeaderLen = 20;
constexpr size_t kMaxHeaderLen = 60;
constexpr uint8_t kProtoIcmp = 1;

// ICMP types and codes used by a router (RFC 792).
constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmpDestUnreachable = 3;
constexpr uint8_t kIcmpEchoRequest = 8;
constexpr uint8_t kIcmpTimeExceeded = 11;
constexpr uint8_t kCodeNetUnreachable = 0;  // with kIcmpDestUnreachable
constexpr uint8_t kCodeTtlExceeded = 0;     // with kIcmpTimeExceeded

// An ICMP error carries the IP + ICMP headers and as much of the offending packet as fits in 576
// bytes (RFC 1812 4.3.2.3).
constexpr size_t kIcmpErrorMaxLen = 576;

inline uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline void store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline uint32_t load32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}
inline void store32(uint8_t* p, uint32_t v) {
  store16(p, static_cast<uint16_t>(v >> 16));
  store16(p + 2, static_cast<uint16_t>(v));
}

// The fields of an IPv4 header a router needs. Addresses in host order (IP4).
struct Header {
  size_t header_len = 0;  // IHL * 4, 20..60
  size_t total_len = 0;   // the Total Length field, header_len..packet length
  uint8_t ttl = 0;
  uint8_t protocol = 0;
  uint16_t frag_offset = 0;  // in 8-byte units; non-zero means a non-first fragment
  IP4 src;
  IP4 dst;
};

enum class ParseResult {
  kOk,
  kTooShort,   // fewer than 20 bytes
  kNotIPv4,    // version field is not 4
  kMalformed,  // IHL < 5, header longer than the data, Total Length < IHL*4 or > the data
};

// Parses the header of the packet in [pkt, pkt+len). On kOk fills *out; otherwise *out is
// unchanged. Trailing bytes beyond Total Length are allowed (callers forward total_len bytes).
ParseResult parse_header(const uint8_t* pkt, size_t len, Header* out);

// The one's-complement sum (RFC 1071) of `len` bytes taken as big-endian 16-bit words (an odd
// last byte is padded with zero), added to `initial` (another such sum) and folded to 16 bits.
// Not complemented. Fast: sums machine words and corrects for byte order at the end.
uint16_t ones_sum(const uint8_t* data, size_t len, uint16_t initial = 0);

// The Internet checksum (RFC 1071) of `len` bytes: the value to store big-endian (store16) in a
// zeroed checksum field. Over a header that already holds a correct checksum it returns 0.
inline uint16_t checksum(const uint8_t* data, size_t len) {
  return static_cast<uint16_t>(~ones_sum(data, len));
}

// The one's-complement sum of the TCP/UDP pseudo header (RFC 793/768) for IPv4.
uint16_t pseudo_header_sum(IP4 src, IP4 dst, uint8_t protocol, size_t l4_len);

// RFC 1624 eqn. 3: the checksum after one 16-bit word (read big-endian) changes from
// `old_word` to `new_word`: HC' = ~(~HC + ~m + m').
uint16_t checksum_update(uint16_t old_checksum, uint16_t old_word, uint16_t new_word);

// Decrements the TTL of the packet's header (TTL must be > 0) and updates the header checksum
// incrementally. Precondition: parse_header returned kOk for this packet.
void decrement_ttl(uint8_t* pkt);

// Whether a router may answer this packet with an ICMP error (RFC 1812 4.3.2.7): not for a
// non-first fragment, not for an ICMP error (or an ICMP message too short to tell), not when the
// source is unspecified, loopback, multicast, class E or broadcast, and not when the destination
// is multicast or the limited broadcast.
bool may_send_icmp_error(const uint8_t* pkt, size_t len, const Header& h);

// Writes into `out` an IPv4 packet from `src` to the offender's source carrying an ICMP error of
// `type`/`code` that quotes the offender (its header and as much data as fits in 576 bytes, never
// more than the offender's Total Length). Outer header: IHL 5, TTL 64, ID 0, no DF. Returns the
// packet length, or 0 when `cap` is too small (kIcmpErrorMaxLen always suffices).
size_t build_icmp_error(const uint8_t* offender, const Header& h, IP4 src, uint8_t type,
                        uint8_t code, uint8_t* out, size_t cap);

}  // namespace flannel::ipv4
