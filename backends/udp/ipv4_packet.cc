#include "backends/udp/ipv4_packet.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace flannel::ipv4 {
namespace {

// Folds a 32-bit one's-complement accumulator to 16 bits.
uint16_t fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

bool is_query_icmp_type(uint8_t type) {
  switch (type) {
    case 0:   // echo reply
    case 8:   // echo request
    case 9:   // router advertisement
    case 10:  // router solicitation
    case 13:  // timestamp
    case 14:  // timestamp reply
    case 15:  // information request
    case 16:  // information reply
    case 17:  // address mask request
    case 18:  // address mask reply
      return true;
    default: return false;  // errors (3, 4, 5, 11, 12) and anything unknown
  }
}

bool is_multicast(IP4 a) { return (a.value >> 28) == 0xe; }
bool is_class_e(IP4 a) { return (a.value >> 28) == 0xf; }  // includes 255.255.255.255
bool is_loopback(IP4 a) { return (a.value >> 24) == 127; }

}  // namespace

ParseResult parse_header(const uint8_t* pkt, size_t len, Header* out) {
  if (len < kMinHeaderLen) return ParseResult::kTooShort;
  if ((pkt[0] >> 4) != 4) return ParseResult::kNotIPv4;
  const size_t hl = size_t{pkt[0] & 0x0fu} * 4;
  if (hl < kMinHeaderLen || hl > len) return ParseResult::kMalformed;
  const size_t total = load16(pkt + 2);
  if (total < hl || total > len) return ParseResult::kMalformed;
  out->header_len = hl;
  out->total_len = total;
  out->ttl = pkt[8];
  out->protocol = pkt[9];
  out->frag_offset = load16(pkt + 6) & 0x1fff;
  out->src = IP4{load32(pkt + 12)};
  out->dst = IP4{load32(pkt + 16)};
  return ParseResult::kOk;
}

uint16_t ones_sum(const uint8_t* data, size_t len, uint16_t initial) {
  // Sum native-order 32-bit words into 64 bits, fold, and byte-swap on a little-endian host: the
  // one's-complement sum commutes with byte swapping (RFC 1071 section 2(B)).
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 16 <= len; i += 16) {
    uint32_t w[4];
    std::memcpy(w, data + i, 16);
    acc += uint64_t{w[0]} + w[1] + w[2] + w[3];
  }
  for (; i + 4 <= len; i += 4) {
    uint32_t w;
    std::memcpy(&w, data + i, 4);
    acc += w;
  }
  if (i + 2 <= len) {
    uint16_t w;
    std::memcpy(&w, data + i, 2);
    acc += w;
    i += 2;
  }
  if (i < len) {
    // A lone last byte is the high half of a big-endian word, i.e. the first byte in memory.
    uint8_t pad[2] = {data[i], 0};
    uint16_t w;
    std::memcpy(&w, pad, 2);
    acc += w;
  }
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  uint16_t sum = static_cast<uint16_t>(acc);
  if constexpr (std::endian::native == std::endian::little) {
    sum = static_cast<uint16_t>(sum << 8 | sum >> 8);
  }
  return fold(uint32_t{sum} + initial);
}

uint16_t pseudo_header_sum(IP4 src, IP4 dst, uint8_t protocol, size_t l4_len) {
  uint32_t sum = (src.value >> 16) + (src.value & 0xffff) + (dst.value >> 16) +
                 (dst.value & 0xffff) + protocol + static_cast<uint32_t>(l4_len & 0xffff) +
                 static_cast<uint32_t>(l4_len >> 16);
  return fold(sum);
}

uint16_t checksum_update(uint16_t old_checksum, uint16_t old_word, uint16_t new_word) {
  uint32_t sum = uint32_t{static_cast<uint16_t>(~old_checksum)} +
                 uint32_t{static_cast<uint16_t>(~old_word)} + uint32_t{new_word};
  return static_cast<uint16_t>(~fold(sum));
}

void decrement_ttl(uint8_t* pkt) {
  // TTL is the high byte of the 16-bit word at offset 8 (TTL, Protocol).
  const uint16_t old_word = load16(pkt + 8);
  pkt[8] = static_cast<uint8_t>(pkt[8] - 1);
  const uint16_t new_word = load16(pkt + 8);
  store16(pkt + 10, checksum_update(load16(pkt + 10), old_word, new_word));
}

bool may_send_icmp_error(const uint8_t* pkt, size_t /*len*/, const Header& h) {
  if (h.frag_offset != 0) return false;
  if (h.protocol == kProtoIcmp) {
    if (h.total_len < h.header_len + 1) return false;  // cannot tell what it is
    if (!is_query_icmp_type(pkt[h.header_len])) return false;
  }
  if (h.src.is_zero() || is_loopback(h.src) || is_multicast(h.src) || is_class_e(h.src))
    return false;
  if (is_multicast(h.dst) || h.dst.value == 0xffffffffu) return false;
  return true;
}

size_t build_icmp_error(const uint8_t* offender, const Header& h, IP4 src, uint8_t type,
                        uint8_t code, uint8_t* out, size_t cap) {
  constexpr size_t kHeaders = kMinHeaderLen + 8;  // outer IP + ICMP header
  const size_t quoted = std::min(h.total_len, kIcmpErrorMaxLen - kHeaders);
  const size_t total = kHeaders + quoted;
  if (cap < total) return 0;

  uint8_t* ip = out;
  std::memset(ip, 0, kHeaders);
  ip[0] = 0x45;
  store16(ip + 2, static_cast<uint16_t>(total));
  ip[8] = 64;  // TTL
  ip[9] = kProtoIcmp;
  store32(ip + 12, src.value);
  store32(ip + 16, h.src.value);
  store16(ip + 10, checksum(ip, kMinHeaderLen));

  uint8_t* icmp = out + kMinHeaderLen;
  icmp[0] = type;
  icmp[1] = code;
  std::memcpy(icmp + 8, offender, quoted);
  store16(icmp + 2, checksum(icmp, 8 + quoted));
  return total;
}

}  // namespace flannel::ipv4
