// Segmentation and coalescing offloads for a userspace IPv4 router that talks to a TUN device
// with IFF_VNET_HDR (the udp backend's proxy):
//
//   * the kernel hands the TUN reader TCP "super-packets" of up to 64 KiB (TSO) and packets whose
//     TCP/UDP checksum is only partially computed (checksum offload), described by a virtio-net
//     header. complete_checksum() finishes such a checksum; tcp_segment() cuts a super-packet
//     into ordinary packets of at most gso_size payload bytes, exactly as the kernel's own TSO
//     would (incrementing IP IDs, sequence numbers, FIN/PSH only on the last, CWR only on the
//     first, full checksums), so what goes on the wire is plain MTU-sized IPv4 packets;
//   * on the way back, consecutive TCP segments of one flow are merged into one super-packet
//     (tcp_coalesce_count(), tcp_coalesce()) that the kernel accepts from the TUN writer as a
//     GSO packet, like GRO would.
//
// Pure functions over caller-owned bytes: no I/O, no allocation, never outside the given spans.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/udp/ipv4_packet.h"

namespace flannel::ipv4 {

// struct virtio_net_hdr (legacy layout, 10 bytes). Its 16-bit fields are in host byte order, as
// TUN uses them unless told otherwise (TUNSETVNETLE/BE).
struct VnetHeader {
  static constexpr size_t kLen = 10;
  static constexpr uint8_t kNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
  static constexpr uint8_t kGsoNone = 0;
  static constexpr uint8_t kGsoTcpV4 = 1;
  static constexpr uint8_t kGsoEcn = 0x80;

  uint8_t flags = 0;
  uint8_t gso_type = kGsoNone;
  uint16_t hdr_len = 0;
  uint16_t gso_size = 0;
  uint16_t csum_start = 0;
  uint16_t csum_offset = 0;

  static VnetHeader read(const uint8_t* p);
  void write(uint8_t* p) const;
};

constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;

// Finishes a partial checksum: the 16-bit field at csum_start + csum_offset holds the pseudo
// header sum; the checksum of [csum_start, len) is stored there (0 becomes 0xffff, as the kernel
// does). Returns false (and changes nothing) if the offsets do not fit in `len`.
bool complete_checksum(uint8_t* pkt, size_t len, size_t csum_start, size_t csum_offset);

// Where a TCP segment's parts are, for a packet parse_header() accepted with protocol 6.
struct TcpLayout {
  size_t tcp_offset = 0;  // = IP header length
  size_t tcp_header_len = 0;
  size_t payload_len = 0;  // total_len - headers
};
// Returns false (*out unchanged) if the TCP header does not fit or its data offset is < 5.
bool tcp_layout(const uint8_t* pkt, const Header& h, TcpLayout* out);

// TSO: writes segments of the TCP/IPv4 super-packet `pkt` (header `h`, layout `t`), starting at
// payload offset *offset, each carrying at most `mss` payload bytes, back to back into `out`:
// as many as fit in `cap` bytes and at most `max_segments`. Each segment is a complete IPv4
// packet with valid checksums. Advances *offset past what was written; returns the number of
// segments and sets *out_len to the bytes written. Every segment but the last of the whole
// super-packet has exactly `mss` payload bytes. Preconditions: mss > 0, *offset < payload_len
// (or payload_len == 0 with *offset == 0, which yields one segment).
size_t tcp_segment(const uint8_t* pkt, const Header& h, const TcpLayout& t, size_t mss,
                   size_t* offset, size_t max_segments, uint8_t* out, size_t cap, size_t* out_len);

// GRO: how many of the `n` IPv4 packets pkts[0..n) (lengths lens[]) can be merged into one TCP
// super-packet starting with pkts[0]: same flow and IP/TCP header fields, no IP options or
// fragments, consecutive sequence numbers and IP IDs, only ACK set (the last may add PSH), every
// payload but the last exactly as long as the first, valid TCP checksums, at most 65535 bytes in
// all. Returns 1 when pkts[0] cannot be merged with pkts[1] (or n == 1).
size_t tcp_coalesce_count(const uint8_t* const* pkts, const size_t* lens, size_t n);

// Writes a virtio-net header and the super-packet merging pkts[0..count) (a run that
// tcp_coalesce_count() accepted, count >= 2) into `out`: the first packet's headers with the
// total length, PSH of the last, a fresh IP checksum and the TCP pseudo-header sum (partial
// checksum), then every payload. Returns the bytes written (header included), or 0 if `cap` is
// too small.
size_t tcp_coalesce(const uint8_t* const* pkts, const size_t* lens, size_t count, uint8_t* out,
                    size_t cap);

}  // namespace flannel::ipv4
