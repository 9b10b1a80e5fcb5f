#include "backends/udp/ipv4_offload.h"

#include <algorithm>
#include <cstring>

namespace flannel::ipv4 {
namespace {

constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpAck = 0x10;
constexpr uint8_t kTcpCwr = 0x80;
constexpr size_t kMaxIpLen = 65535;

uint16_t read_host16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
void write_host16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// A packet that GRO may merge: plain IPv4 header, TCP, valid checksums. Fills *h and *t.
bool mergeable(const uint8_t* p, size_t len, Header* h, TcpLayout* t) {
  if (parse_header(p, len, h) != ParseResult::kOk) return false;
  if (h->header_len != kMinHeaderLen || h->protocol != kProtoTcp) return false;
  if ((load16(p + 6) & 0x3fff) != 0) return false;  // MF or a fragment offset
  if (!tcp_layout(p, *h, t) || t->payload_len == 0) return false;
  if (checksum(p, kMinHeaderLen) != 0) return false;
  const size_t tcp_len = h->total_len - h->header_len;
  return ones_sum(p + h->header_len, tcp_len,
                  pseudo_header_sum(h->src, h->dst, kProtoTcp, tcp_len)) == 0xffff;
}

}  // namespace

VnetHeader VnetHeader::read(const uint8_t* p) {
  VnetHeader v;
  v.flags = p[0];
  v.gso_type = p[1];
  v.hdr_len = read_host16(p + 2);
  v.gso_size = read_host16(p + 4);
  v.csum_start = read_host16(p + 6);
  v.csum_offset = read_host16(p + 8);
  return v;
}

void VnetHeader::write(uint8_t* p) const {
  p[0] = flags;
  p[1] = gso_type;
  write_host16(p + 2, hdr_len);
  write_host16(p + 4, gso_size);
  write_host16(p + 6, csum_start);
  write_host16(p + 8, csum_offset);
}

bool complete_checksum(uint8_t* pkt, size_t len, size_t csum_start, size_t csum_offset) {
  if (csum_start > len || csum_offset + 2 > len - csum_start) return false;
  uint16_t sum = ones_sum(pkt + csum_start, len - csum_start);
  uint16_t c = static_cast<uint16_t>(~sum);
  store16(pkt + csum_start + csum_offset, c == 0 ? 0xffff : c);
  return true;
}

bool tcp_layout(const uint8_t* pkt, const Header& h, TcpLayout* out) {
  const size_t off = h.header_len;
  if (h.total_len < off + 20) return false;
  const size_t thl = size_t{static_cast<uint8_t>(pkt[off + 12] >> 4)} * 4;
  if (thl < 20 || off + thl > h.total_len) return false;
  out->tcp_offset = off;
  out->tcp_header_len = thl;
  out->payload_len = h.total_len - off - thl;
  return true;
}

size_t tcp_segment(const uint8_t* pkt, const Header& h, const TcpLayout& t, size_t mss,
                   size_t* offset, size_t max_segments, uint8_t* out, size_t cap, size_t* out_len) {
  const size_t hl = h.header_len;
  const size_t hdrs = hl + t.tcp_header_len;
  const uint8_t* payload = pkt + hdrs;
  const uint16_t id0 = load16(pkt + 4);
  const uint32_t seq0 = load32(pkt + hl + 4);
  const uint8_t flags0 = pkt[hl + 13];

  size_t n = 0, written = 0;
  while (n < max_segments && *offset < t.payload_len) {
    const size_t len = std::min(mss, t.payload_len - *offset);
    if (written + hdrs + len > cap) break;
    const size_t index = *offset / mss;
    uint8_t* o = out + written;
    std::memcpy(o, pkt, hdrs);
    std::memcpy(o + hdrs, payload + *offset, len);

    store16(o + 2, static_cast<uint16_t>(hdrs + len));
    store16(o + 4, static_cast<uint16_t>(id0 + index));
    store16(o + 10, 0);
    store16(o + 10, checksum(o, hl));

    uint8_t* tcp = o + hl;
    store32(tcp + 4, static_cast<uint32_t>(seq0 + *offset));
    uint8_t f = flags0;
    if (*offset + len < t.payload_len) f &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    if (index != 0) f &= static_cast<uint8_t>(~kTcpCwr);
    tcp[13] = f;
    const size_t tcp_len = t.tcp_header_len + len;
    store16(tcp + 16, 0);
    store16(tcp + 16, static_cast<uint16_t>(~ones_sum(
                          tcp, tcp_len, pseudo_header_sum(h.src, h.dst, kProtoTcp, tcp_len))));

    written += hdrs + len;
    *offset += len;
    ++n;
  }
  *out_len = written;
  return n;
}

size_t tcp_coalesce_count(const uint8_t* const* pkts, const size_t* lens, size_t n) {
  if (n < 2) return 1;
  Header h0;
  TcpLayout t0;
  if (!mergeable(pkts[0], lens[0], &h0, &t0)) return 1;
  const uint8_t* p0 = pkts[0];
  const uint8_t* tcp0 = p0 + h0.header_len;
  if (tcp0[13] != kTcpAck) return 1;  // PSH, FIN, SYN, RST, URG, ECE, CWR: deliver as is
  const size_t mss = t0.payload_len;
  size_t total = h0.total_len;
  uint32_t next_seq = load32(tcp0 + 4) + static_cast<uint32_t>(mss);
  uint16_t next_id = static_cast<uint16_t>(load16(p0 + 4) + 1);

  size_t count = 1;
  for (size_t k = 1; k < n; ++k) {
    Header h;
    TcpLayout t;
    const uint8_t* p = pkts[k];
    if (!mergeable(p, lens[k], &h, &t)) break;
    const uint8_t* tcp = p + h.header_len;
    if (p[1] != p0[1] || load16(p + 6) != load16(p0 + 6) || p[8] != p0[8] ||
        std::memcmp(p + 12, p0 + 12, 8) != 0 || load16(p + 4) != next_id) {
      break;  // TOS, DF, TTL, addresses, IP ID
    }
    if (t.tcp_header_len != t0.tcp_header_len || std::memcmp(tcp, tcp0, 4) != 0 ||  // ports
        load32(tcp + 4) != next_seq || std::memcmp(tcp + 8, tcp0 + 8, 4) != 0 ||    // ack
        std::memcmp(tcp + 14, tcp0 + 14, 2) != 0 ||                                 // window
        std::memcmp(tcp + 18, tcp0 + 18, t.tcp_header_len - 18) != 0) {             // urg, options
      break;
    }
    const uint8_t f = tcp[13];
    if (f != kTcpAck && f != (kTcpAck | kTcpPsh)) break;
    if (t.payload_len > mss || total + t.payload_len > kMaxIpLen) break;
    ++count;
    total += t.payload_len;
    if (t.payload_len < mss || f != kTcpAck) break;  // a short or PSH segment ends the run
    next_seq += static_cast<uint32_t>(t.payload_len);
    ++next_id;
  }
  return count;
}

size_t tcp_coalesce(const uint8_t* const* pkts, const size_t* lens, size_t count, uint8_t* out,
                    size_t cap) {
  Header h0;
  TcpLayout t0;
  if (count < 2 || parse_header(pkts[0], lens[0], &h0) != ParseResult::kOk ||
      !tcp_layout(pkts[0], h0, &t0)) {
    return 0;
  }
  const size_t hdrs = h0.header_len + t0.tcp_header_len;
  size_t total = hdrs;
  for (size_t i = 0; i < count; ++i) total += load16(pkts[i] + 2) - hdrs;
  if (total > kMaxIpLen || cap < VnetHeader::kLen + total) return 0;

  VnetHeader v;
  v.flags = VnetHeader::kNeedsCsum;
  v.gso_type = VnetHeader::kGsoTcpV4;
  v.hdr_len = static_cast<uint16_t>(hdrs);
  v.gso_size = static_cast<uint16_t>(t0.payload_len);
  v.csum_start = static_cast<uint16_t>(h0.header_len);
  v.csum_offset = 16;
  v.write(out);

  uint8_t* o = out + VnetHeader::kLen;
  std::memcpy(o, pkts[0], hdrs);
  size_t at = hdrs;
  for (size_t i = 0; i < count; ++i) {
    const size_t plen = load16(pkts[i] + 2) - hdrs;
    std::memcpy(o + at, pkts[i] + hdrs, plen);
    at += plen;
  }
  store16(o + 2, static_cast<uint16_t>(total));
  store16(o + 10, 0);
  store16(o + 10, checksum(o, h0.header_len));
  uint8_t* tcp = o + h0.header_len;
  tcp[13] = pkts[count - 1][h0.header_len + 13];  // ACK, with PSH if the last had it
  // Partial checksum: the pseudo-header sum, which the kernel completes per segment.
  store16(tcp + 16, pseudo_header_sum(h0.src, h0.dst, kProtoTcp, total - h0.header_len));
  return VnetHeader::kLen + total;
}

}  // namespace flannel::ipv4
