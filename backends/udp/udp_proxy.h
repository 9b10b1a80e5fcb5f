// UdpProxy: the udp backend's data path. Moves raw IPv4 packets between a TUN device and a UDP
// socket, exactly as flannel v0.11's proxy does on the wire (the UDP payload is the inner IPv4
// packet, nothing else), without v0.11's bugs:
//
//   TUN -> UDP  read a packet; drop it if shorter than 20 bytes, not IPv4 or malformed; find the
//               peer by longest-prefix match on the destination; no peer -> ICMP Destination
//               Unreachable (net unreachable) back into the TUN; act as one router hop: TTL <= 1
//               -> ICMP Time Exceeded, else decrement it (checksum updated per RFC 1624); send
//               the packet to the peer's endpoint.
//   UDP -> TUN  receive a datagram; drop it unless its source address is a known peer's and it
//               holds a well-formed IPv4 packet; write the packet to the TUN (no second TTL
//               decrement). ICMP errors are never sent about ICMP errors or non-first fragments.
//
// Buffers are 64 KiB, so nothing is truncated; UDP I/O is batched with recvmmsg/sendmmsg.
//
// Offloads (when the TUN was opened with IFF_VNET_HDR and TSO/checksum offload): the kernel hands
// us TCP super-packets of up to 64 KiB, which are cut into MTU-sized packets here (the wire still
// carries one plain IPv4 packet per datagram) and sent with UDP GSO (UDP_SEGMENT) when the kernel
// supports it; datagrams arrive coalesced with UDP GRO, and consecutive TCP segments of one flow
// are merged into one GSO packet for the TUN. Peers without these features see no difference.
//
// Threads: start() runs one forwarding thread per direction. They block in poll() on their fd
// and an eventfd that stop() signals. The peer table is published as an immutable snapshot:
// apply() and replace_all() (from any thread; concurrent calls are serialised by writer_mu_)
// build a new snapshot and swap it in; the forwarding threads pick it up at their next batch and
// never wait for a writer beyond a pointer copy. lookup(), route_count(), stats(), failure() and
// set_tun_addr() may be called from any thread; start() and stop() from the owner's thread only.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends/unique_fd.h"
#include "core/ip.h"
#include "core/thread_annotations.h"

namespace flannel {

// A peer's UDP endpoint: its PublicIP and the (cluster-wide) port.
struct UdpEndpoint {
  IP4 addr;
  uint16_t port = 0;
  bool operator==(const UdpEndpoint&) const = default;
};

// A point-in-time copy of the proxy's counters (monotonic since start).
struct UdpProxyStats {
  // TUN -> UDP
  uint64_t tun_rx_packets = 0;  // packets read from the TUN (a TSO super-packet counts once)
  uint64_t tun_rx_bytes = 0;
  uint64_t udp_tx_packets = 0;  // datagrams (= packets) sent to peers
  uint64_t udp_tx_bytes = 0;
  uint64_t drop_no_route = 0;      // destination in no peer's subnet (ICMP net unreachable sent)
  uint64_t drop_ttl_exceeded = 0;  // TTL <= 1 (ICMP time exceeded sent)
  uint64_t drop_send_error = 0;    // sendmmsg refused the datagram
  uint64_t tso_packets = 0;        // TCP super-packets from the TUN cut into segments here
  // UDP -> TUN
  uint64_t udp_rx_packets = 0;  // packets received from anyone (each one of a GRO datagram)
  uint64_t udp_rx_bytes = 0;
  uint64_t tun_tx_packets = 0;  // peer packets delivered to the TUN (not our ICMP errors)
  uint64_t tun_tx_bytes = 0;
  uint64_t drop_unknown_source = 0;  // datagram from an address that is not a peer's
  // inner packet whose source is not in the sending peer's subnet, or whose destination is not
  // in ours (someone spoofing a peer's address, or a peer relaying for others)
  uint64_t drop_foreign_inner = 0;
  uint64_t drop_tun_write_error = 0;
  uint64_t gro_packets = 0;  // TUN writes that merged several TCP segments into one
  // both directions
  uint64_t drop_malformed = 0;     // < 20 bytes, not IPv4, bad header or truncated
  uint64_t icmp_sent = 0;          // ICMP errors written into the TUN
  uint64_t icmp_rate_limited = 0;  // ICMP errors not sent: over kIcmpPerSecond
  uint64_t io_errors = 0;          // unexpected read/recv errors
};

class UdpProxy {
 public:
  // One change to the peer table: `peer` set = route `subnet` to it, nullopt = remove `subnet`.
  struct RouteChange {
    IP4Net subnet;
    std::optional<UdpEndpoint> peer;
  };

  // Takes ownership of `tun` (opened with IFF_TUN|IFF_NO_PI, plus IFF_VNET_HDR when
  // `tun_vnet_hdr`; made non-blocking here) and `udp` (a bound AF_INET datagram socket; UDP GRO
  // is switched on here when available). `tun_addr` is the source address of the ICMP errors the
  // proxy writes into the TUN. Throws BackendError if the TUN cannot be made non-blocking or the
  // eventfd cannot be created; both fds are then closed.
  UdpProxy(UniqueFd tun, UniqueFd udp, IP4 tun_addr, bool tun_vnet_hdr = false);
  // Stops the threads, then closes the fds.
  ~UdpProxy();
  UdpProxy(const UdpProxy&) = delete;
  UdpProxy& operator=(const UdpProxy&) = delete;

  // Starts the two forwarding threads. Throws BackendError if already started or a thread cannot
  // be created (the proxy is then stopped for good).
  void start();
  // Wakes and joins the forwarding threads. Idempotent; the proxy cannot be restarted.
  void stop();

  // Applies `changes` in order and publishes the resulting table as one snapshot.
  void apply(const std::vector<RouteChange>& changes) EXCLUDES(writer_mu_);
  // Replaces the whole table.
  void replace_all(const std::vector<std::pair<IP4Net, UdpEndpoint>>& routes) EXCLUDES(writer_mu_);
  // The source address of generated ICMP errors (our lease's network address).
  void set_tun_addr(IP4 addr) { tun_addr_.store(addr.value, std::memory_order_relaxed); }
  // Our lease's subnet: a peer's packet is delivered only if its destination lies in it (and
  // its source in that peer's subnet). Until it is set, destinations are not checked.
  void set_local_subnet(const IP4Net& subnet) EXCLUDES(writer_mu_);
  // ICMP errors the proxy generates (no route, TTL exceeded): at most this many per second, in
  // bursts of up to kIcmpBurst, so a flood of undeliverable packets is not answered in kind.
  static constexpr double kIcmpPerSecond = 100;
  static constexpr double kIcmpBurst = 50;

  // The endpoint the TUN->UDP path would use for `dst` (longest prefix match), for diagnostics.
  std::optional<UdpEndpoint> lookup(IP4 dst) const;
  size_t route_count() const;
  UdpProxyStats stats() const;
  // Why a forwarding thread gave up (several reasons joined with "; "); "" while both run and
  // after a clean stop().
  std::string failure() const EXCLUDES(failure_mu_);

 private:
  struct Snapshot;
  struct TunToUdpCounters;
  struct UdpToTunCounters;

  class TxBatch;
  class TunReader;
  class RxBatch;

  void run_tun_to_udp();
  void run_udp_to_tun();
  // Returns the current snapshot if `*seen` is out of date (and updates it), else `current`.
  std::shared_ptr<const Snapshot> refresh(std::shared_ptr<const Snapshot> current,
                                          uint64_t* seen) const;
  // The current snapshot (a copy of the pointer, taken under snap_mu_).
  std::shared_ptr<const Snapshot> snapshot() const EXCLUDES(snap_mu_);
  // Installs `snap`; only the writers (apply, replace_all) call it, one at a time.
  void publish(std::shared_ptr<const Snapshot> snap) REQUIRES(writer_mu_) EXCLUDES(snap_mu_);
  void fail(const std::string& why) EXCLUDES(failure_mu_);
  // Writes an ICMP error about `pkt` into the TUN; returns true if one was written.
  bool send_icmp_error(const uint8_t* pkt, size_t len, uint8_t type, uint8_t code,
                       uint8_t* scratch);
  // Writes one IPv4 packet to the TUN (behind a plain virtio-net header in vnet mode).
  bool write_tun(const uint8_t* pkt, size_t len);

  UniqueFd tun_;
  UniqueFd udp_;
  UniqueFd stop_fd_;  // eventfd, readable once stop() is called
  std::atomic<uint32_t> tun_addr_;
  // The ICMP token bucket; only the TUN->UDP thread (send_icmp_error) touches it.
  double icmp_tokens_ = kIcmpBurst;
  std::chrono::steady_clock::time_point icmp_refilled_{};
  const bool vnet_;       // every TUN read and write starts with a virtio-net header
  bool udp_gro_ = false;  // UDP_GRO is on: datagrams may carry several packets
  bool udp_gso_ = true;   // UDP_SEGMENT works (cleared on the first refusal)

  Mutex writer_mu_;        // serializes apply()/replace_all(), the only writers of snap_
  mutable Mutex snap_mu_;  // held only to copy or swap the pointer
  std::shared_ptr<const Snapshot> snap_ GUARDED_BY(snap_mu_);
  std::atomic<uint64_t> version_{1};

  std::unique_ptr<TunToUdpCounters> out_;
  std::unique_ptr<UdpToTunCounters> in_;

  mutable Mutex failure_mu_;
  std::string failure_ GUARDED_BY(failure_mu_);

  std::thread tun_thread_;
  std::thread udp_thread_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace flannel
