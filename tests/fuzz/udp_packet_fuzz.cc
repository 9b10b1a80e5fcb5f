// Fuzzes the udp backend's packet path (backends/udp/ipv4_packet.h,
// backends/udp/ip4_prefix_table.h) the way backends/udp/udp_proxy.cc walks it for each packet read
// from the TUN device: parse the header, look the destination up in the peer table (LPM), answer
// "net unreachable" or "TTL exceeded" with an ICMP error, else decrement the TTL. The first input
// byte chooses how many of the next 5-byte records (address, prefix length) fill the table; the
// rest is the packet. Checked: no out-of-bounds access (ASan), the ICMP error is well formed and
// fits its buffer, the TTL update keeps the header checksum valid.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/udp/ip4_prefix_table.h"
#include "backends/udp/ipv4_packet.h"
#include "core/ip.h"
#include "tests/fuzz/fuzz_check.h"

namespace ipv4 = flannel::ipv4;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t routes = std::min<size_t>(data[0] % 8, (size - 1) / 5);
  flannel::IP4PrefixTable<int> table;
  for (size_t i = 0; i < routes; ++i) {
    const uint8_t* r = data + 1 + 5 * i;
    flannel::IP4Net net;
    net.ip.value = ipv4::load32(r);
    net.prefix = r[4] % 33;
    table.insert(net, static_cast<int>(i));
  }
  size_t at = 1 + 5 * routes;
  // A copy of exactly the packet bytes, so ASan sees any read past them.
  std::vector<uint8_t> pkt(data + at, data + size);
  ipv4::Header h;
  if (ipv4::parse_header(pkt.data(), pkt.size(), &h) != ipv4::ParseResult::kOk) return 0;
  FUZZ_CHECK(h.header_len >= ipv4::kMinHeaderLen && h.header_len <= ipv4::kMaxHeaderLen);
  FUZZ_CHECK(h.header_len <= h.total_len && h.total_len <= pkt.size());

  const int* peer = table.lookup(h.dst);
  if (!peer || h.ttl <= 1) {
    if (!ipv4::may_send_icmp_error(pkt.data(), pkt.size(), h)) return 0;
    std::array<uint8_t, ipv4::kIcmpErrorMaxLen> out{};
    uint8_t type = peer ? ipv4::kIcmpTimeExceeded : ipv4::kIcmpDestUnreachable;
    size_t n = ipv4::build_icmp_error(pkt.data(), h, flannel::IP4{0x0a050001}, type, 0, out.data(),
                                      out.size());
    FUZZ_CHECK(n > 0 && n <= out.size());
    ipv4::Header reply;
    FUZZ_CHECK(ipv4::parse_header(out.data(), n, &reply) == ipv4::ParseResult::kOk);
    FUZZ_CHECK(reply.total_len == n && reply.dst == h.src && reply.protocol == ipv4::kProtoIcmp);
    FUZZ_CHECK(ipv4::checksum(out.data(), reply.header_len) == 0);
    FUZZ_CHECK(ipv4::checksum(out.data() + reply.header_len, n - reply.header_len) == 0);
    return 0;
  }
  bool header_ok = ipv4::checksum(pkt.data(), h.header_len) == 0;
  ipv4::decrement_ttl(pkt.data());
  ipv4::Header after;
  FUZZ_CHECK(ipv4::parse_header(pkt.data(), pkt.size(), &after) == ipv4::ParseResult::kOk);
  FUZZ_CHECK(after.ttl == h.ttl - 1);
  if (header_ok) FUZZ_CHECK(ipv4::checksum(pkt.data(), h.header_len) == 0);
  return 0;
}
