// The pure parts of the udp backend's data path: IPv4 header parsing, checksums (full and RFC 1624
// incremental), router TTL handling, ICMP error construction, and the longest-prefix-match table.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "backends/udp/ip4_prefix_table.h"
#include "backends/udp/ipv4_offload.h"
#include "backends/udp/ipv4_packet.h"

namespace flannel {
namespace {

using namespace ipv4;

IP4 ip4(const char* s) { return IP4::parse(s); }
IP4Net net4(const char* s) { return IP4Net::parse(s); }

// A valid IPv4 packet: 20-byte header (+ options), then `payload` bytes of a counting pattern.
std::vector<uint8_t> make_packet(IP4 src, IP4 dst, uint8_t proto, size_t payload, uint8_t ttl = 64,
                                 size_t options = 0) {
  const size_t hl = kMinHeaderLen + options;
  std::vector<uint8_t> p(hl + payload);
  p[0] = static_cast<uint8_t>(0x40 | (hl / 4));
  store16(&p[2], static_cast<uint16_t>(p.size()));
  store16(&p[4], 0x1234);
  p[8] = ttl;
  p[9] = proto;
  store32(&p[12], src.value);
  store32(&p[16], dst.value);
  for (size_t i = kMinHeaderLen; i < hl; ++i) p[i] = 1;  // NOP options
  for (size_t i = 0; i < payload; ++i) p[hl + i] = static_cast<uint8_t>(i);
  store16(&p[10], checksum(p.data(), hl));
  return p;
}

Header parse(const std::vector<uint8_t>& p) {
  Header h;
  EXPECT_EQ(parse_header(p.data(), p.size(), &h), ParseResult::kOk);
  return h;
}

TEST(Ipv4Checksum, MatchesAKnownHeader) {
  // A classic example header whose checksum is 0xb861.
  std::vector<uint8_t> h = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                            0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(checksum(h.data(), h.size()), 0xb861);
  store16(&h[10], 0xb861);
  EXPECT_EQ(checksum(h.data(), h.size()), 0);  // a correct header sums to zero
  // Odd lengths pad with a zero byte.
  const uint8_t odd[] = {0x01, 0x02, 0x03};
  EXPECT_EQ(checksum(odd, 3), static_cast<uint16_t>(~(0x0102 + 0x0300)));
}

TEST(Ipv4Checksum, IncrementalUpdateAgreesWithFullRecompute) {
  std::mt19937 rng(1624);
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> h(20);
    for (auto& b : h) b = static_cast<uint8_t>(rng());
    h[0] = 0x45;
    h[8] = static_cast<uint8_t>(1 + rng() % 255);  // TTL > 0
    store16(&h[10], 0);
    store16(&h[10], checksum(h.data(), 20));
    const uint8_t ttl = h[8];

    decrement_ttl(h.data());
    ASSERT_EQ(h[8], ttl - 1);
    ASSERT_EQ(checksum(h.data(), 20), 0) << "round " << round;  // still verifies
    std::vector<uint8_t> full = h;
    store16(&full[10], 0);
    ASSERT_EQ(load16(&h[10]), checksum(full.data(), 20)) << "round " << round;
  }
}

TEST(Ipv4Checksum, UpdateOfArbitraryWords) {
  // RFC 1624's equation 3 for any 16-bit word change, checked against a full recompute.
  std::mt19937 rng(3);
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> d(20);
    for (auto& b : d) b = static_cast<uint8_t>(rng());
    d[0] = 0x45;  // keeps the sum away from zero, as in any IPv4 header
    store16(&d[10], 0);
    const uint16_t hc = checksum(d.data(), 20);
    const size_t at = 2 * (rng() % 10);
    if (at == 10 || at == 0) continue;
    const uint16_t old_word = load16(&d[at]);
    const uint16_t new_word = static_cast<uint16_t>(rng());
    store16(&d[at], new_word);
    ASSERT_EQ(checksum_update(hc, old_word, new_word), checksum(d.data(), 20));
  }
}

TEST(Ipv4Header, ParsesFields) {
  auto p = make_packet(ip4("10.5.1.2"), ip4("10.5.2.3"), 6, 100, 17);
  store16(&p[6], 0x2000 | 5);  // MF, offset 5
  Header h;
  ASSERT_EQ(parse_header(p.data(), p.size(), &h), ParseResult::kOk);
  EXPECT_EQ(h.header_len, 20u);
  EXPECT_EQ(h.total_len, 120u);
  EXPECT_EQ(h.ttl, 17);
  EXPECT_EQ(h.protocol, 6);
  EXPECT_EQ(h.frag_offset, 5);
  EXPECT_EQ(h.src, ip4("10.5.1.2"));
  EXPECT_EQ(h.dst, ip4("10.5.2.3"));
}

TEST(Ipv4Header, RejectsShortForeignAndMalformedPackets) {
  auto p = make_packet(ip4("10.5.1.2"), ip4("10.5.2.3"), 17, 8);
  Header h;
  EXPECT_EQ(parse_header(p.data(), 19, &h), ParseResult::kTooShort);
  EXPECT_EQ(parse_header(p.data(), 0, &h), ParseResult::kTooShort);

  auto v6 = p;
  v6[0] = 0x60;
  EXPECT_EQ(parse_header(v6.data(), v6.size(), &h), ParseResult::kNotIPv4);

  auto small_ihl = p;
  small_ihl[0] = 0x44;
  EXPECT_EQ(parse_header(small_ihl.data(), small_ihl.size(), &h), ParseResult::kMalformed);

  auto long_ihl = p;  // 60-byte header claimed, 28 bytes present
  long_ihl[0] = 0x4f;
  EXPECT_EQ(parse_header(long_ihl.data(), long_ihl.size(), &h), ParseResult::kMalformed);

  auto truncated = p;  // Total Length beyond the data
  store16(&truncated[2], 29);
  EXPECT_EQ(parse_header(truncated.data(), truncated.size(), &h), ParseResult::kMalformed);

  auto short_total = p;  // Total Length inside the header
  store16(&short_total[2], 19);
  EXPECT_EQ(parse_header(short_total.data(), short_total.size(), &h), ParseResult::kMalformed);
}

TEST(Ipv4Header, AcceptsMaximumOptionsAndTrailingBytes) {
  auto p = make_packet(ip4("10.5.1.2"), ip4("10.5.2.3"), 17, 8, 64, 40);  // IHL 15
  Header h = parse(p);
  EXPECT_EQ(h.header_len, 60u);
  p.resize(p.size() + 10);  // e.g. Ethernet padding: forward only Total Length bytes
  h = parse(p);
  EXPECT_EQ(h.total_len, 68u);
}

TEST(IcmpErrorPolicy, FollowsRfc1812) {
  const IP4 a = ip4("10.5.1.2"), b = ip4("10.5.2.3");
  auto tcp = make_packet(a, b, 6, 40);
  EXPECT_TRUE(may_send_icmp_error(tcp.data(), tcp.size(), parse(tcp)));

  auto echo = make_packet(a, b, kProtoIcmp, 16);
  echo[20] = kIcmpEchoRequest;
  EXPECT_TRUE(may_send_icmp_error(echo.data(), echo.size(), parse(echo)));

  for (uint8_t type : {kIcmpDestUnreachable, kIcmpTimeExceeded, uint8_t{4}, uint8_t{5}, uint8_t{12},
                       uint8_t{200}}) {
    auto err = make_packet(a, b, kProtoIcmp, 16);
    err[20] = type;
    EXPECT_FALSE(may_send_icmp_error(err.data(), err.size(), parse(err))) << int(type);
  }
  auto empty_icmp = make_packet(a, b, kProtoIcmp, 0);
  EXPECT_FALSE(may_send_icmp_error(empty_icmp.data(), empty_icmp.size(), parse(empty_icmp)));

  auto first_frag = tcp;  // MF set, offset 0: the first fragment gets an answer
  store16(&first_frag[6], 0x2000);
  EXPECT_TRUE(may_send_icmp_error(first_frag.data(), first_frag.size(), parse(first_frag)));
  auto later_frag = tcp;
  store16(&later_frag[6], 0x2000 | 185);
  EXPECT_FALSE(may_send_icmp_error(later_frag.data(), later_frag.size(), parse(later_frag)));

  for (const char* src : {"0.0.0.0", "127.0.0.1", "224.0.0.5", "240.0.0.1", "255.255.255.255"}) {
    auto p = make_packet(ip4(src), b, 17, 8);
    EXPECT_FALSE(may_send_icmp_error(p.data(), p.size(), parse(p))) << src;
  }
  for (const char* dst : {"239.1.2.3", "255.255.255.255"}) {
    auto p = make_packet(a, ip4(dst), 17, 8);
    EXPECT_FALSE(may_send_icmp_error(p.data(), p.size(), parse(p))) << dst;
  }
}

TEST(IcmpError, QuotesAShortPacketWithoutReadingPastIt) {
  // v0.11 copied header + 8 bytes even when the packet was shorter.
  auto p = make_packet(ip4("10.5.1.2"), ip4("10.6.0.9"), 17, 4, 9);
  std::vector<uint8_t> out(kIcmpErrorMaxLen, 0xee);
  size_t n = build_icmp_error(p.data(), parse(p), ip4("10.5.1.0"), kIcmpDestUnreachable,
                              kCodeNetUnreachable, out.data(), out.size());
  ASSERT_EQ(n, 20u + 8u + p.size());
  out.resize(n);
  Header h;
  ASSERT_EQ(parse_header(out.data(), out.size(), &h), ParseResult::kOk);
  EXPECT_EQ(h.header_len, 20u);
  EXPECT_EQ(h.total_len, n);
  EXPECT_EQ(h.protocol, kProtoIcmp);
  EXPECT_EQ(h.ttl, 64);
  EXPECT_EQ(h.frag_offset, 0);
  EXPECT_EQ(out[6] & 0x40, 0);  // no DF
  EXPECT_EQ(h.src, ip4("10.5.1.0"));
  EXPECT_EQ(h.dst, ip4("10.5.1.2"));
  EXPECT_EQ(checksum(out.data(), 20), 0);
  EXPECT_EQ(out[20], kIcmpDestUnreachable);
  EXPECT_EQ(out[21], kCodeNetUnreachable);
  EXPECT_EQ(load32(&out[24]), 0u);  // unused
  EXPECT_EQ(checksum(out.data() + 20, n - 20), 0);
  EXPECT_TRUE(std::equal(p.begin(), p.end(), out.begin() + 28));
}

TEST(IcmpError, QuotesUpTo576BytesOfALargePacket) {
  auto p = make_packet(ip4("10.5.1.2"), ip4("10.5.9.9"), 6, 1400, 1, 40);  // IHL 15 offender
  std::vector<uint8_t> out(kIcmpErrorMaxLen);
  size_t n = build_icmp_error(p.data(), parse(p), ip4("10.5.1.0"), kIcmpTimeExceeded,
                              kCodeTtlExceeded, out.data(), out.size());
  ASSERT_EQ(n, kIcmpErrorMaxLen);
  EXPECT_EQ(load16(&out[2]), kIcmpErrorMaxLen);
  EXPECT_EQ(out[20], kIcmpTimeExceeded);
  EXPECT_EQ(checksum(out.data(), 20), 0);
  EXPECT_EQ(checksum(out.data() + 20, n - 20), 0);
  EXPECT_TRUE(std::equal(p.begin(), p.begin() + (n - 28), out.begin() + 28));
  // Too small a buffer writes nothing.
  EXPECT_EQ(build_icmp_error(p.data(), parse(p), ip4("10.5.1.0"), kIcmpTimeExceeded, 0, out.data(),
                             kIcmpErrorMaxLen - 1),
            0u);
}

struct Peer {
  int id = 0;
  bool operator==(const Peer&) const = default;
};

TEST(IP4PrefixTable, LongestPrefixWins) {
  IP4PrefixTable<Peer> t;
  EXPECT_EQ(t.lookup(ip4("10.5.1.1")), nullptr);
  // Inserted shortest first and longest first, so order cannot matter.
  t.insert(net4("10.5.0.0/16"), {16});
  t.insert(net4("10.5.1.7/32"), {32});
  t.insert(net4("0.0.0.0/0"), {0});
  t.insert(net4("10.5.1.0/24"), {24});
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.lookup(ip4("10.5.1.7"))->id, 32);
  EXPECT_EQ(t.lookup(ip4("10.5.1.8"))->id, 24);
  EXPECT_EQ(t.lookup(ip4("10.5.2.1"))->id, 16);
  EXPECT_EQ(t.lookup(ip4("192.168.0.1"))->id, 0);

  EXPECT_TRUE(t.erase(net4("10.5.1.0/24")));
  EXPECT_FALSE(t.erase(net4("10.5.1.0/24")));
  EXPECT_FALSE(t.erase(net4("10.5.1.0/25")));
  EXPECT_EQ(t.lookup(ip4("10.5.1.8"))->id, 16);
  EXPECT_TRUE(t.erase(net4("0.0.0.0/0")));
  EXPECT_EQ(t.lookup(ip4("192.168.0.1")), nullptr);
  EXPECT_EQ(t.size(), 2u);
}

TEST(IP4PrefixTable, ReplaceFindAndHostBits) {
  IP4PrefixTable<Peer> t;
  t.insert(IP4Net{ip4("10.5.34.9"), 24}, {1});  // host bits are ignored
  t.insert(net4("10.5.34.0/24"), {2});          // replaces
  EXPECT_EQ(t.size(), 1u);
  ASSERT_NE(t.find(net4("10.5.34.0/24")), nullptr);
  EXPECT_EQ(t.find(net4("10.5.34.0/24"))->id, 2);
  EXPECT_EQ(t.find(net4("10.5.34.0/25")), nullptr);
  EXPECT_EQ(t.find(net4("10.5.0.0/16")), nullptr);
  EXPECT_EQ(t.lookup(ip4("10.5.34.255"))->id, 2);
  EXPECT_EQ(t.lookup(ip4("10.5.35.0")), nullptr);
  int seen = 0;
  t.for_each([&](const IP4Net& n, const Peer& p) {
    EXPECT_EQ(n, net4("10.5.34.0/24"));
    EXPECT_EQ(p.id, 2);
    ++seen;
  });
  EXPECT_EQ(seen, 1);
}

TEST(IP4PrefixTable, ThousandsOfPeers) {
  IP4PrefixTable<Peer> t;
  // 10.0.0.0/8 cut into /24 leases: 65536 peers, plus a few /28s inside some of them.
  for (uint32_t i = 0; i < 65536; ++i) t.insert(IP4Net{IP4{0x0a000000u | (i << 8)}, 24}, {int(i)});
  for (uint32_t i = 0; i < 65536; i += 1000)
    t.insert(IP4Net{IP4{0x0a000000u | (i << 8) | 16}, 28}, {-int(i)});
  EXPECT_EQ(t.size(), 65536u + 66u);
  for (uint32_t i = 0; i < 65536; i += 7) {
    const uint32_t base = 0x0a000000u | (i << 8);
    ASSERT_EQ(t.lookup(IP4{base | 200})->id, int(i));
    ASSERT_EQ(t.lookup(IP4{base | 17})->id, i % 1000 == 0 ? -int(i) : int(i));
  }
  EXPECT_EQ(t.lookup(ip4("11.0.0.1")), nullptr);
  for (uint32_t i = 0; i < 65536; i += 2) t.erase(IP4Net{IP4{0x0a000000u | (i << 8)}, 24});
  EXPECT_EQ(t.lookup(ip4("10.0.2.200")), nullptr);
  EXPECT_EQ(t.lookup(ip4("10.0.3.200"))->id, 3);
}

}  // namespace
}  // namespace flannel

// ---- Offloads: fast checksum, partial checksums, TSO segmentation, GRO coalescing ----

namespace flannel {
namespace {
namespace offload {

using namespace ipv4;

uint16_t slow_sum(const uint8_t* d, size_t n) {
  uint32_t s = 0;
  for (size_t i = 0; i < n; i += 2) s += uint32_t{d[i]} << 8 | (i + 1 < n ? d[i + 1] : 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(s);
}

// A TCP/IPv4 packet with 12 bytes of options and `payload` pattern bytes, valid checksums.
std::vector<uint8_t> tcp_packet(size_t payload, uint32_t seq, uint8_t flags, uint16_t id = 100,
                                size_t pattern_start = 0) {
  const size_t hl = 20, thl = 32;
  std::vector<uint8_t> p(hl + thl + payload);
  p[0] = 0x45;
  store16(&p[2], static_cast<uint16_t>(p.size()));
  store16(&p[4], id);
  store16(&p[6], 0x4000);  // DF
  p[8] = 63;
  p[9] = kProtoTcp;
  store32(&p[12], IP4::parse("10.5.1.2").value);
  store32(&p[16], IP4::parse("10.5.2.3").value);
  store16(&p[10], checksum(p.data(), hl));
  uint8_t* t = &p[hl];
  store16(t, 40000);
  store16(t + 2, 5201);
  store32(t + 4, seq);
  store32(t + 8, 777);
  t[12] = static_cast<uint8_t>((thl / 4) << 4);
  t[13] = flags;
  store16(t + 14, 502);
  t[20] = 1;  // NOP NOP TIMESTAMP(10)
  t[21] = 1;
  t[22] = 8;
  t[23] = 10;
  store32(t + 24, 0x01020304);
  store32(t + 28, 0x05060708);
  for (size_t i = 0; i < payload; ++i)
    p[hl + thl + i] = static_cast<uint8_t>((pattern_start + i) * 7);
  store16(t + 16, static_cast<uint16_t>(
                      ~ones_sum(t, thl + payload,
                                pseudo_header_sum(IP4::parse("10.5.1.2"), IP4::parse("10.5.2.3"),
                                                  kProtoTcp, thl + payload))));
  return p;
}

bool tcp_checksum_ok(const uint8_t* p, size_t len) {
  Header h;
  if (parse_header(p, len, &h) != ParseResult::kOk) return false;
  const size_t l4 = h.total_len - h.header_len;
  return ones_sum(p + h.header_len, l4, pseudo_header_sum(h.src, h.dst, kProtoTcp, l4)) == 0xffff;
}

TEST(Ipv4Offload, FastSumMatchesReferenceAtAnyLengthAndAlignment) {
  std::mt19937 rng(7);
  std::vector<uint8_t> buf(300);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t start = 0; start < 8; ++start) {
    for (size_t len = 0; len < 260; ++len) {
      ASSERT_EQ(ones_sum(buf.data() + start, len) % 0xffff,
                slow_sum(buf.data() + start, len) % 0xffff)
          << start << "+" << len;
    }
  }
  EXPECT_EQ(ones_sum(buf.data(), 0, 0x1234), 0x1234);
}

TEST(Ipv4Offload, CompletesPartialChecksums) {
  auto p = tcp_packet(333, 5, 0x18);
  auto partial = p;
  const size_t l4 = p.size() - 20;
  store16(&partial[20 + 16],
          pseudo_header_sum(IP4::parse("10.5.1.2"), IP4::parse("10.5.2.3"), kProtoTcp, l4));
  ASSERT_TRUE(complete_checksum(partial.data(), partial.size(), 20, 16));
  EXPECT_EQ(partial, p);
  EXPECT_FALSE(complete_checksum(partial.data(), partial.size(), 20, partial.size()));
  EXPECT_FALSE(complete_checksum(partial.data(), partial.size(), partial.size() + 1, 0));
}

TEST(Ipv4Offload, SegmentsLikeKernelTso) {
  const uint8_t flags = 0x10 | 0x08 | 0x01 | 0x80;  // ACK PSH FIN CWR
  auto super = tcp_packet(5000, 1000, flags, 0xfffe);
  Header h = parse(super);
  TcpLayout t;
  ASSERT_TRUE(tcp_layout(super.data(), h, &t));
  EXPECT_EQ(t.tcp_header_len, 32u);
  EXPECT_EQ(t.payload_len, 5000u);

  std::vector<uint8_t> out(10000);
  size_t offset = 0, written = 0;
  ASSERT_EQ(tcp_segment(super.data(), h, t, 1400, &offset, 64, out.data(), out.size(), &written),
            4u);
  EXPECT_EQ(offset, 5000u);
  EXPECT_EQ(written, 4 * 52 + 5000u);
  size_t at = 0;
  for (size_t i = 0; i < 4; ++i) {
    const uint8_t* s = out.data() + at;
    const size_t plen = i < 3 ? 1400 : 800;
    Header sh;
    ASSERT_EQ(parse_header(s, 52 + plen, &sh), ParseResult::kOk);
    EXPECT_EQ(sh.total_len, 52 + plen);
    EXPECT_EQ(load16(s + 4), static_cast<uint16_t>(0xfffe + i));  // IDs increment (and wrap)
    EXPECT_EQ(load16(s + 6), 0x4000);
    EXPECT_EQ(checksum(s, 20), 0);
    EXPECT_TRUE(tcp_checksum_ok(s, 52 + plen));
    EXPECT_EQ(load32(s + 24), 1000 + 1400 * i);
    const uint8_t f = s[33];
    EXPECT_EQ(f & 0x10, 0x10);
    EXPECT_EQ((f & 0x80) != 0, i == 0) << "CWR only on the first";
    EXPECT_EQ((f & 0x09) != 0, i == 3) << "PSH/FIN only on the last";
    EXPECT_TRUE(std::equal(s + 20, s + 24, super.begin() + 20));  // ports
    EXPECT_TRUE(std::equal(s + 28, s + 33, super.begin() + 28));  // ack, data offset
    EXPECT_TRUE(std::equal(s + 34, s + 36, super.begin() + 34));  // window
    EXPECT_TRUE(std::equal(s + 38, s + 52, super.begin() + 38));  // urg, options
    EXPECT_TRUE(std::equal(s + 52, s + 52 + plen, super.begin() + 52 + 1400 * i));
    at += 52 + plen;
  }

  // In chunks (as UDP GSO batches them): the same bytes.
  std::vector<uint8_t> chunked;
  offset = 0;
  while (offset < t.payload_len) {
    std::vector<uint8_t> part(3 * 1452);
    size_t n =
        tcp_segment(super.data(), h, t, 1400, &offset, 3, part.data(), part.size(), &written);
    ASSERT_GT(n, 0u);
    chunked.insert(chunked.end(), part.begin(), part.begin() + static_cast<long>(written));
  }
  out.resize(at);
  EXPECT_EQ(chunked, out);
  // Too little room for even one segment writes nothing.
  offset = 0;
  EXPECT_EQ(tcp_segment(super.data(), h, t, 1400, &offset, 64, out.data(), 1000, &written), 0u);
  EXPECT_EQ(offset, 0u);
}

// Splits `super` (ACK, PSH) into mss-sized segments.
std::vector<std::vector<uint8_t>> split(const std::vector<uint8_t>& super, size_t mss) {
  Header h = parse(super);
  TcpLayout t;
  EXPECT_TRUE(tcp_layout(super.data(), h, &t));
  std::vector<std::vector<uint8_t>> segs;
  size_t offset = 0;
  while (offset < t.payload_len) {
    std::vector<uint8_t> s(52 + mss);
    size_t written = 0;
    tcp_segment(super.data(), h, t, mss, &offset, 1, s.data(), s.size(), &written);
    s.resize(written);
    segs.push_back(s);
  }
  return segs;
}

size_t count_run(const std::vector<std::vector<uint8_t>>& segs) {
  std::vector<const uint8_t*> ptrs;
  std::vector<size_t> lens;
  for (const auto& s : segs) {
    ptrs.push_back(s.data());
    lens.push_back(s.size());
  }
  return tcp_coalesce_count(ptrs.data(), lens.data(), ptrs.size());
}

TEST(Ipv4Offload, CoalescesWhatSegmentationSplit) {
  auto super = tcp_packet(5000, 1000, 0x18, 100);  // ACK PSH
  auto segs = split(super, 1400);
  ASSERT_EQ(segs.size(), 4u);
  ASSERT_EQ(count_run(segs), 4u);

  std::vector<const uint8_t*> ptrs;
  std::vector<size_t> lens;
  for (const auto& s : segs) {
    ptrs.push_back(s.data());
    lens.push_back(s.size());
  }
  std::vector<uint8_t> merged(VnetHeader::kLen + 65535);
  size_t m = tcp_coalesce(ptrs.data(), lens.data(), 4, merged.data(), merged.size());
  ASSERT_EQ(m, VnetHeader::kLen + super.size());
  VnetHeader v = VnetHeader::read(merged.data());
  EXPECT_EQ(v.flags, VnetHeader::kNeedsCsum);
  EXPECT_EQ(v.gso_type, VnetHeader::kGsoTcpV4);
  EXPECT_EQ(v.gso_size, 1400);
  EXPECT_EQ(v.hdr_len, 52);
  EXPECT_EQ(v.csum_start, 20);
  EXPECT_EQ(v.csum_offset, 16);
  const uint8_t* p = merged.data() + VnetHeader::kLen;
  EXPECT_EQ(checksum(p, 20), 0);
  // Everything but the TCP checksum (now the partial pseudo-header sum) is the original packet.
  std::vector<uint8_t> body(p, p + super.size());
  EXPECT_EQ(load16(&body[36]), pseudo_header_sum(IP4::parse("10.5.1.2"), IP4::parse("10.5.2.3"),
                                                 kProtoTcp, super.size() - 20));
  ASSERT_TRUE(complete_checksum(body.data(), body.size(), 20, 16));
  EXPECT_EQ(body, super);

  // A run stops at a short segment, and never crosses the size limit.
  auto short_first = split(tcp_packet(1500, 1, 0x18), 1000);  // 1000 + 500
  EXPECT_EQ(count_run(short_first), 2u);
}

TEST(Ipv4Offload, DoesNotCoalesceAcrossFlowsGapsOrBadChecksums) {
  auto segs = split(tcp_packet(4200, 1000, 0x18), 1400);
  ASSERT_EQ(segs.size(), 3u);

  auto gap = segs;  // a lost segment in between
  gap.erase(gap.begin() + 1);
  EXPECT_EQ(count_run(gap), 1u);

  auto other_flow = segs;
  store16(&other_flow[1][22], 5202);  // destination port
  EXPECT_EQ(count_run(other_flow), 1u);

  auto corrupt = segs;
  corrupt[1][100] ^= 0xff;  // payload damaged: its TCP checksum no longer matches
  EXPECT_EQ(count_run(corrupt), 1u);

  auto psh_first = segs;
  psh_first[0][33] |= 0x08;
  store16(&psh_first[0][36], 0);
  store16(&psh_first[0][36], static_cast<uint16_t>(~ones_sum(
                                 &psh_first[0][20], psh_first[0].size() - 20,
                                 pseudo_header_sum(IP4::parse("10.5.1.2"), IP4::parse("10.5.2.3"),
                                                   kProtoTcp, psh_first[0].size() - 20))));
  EXPECT_EQ(count_run(psh_first), 1u);

  auto ids = segs;  // IP IDs must follow each other too
  store16(&ids[1][4], 9);
  store16(&ids[1][10], 0);
  store16(&ids[1][10], checksum(ids[1].data(), 20));
  EXPECT_EQ(count_run(ids), 1u);

  // No payload (pure ACKs): nothing to merge.
  EXPECT_EQ(count_run({tcp_packet(0, 1, 0x10), tcp_packet(0, 1, 0x10, 101)}), 1u);
  EXPECT_EQ(count_run({segs[0]}), 1u);
}

}  // namespace offload
}  // namespace
}  // namespace flannel
