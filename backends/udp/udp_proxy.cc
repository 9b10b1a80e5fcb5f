#include "backends/udp/udp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "backends/backend.h"
#include "backends/udp/ip4_prefix_table.h"
#include "backends/udp/ipv4_offload.h"
#include "backends/udp/ipv4_packet.h"

namespace flannel {
namespace {

using ipv4::VnetHeader;

constexpr size_t kBufSize = 65536;  // any IPv4 packet / UDP datagram fits whole
constexpr int kBatch = 32;          // datagrams per recvmmsg
constexpr int kMaxReads = 64;       // TUN reads per send batch, so latency stays bounded
constexpr size_t kMaxUdpPayload = 65507;
constexpr size_t kMaxGsoSegments = 64;  // UDP_MAX_SEGMENTS of older kernels

void bump(std::atomic<uint64_t>& counter, uint64_t n) {
  if (n) counter.fetch_add(n, std::memory_order_relaxed);
}
uint64_t get(const std::atomic<uint64_t>& counter) {
  return counter.load(std::memory_order_relaxed);
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

// The peer table as the forwarding threads see it. Immutable once published.
struct UdpProxy::Snapshot {
  IP4PrefixTable<UdpEndpoint> routes;
  std::unordered_map<uint32_t, uint32_t> sources;  // peer address -> number of subnets it holds
  std::optional<IP4Net> local;                     // our lease's subnet, once known

  // A peer's inner packet may enter the pod network only from that peer's subnet and to ours.
  bool inner_allowed(uint32_t from, const ipv4::Header& h) const {
    const UdpEndpoint* owner = routes.lookup(h.src);
    if (!owner || owner->addr.value != from) return false;
    return !local || local->contains(h.dst);
  }

  void add_source(IP4 a) { ++sources[a.value]; }
  void drop_source(IP4 a) {
    auto it = sources.find(a.value);
    if (it != sources.end() && --it->second == 0) sources.erase(it);
  }
  void set(const IP4Net& subnet, const UdpEndpoint& peer) {
    if (const UdpEndpoint* old = routes.find(subnet)) drop_source(old->addr);
    routes.insert(subnet, peer);
    add_source(peer.addr);
  }
  void remove(const IP4Net& subnet) {
    if (const UdpEndpoint* old = routes.find(subnet)) {
      drop_source(old->addr);
      routes.erase(subnet);
    }
  }
};

// Each direction's counters live on their own cache lines, written by one thread only.
struct alignas(64) UdpProxy::TunToUdpCounters {
  std::atomic<uint64_t> rx_packets{0}, rx_bytes{0}, tx_packets{0}, tx_bytes{0};
  std::atomic<uint64_t> no_route{0}, ttl_exceeded{0}, send_error{0}, malformed{0};
  std::atomic<uint64_t> icmp_sent{0}, io_errors{0}, tso{0}, icmp_limited{0};
};
struct alignas(64) UdpProxy::UdpToTunCounters {
  std::atomic<uint64_t> rx_packets{0}, rx_bytes{0}, tx_packets{0}, tx_bytes{0};
  std::atomic<uint64_t> unknown_source{0}, write_error{0}, malformed{0}, io_errors{0}, gro{0},
      foreign_inner{0};
};

UdpProxy::UdpProxy(UniqueFd tun, UniqueFd udp, IP4 tun_addr, bool tun_vnet_hdr)
    : tun_(std::move(tun)),
      udp_(std::move(udp)),
      tun_addr_(tun_addr.value),
      vnet_(tun_vnet_hdr),
      snap_(std::make_shared<const Snapshot>()),
      out_(std::make_unique<TunToUdpCounters>()),
      in_(std::make_unique<UdpToTunCounters>()) {
  int flags = ::fcntl(tun_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(tun_.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
    throw BackendError("udp proxy: cannot make the TUN non-blocking: " +
                       std::string(std::strerror(errno)));
  }
  stop_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_.valid()) throw BackendError("udp proxy: " + errno_text("eventfd"));
  int on = 1;  // Linux >= 5.0; without it every datagram is one packet, which is fine too
  udp_gro_ = ::setsockopt(udp_.get(), SOL_UDP, UDP_GRO, &on, sizeof(on)) == 0;
}

UdpProxy::~UdpProxy() { stop(); }

void UdpProxy::start() {
  if (started_) throw BackendError("udp proxy: already started");
  started_ = true;
  try {
    tun_thread_ = std::thread([this] { run_tun_to_udp(); });
    udp_thread_ = std::thread([this] { run_udp_to_tun(); });
  } catch (const std::system_error& e) {
    stop();
    throw BackendError(std::string("udp proxy: cannot start forwarding threads: ") + e.what());
  }
}

void UdpProxy::stop() {
  if (stopped_) return;
  stopped_ = true;
  uint64_t one = 1;
  // The eventfd stays readable from now on, so both threads see it at their next poll().
  if (::write(stop_fd_.get(), &one, sizeof(one)) < 0) {
    // Cannot happen for a fresh eventfd; the joins below would then hang, so say so loudly.
    fail(errno_text("udp proxy: cannot signal stop"));
  }
  if (tun_thread_.joinable()) tun_thread_.join();
  if (udp_thread_.joinable()) udp_thread_.join();
}

void UdpProxy::publish(std::shared_ptr<const Snapshot> snap) {
  {
    MutexLock lock(&snap_mu_);
    snap_.swap(snap);
  }
  version_.fetch_add(1, std::memory_order_release);
  // The old snapshot (now in `snap`) is freed here, or by the last forwarding thread using it.
}

std::shared_ptr<const UdpProxy::Snapshot> UdpProxy::refresh(std::shared_ptr<const Snapshot> current,
                                                            uint64_t* seen) const {
  uint64_t v = version_.load(std::memory_order_acquire);
  if (v == *seen && current) return current;
  *seen = v;  // if a writer publishes right now we get the newer table and reload once more
  return snapshot();
}

std::shared_ptr<const UdpProxy::Snapshot> UdpProxy::snapshot() const {
  MutexLock lock(&snap_mu_);
  return snap_;
}

void UdpProxy::apply(const std::vector<RouteChange>& changes) {
  MutexLock writer(&writer_mu_);
  auto next = std::make_shared<Snapshot>(*snapshot());  // snap_ only changes under writer_mu_
  for (const auto& c : changes) {
    IP4Net subnet = c.subnet.network();
    if (c.peer) next->set(subnet, *c.peer);
    else next->remove(subnet);
  }
  publish(std::move(next));
}

void UdpProxy::set_local_subnet(const IP4Net& subnet) {
  MutexLock writer(&writer_mu_);
  auto next = std::make_shared<Snapshot>(*snapshot());
  next->local = subnet.network();
  publish(std::move(next));
}

void UdpProxy::replace_all(const std::vector<std::pair<IP4Net, UdpEndpoint>>& routes) {
  MutexLock writer(&writer_mu_);
  auto next = std::make_shared<Snapshot>();
  next->local = snapshot()->local;
  for (const auto& [subnet, peer] : routes) next->set(subnet.network(), peer);
  publish(std::move(next));
}

std::optional<UdpEndpoint> UdpProxy::lookup(IP4 dst) const {
  uint64_t seen = 0;
  auto snap = refresh(nullptr, &seen);
  if (const UdpEndpoint* p = snap->routes.lookup(dst)) return *p;
  return std::nullopt;
}

size_t UdpProxy::route_count() const {
  uint64_t seen = 0;
  return refresh(nullptr, &seen)->routes.size();
}

UdpProxyStats UdpProxy::stats() const {
  UdpProxyStats s;
  s.tun_rx_packets = get(out_->rx_packets);
  s.tun_rx_bytes = get(out_->rx_bytes);
  s.udp_tx_packets = get(out_->tx_packets);
  s.udp_tx_bytes = get(out_->tx_bytes);
  s.drop_no_route = get(out_->no_route);
  s.drop_ttl_exceeded = get(out_->ttl_exceeded);
  s.drop_send_error = get(out_->send_error);
  s.tso_packets = get(out_->tso);
  s.udp_rx_packets = get(in_->rx_packets);
  s.udp_rx_bytes = get(in_->rx_bytes);
  s.tun_tx_packets = get(in_->tx_packets);
  s.tun_tx_bytes = get(in_->tx_bytes);
  s.drop_unknown_source = get(in_->unknown_source);
  s.drop_foreign_inner = get(in_->foreign_inner);
  s.drop_tun_write_error = get(in_->write_error);
  s.gro_packets = get(in_->gro);
  s.drop_malformed = get(out_->malformed) + get(in_->malformed);
  s.icmp_sent = get(out_->icmp_sent);
  s.icmp_rate_limited = get(out_->icmp_limited);
  s.io_errors = get(out_->io_errors) + get(in_->io_errors);
  return s;
}

std::string UdpProxy::failure() const {
  MutexLock lock(&failure_mu_);
  return failure_;
}

void UdpProxy::fail(const std::string& why) {
  MutexLock lock(&failure_mu_);
  if (!failure_.empty()) failure_ += "; ";
  failure_ += why;
}

bool UdpProxy::send_icmp_error(const uint8_t* pkt, size_t len, uint8_t type, uint8_t code,
                               uint8_t* scratch) {
  ipv4::Header h;
  if (ipv4::parse_header(pkt, len, &h) != ipv4::ParseResult::kOk) return false;
  if (!ipv4::may_send_icmp_error(pkt, len, h)) return false;
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - icmp_refilled_).count();
  icmp_refilled_ = now;
  icmp_tokens_ = std::min(kIcmpBurst, icmp_tokens_ + elapsed * kIcmpPerSecond);
  if (icmp_tokens_ < 1) {
    bump(out_->icmp_limited, 1);
    return false;
  }
  icmp_tokens_ -= 1;
  IP4 src{tun_addr_.load(std::memory_order_relaxed)};
  size_t n = ipv4::build_icmp_error(pkt, h, src, type, code, scratch, ipv4::kIcmpErrorMaxLen);
  if (n == 0) return false;
  return write_tun(scratch, n);
}

bool UdpProxy::write_tun(const uint8_t* pkt, size_t len) {
  static const uint8_t kPlainVnet[VnetHeader::kLen] = {};  // no offload: a finished packet
  iovec iov[2] = {{const_cast<uint8_t*>(kPlainVnet), VnetHeader::kLen},
                  {const_cast<uint8_t*>(pkt), len}};
  for (;;) {
    ssize_t w = vnet_ ? ::writev(tun_.get(), iov, 2) : ::write(tun_.get(), pkt, len);
    if (w >= 0) return true;
    if (errno != EINTR) return false;
  }
}

// Datagrams on their way to peers: every packet is copied (or cut from a TSO super-packet) into
// one arena and described by one mmsghdr, and the whole batch leaves with one sendmmsg. A message
// holding several equal-size packets carries a UDP_SEGMENT control message (UDP GSO): the kernel
// sends them as separate datagrams, one packet each, exactly as if sent one by one.
class UdpProxy::TxBatch {
 public:
  static constexpr int kMaxMsgs = 64;
  static constexpr size_t kArenaSize = size_t{1} << 20;

  explicit TxBatch(UdpProxy& proxy) : proxy_(proxy), arena_(kArenaSize) {}

  // Room for `len` (<= 64 KiB) bytes, flushing first if the arena or the message table is full.
  uint8_t* reserve(size_t len) {
    if (n_ == kMaxMsgs || used_ + len > arena_.size()) flush();
    return arena_.data() + used_;
  }

  // Queues the `len` bytes at `data` (from reserve()) for `peer`: `segments` packets, each
  // `segment` bytes long but the last (`segment` is ignored for a single packet).
  void add(uint8_t* data, size_t len, const UdpEndpoint& peer, size_t segment, size_t segments) {
    const int i = n_++;
    used_ += len;
    iov_[i] = {data, len};
    to_[i] = {};
    to_[i].sin_family = AF_INET;
    to_[i].sin_port = htons(peer.port);
    to_[i].sin_addr.s_addr = htonl(peer.addr.value);
    msgs_[i] = {};
    msgs_[i].msg_hdr.msg_name = &to_[i];
    msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    msgs_[i].msg_hdr.msg_iov = &iov_[i];
    msgs_[i].msg_hdr.msg_iovlen = 1;
    segment_[i] = segment;
    segments_[i] = segments;
    if (segments > 1) {
      cmsghdr* c = reinterpret_cast<cmsghdr*>(ctrl_[i].buf);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      const uint16_t gso_size = static_cast<uint16_t>(segment);
      std::memcpy(CMSG_DATA(c), &gso_size, sizeof(gso_size));
      msgs_[i].msg_hdr.msg_control = c;
      msgs_[i].msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
    }
  }

  // Sends everything queued and adds the results to the proxy's counters.
  void flush() {
    uint64_t tx = 0, tx_bytes = 0, errors = 0;
    int off = 0;
    while (off < n_) {
      int sent = ::sendmmsg(proxy_.udp_.get(), msgs_.data() + off, unsigned(n_ - off), 0);
      if (sent < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        if (segments_[off] > 1 &&
            (err == EIO || err == EINVAL || err == ENOPROTOOPT || err == EOPNOTSUPP)) {
          // UDP GSO refused (an old kernel, or no checksum offload on the way out): send this
          // message one datagram per packet, and do not use GSO again.
          proxy_.udp_gso_ = false;
          send_one_by_one(off, &tx, &tx_bytes, &errors);
        } else {
          errors += segments_[off];  // e.g. no route to that peer: skip this datagram
        }
        ++off;
        continue;
      }
      for (int i = off; i < off + sent; ++i) {
        tx += segments_[i];
        tx_bytes += msgs_[i].msg_len;
      }
      off += sent;
    }
    n_ = 0;
    used_ = 0;
    bump(proxy_.out_->tx_packets, tx);
    bump(proxy_.out_->tx_bytes, tx_bytes);
    bump(proxy_.out_->send_error, errors);
  }

 private:
  void send_one_by_one(int i, uint64_t* tx, uint64_t* tx_bytes, uint64_t* errors) {
    const auto* base = static_cast<const uint8_t*>(iov_[i].iov_base);
    const size_t len = iov_[i].iov_len;
    for (size_t at = 0; at < len; at += segment_[i]) {
      const size_t n = std::min(segment_[i], len - at);
      ssize_t r;
      do {
        r = ::sendto(proxy_.udp_.get(), base + at, n, 0, reinterpret_cast<const sockaddr*>(&to_[i]),
                     sizeof(sockaddr_in));
      } while (r < 0 && errno == EINTR);
      if (r < 0) {
        ++*errors;
      } else {
        ++*tx;
        *tx_bytes += n;
      }
    }
  }

  struct Control {
    alignas(cmsghdr) char buf[CMSG_SPACE(sizeof(uint16_t))];
  };

  UdpProxy& proxy_;
  std::vector<uint8_t> arena_;
  size_t used_ = 0;
  int n_ = 0;
  std::array<mmsghdr, kMaxMsgs> msgs_{};
  std::array<iovec, kMaxMsgs> iov_{};
  std::array<sockaddr_in, kMaxMsgs> to_{};
  std::array<Control, kMaxMsgs> ctrl_{};
  std::array<size_t, kMaxMsgs> segment_{};
  std::array<size_t, kMaxMsgs> segments_{};
};

// The TUN->UDP side's buffers and counters for one burst of reads, and the steps that turn each
// packet read from the TUN device into datagrams queued on the TxBatch. Owned by run_tun_to_udp
// (one thread), allocated once when it starts so the loop allocates nothing.
class UdpProxy::TunReader {
 public:
  explicit TunReader(UdpProxy& proxy)
      : proxy_(proxy), in_(VnetHeader::kLen + kBufSize), batch_(std::make_unique<TxBatch>(proxy)) {}

  // Reads up to kMaxReads packets (until the TUN device has none), forwards them through `snap`,
  // sends what was queued and publishes the counters once.
  void burst(const Snapshot& snap) {
    counts_ = {};
    for (int reads = 0; reads < kMaxReads; ++reads) {
      ssize_t got = ::read(proxy_.tun_.get(), in_.data(), in_.size());
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) bump(proxy_.out_->io_errors, 1);
        break;
      }
      take(in_.data(), size_t(got), snap);
    }
    batch_->flush();
    publish();
  }

 private:
  struct Counts {
    uint64_t rx = 0, rx_bytes = 0, no_route = 0, ttl = 0, malformed = 0, icmp_sent = 0, tso = 0;
  };

  // One read: strips the virtio-net header (when the device has one) and forwards the packet.
  void take(uint8_t* pkt, size_t len, const Snapshot& snap) {
    VnetHeader v;
    if (proxy_.vnet_) {
      if (len < VnetHeader::kLen) {
        ++counts_.malformed;
        return;
      }
      v = VnetHeader::read(pkt);
      pkt += VnetHeader::kLen;
      len -= VnetHeader::kLen;
    }
    ++counts_.rx;
    counts_.rx_bytes += len;
    ipv4::Header h;
    if (ipv4::parse_header(pkt, len, &h) != ipv4::ParseResult::kOk) {
      ++counts_.malformed;
      return;
    }
    if (const UdpEndpoint* peer = route(pkt, len, h, snap)) forward(pkt, h, v, *peer);
  }

  // The peer that carries `h.dst`, with the TTL decremented; nullptr (and an ICMP error back to
  // the sender) when there is no route or the TTL runs out here, as a router does.
  const UdpEndpoint* route(uint8_t* pkt, size_t len, const ipv4::Header& h, const Snapshot& snap) {
    const UdpEndpoint* peer = snap.routes.lookup(h.dst);
    if (!peer) {
      ++counts_.no_route;
      counts_.icmp_sent += proxy_.send_icmp_error(pkt, len, ipv4::kIcmpDestUnreachable,
                                                  ipv4::kCodeNetUnreachable, icmp_.data());
      return nullptr;
    }
    if (h.ttl <= 1) {  // we are one router hop: it would leave here with TTL 0
      ++counts_.ttl;
      counts_.icmp_sent += proxy_.send_icmp_error(pkt, len, ipv4::kIcmpTimeExceeded,
                                                  ipv4::kCodeTtlExceeded, icmp_.data());
      return nullptr;
    }
    ipv4::decrement_ttl(pkt);
    return peer;
  }

  // Queues the packet for `peer`: a TSO super-packet cut into segments, else the packet itself
  // with its checksum completed when the kernel left it partial.
  void forward(uint8_t* pkt, const ipv4::Header& h, const VnetHeader& v, const UdpEndpoint& peer) {
    if (v.gso_type != VnetHeader::kGsoNone) {
      ipv4::TcpLayout t;
      if ((v.gso_type & ~VnetHeader::kGsoEcn) != VnetHeader::kGsoTcpV4 ||
          h.protocol != ipv4::kProtoTcp || v.gso_size == 0 || !ipv4::tcp_layout(pkt, h, &t)) {
        ++counts_.malformed;
        return;
      }
      if (t.payload_len > v.gso_size) {
        segment(pkt, h, t, v.gso_size, peer);
        return;
      }
      // A super-packet of a single segment is an ordinary packet (with a partial checksum).
    }
    if ((v.flags & VnetHeader::kNeedsCsum) &&
        !ipv4::complete_checksum(pkt, h.total_len, v.csum_start, v.csum_offset)) {
      ++counts_.malformed;
      return;
    }
    uint8_t* out = batch_->reserve(h.total_len);
    std::memcpy(out, pkt, h.total_len);
    batch_->add(out, h.total_len, peer, 0, 1);
  }

  // TSO: cut into MTU-sized packets (full checksums), sent with UDP GSO when possible.
  void segment(const uint8_t* pkt, const ipv4::Header& h, const ipv4::TcpLayout& t, size_t gso_size,
               const UdpEndpoint& peer) {
    ++counts_.tso;
    const size_t seg = h.header_len + t.tcp_header_len + gso_size;
    const size_t per_msg =
        proxy_.udp_gso_ ? std::max<size_t>(1, std::min(kMaxGsoSegments, kMaxUdpPayload / seg)) : 1;
    size_t offset = 0;
    while (offset < t.payload_len) {
      uint8_t* out = batch_->reserve(per_msg * seg);
      size_t written = 0;
      size_t k =
          ipv4::tcp_segment(pkt, h, t, gso_size, &offset, per_msg, out, per_msg * seg, &written);
      if (k == 0) break;  // cannot happen: a segment always fits per_msg * seg
      batch_->add(out, written, peer, seg, k);
    }
  }

  void publish() {
    TunToUdpCounters& c = *proxy_.out_;
    bump(c.rx_packets, counts_.rx);
    bump(c.rx_bytes, counts_.rx_bytes);
    bump(c.no_route, counts_.no_route);
    bump(c.ttl_exceeded, counts_.ttl);
    bump(c.malformed, counts_.malformed);
    bump(c.icmp_sent, counts_.icmp_sent);
    bump(c.tso, counts_.tso);
  }

  UdpProxy& proxy_;
  std::vector<uint8_t> in_;
  std::array<uint8_t, ipv4::kIcmpErrorMaxLen> icmp_{};
  std::unique_ptr<TxBatch> batch_;
  Counts counts_;
};

void UdpProxy::run_tun_to_udp() try {
  auto reader = std::make_unique<TunReader>(*this);
  std::shared_ptr<const Snapshot> snap;
  uint64_t seen = 0;
  pollfd fds[2] = {{tun_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fail(errno_text("TUN->UDP poll"));
      return;
    }
    if (fds[1].revents) return;
    if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      fail("TUN->UDP: the TUN device reported an error or went away");
      return;
    }
    snap = refresh(std::move(snap), &seen);
    reader->burst(*snap);
  }
} catch (const std::exception& e) { fail(std::string("TUN->UDP: ") + e.what()); }

// The UDP->TUN side's buffers for one recvmmsg batch, and the steps that turn its datagrams
// into packets written to the TUN device. Owned by run_udp_to_tun (one thread), allocated once
// when it starts so the loop allocates nothing.
class UdpProxy::RxBatch {
 public:
  explicit RxBatch(UdpProxy& proxy)
      : proxy_(proxy), storage_(size_t{kBatch} * kBufSize), merged_(VnetHeader::kLen + kBufSize) {
    for (int i = 0; i < kBatch; ++i) {
      iov_[i] = {storage_.data() + size_t(i) * kBufSize, kBufSize};
    }
    pkts_.reserve(4096);
    lens_.reserve(4096);
  }

  // Up to kBatch datagrams without blocking: recvmmsg's result (-1 with errno).
  int receive() {
    for (int i = 0; i < kBatch; ++i) {
      msgs_[i] = {};
      msgs_[i].msg_hdr.msg_name = &from_[i];
      msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
      msgs_[i].msg_hdr.msg_control = ctrl_[i].buf;
      msgs_[i].msg_hdr.msg_controllen = sizeof(ctrl_[i].buf);
    }
    return ::recvmmsg(proxy_.udp_.get(), msgs_.data(), kBatch, MSG_DONTWAIT, nullptr);
  }

  // The n datagrams received: the packets of known peers written to the TUN device in arrival
  // order, the rest counted; the counters published once per batch.
  void deliver(int n, const Snapshot& snap) {
    Counts c;
    pkts_.clear();
    lens_.clear();
    for (int i = 0; i < n; ++i) split(i, snap, &c);
    write_all(&c);
    c.publish(*proxy_.in_);
  }

 private:
  struct Control {
    alignas(cmsghdr) char buf[CMSG_SPACE(sizeof(int))];
  };
  // One batch's counts, published with one atomic add each.
  struct Counts {
    uint64_t rx = 0, rx_bytes = 0, tx = 0, tx_bytes = 0, unknown = 0, malformed = 0, werr = 0,
             gro = 0, foreign = 0;
    void publish(UdpToTunCounters& c) const {
      bump(c.rx_packets, rx);
      bump(c.rx_bytes, rx_bytes);
      bump(c.tx_packets, tx);
      bump(c.tx_bytes, tx_bytes);
      bump(c.unknown_source, unknown);
      bump(c.malformed, malformed);
      bump(c.write_error, werr);
      bump(c.gro, gro);
      bump(c.foreign_inner, foreign);
    }
  };

  // With UDP GRO a datagram may hold several packets of the segment size the kernel reports;
  // otherwise it is one packet of `len` bytes.
  size_t gro_segment(int i, size_t len) {
    size_t seg = len;
    if (!proxy_.udp_gro_) return seg;
    msghdr* hdr = &msgs_[i].msg_hdr;
    for (cmsghdr* cm = CMSG_FIRSTHDR(hdr); cm; cm = CMSG_NXTHDR(hdr, cm)) {
      if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
        int g = 0;
        std::memcpy(&g, CMSG_DATA(cm), sizeof(g));
        if (g > 0) seg = size_t(g);
      }
    }
    return seg;
  }

  // Datagram i into pkts_/lens_: only from a peer's public address (anyone else could inject
  // packets into the pod network), whole, and each inner packet a valid IPv4 header from that
  // peer's subnet to ours (a spoofed peer address alone is not enough).
  void split(int i, const Snapshot& snap, Counts* c) {
    const size_t len = msgs_[i].msg_len;
    const uint8_t* buf = storage_.data() + size_t(i) * kBufSize;
    size_t seg = gro_segment(i, len);
    const size_t count = seg == 0 || len == 0 ? 1 : (len + seg - 1) / seg;
    c->rx += count;
    c->rx_bytes += len;
    const uint32_t from = ntohl(from_[i].sin_addr.s_addr);
    if (from_[i].sin_family != AF_INET || !snap.sources.contains(from)) {
      c->unknown += count;
      return;
    }
    if (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) {
      c->malformed += count;
      return;
    }
    if (len == 0) {
      ++c->malformed;
      return;
    }
    if (seg == 0 || seg > len) seg = len;
    for (size_t at = 0; at < len; at += seg) {
      const size_t l = std::min(seg, len - at);
      ipv4::Header h;
      if (ipv4::parse_header(buf + at, l, &h) != ipv4::ParseResult::kOk) {
        ++c->malformed;
      } else if (!snap.inner_allowed(from, h)) {
        ++c->foreign;
      } else {
        pkts_.push_back(buf + at);
        lens_.push_back(h.total_len);
      }
    }
  }

  // Deliver in order; in vnet mode, runs of one TCP flow go in as one GSO packet.
  void write_all(Counts* c) {
    for (size_t k = 0; k < pkts_.size();) {
      const size_t run =
          proxy_.vnet_ ? ipv4::tcp_coalesce_count(&pkts_[k], &lens_[k], pkts_.size() - k) : 1;
      if (run >= 2 && write_coalesced(k, run, c)) {
        k += run;
        continue;
      }
      if (proxy_.write_tun(pkts_[k], lens_[k])) {
        ++c->tx;
        c->tx_bytes += lens_[k];
      } else {
        ++c->werr;
      }
      ++k;
    }
  }

  // The `run` packets from k as one GSO packet; false (nothing written) when they cannot be
  // merged, and they go one by one.
  bool write_coalesced(size_t k, size_t run, Counts* c) {
    size_t m = ipv4::tcp_coalesce(&pkts_[k], &lens_[k], run, merged_.data(), merged_.size());
    if (m == 0) return false;
    ssize_t w;
    do { w = ::write(proxy_.tun_.get(), merged_.data(), m); } while (w < 0 && errno == EINTR);
    if (w < 0) {
      c->werr += run;
    } else {
      ++c->gro;
      c->tx += run;
      for (size_t j = k; j < k + run; ++j) c->tx_bytes += lens_[j];
    }
    return true;
  }

  UdpProxy& proxy_;
  std::vector<uint8_t> storage_;  // kBatch datagram buffers of kBufSize
  std::vector<uint8_t> merged_;   // one coalesced GSO packet (vnet header + packet)
  std::array<mmsghdr, kBatch> msgs_{};
  std::array<iovec, kBatch> iov_{};
  std::array<sockaddr_in, kBatch> from_{};
  std::array<Control, kBatch> ctrl_{};
  std::vector<const uint8_t*> pkts_;  // the inner packets of one batch, in arrival order
  std::vector<size_t> lens_;
};

// The UDP->TUN thread: started by start(), one per proxy, until stop() signals stop_fd_ or the
// socket fails (then fail() records why).
void UdpProxy::run_udp_to_tun() try {
  auto batch = std::make_unique<RxBatch>(*this);
  std::shared_ptr<const Snapshot> snap;
  uint64_t seen = 0;
  pollfd fds[2] = {{udp_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};

  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fail(errno_text("UDP->TUN poll"));
      return;
    }
    if (fds[1].revents) return;
    if (fds[0].revents & POLLNVAL) {
      fail("UDP->TUN: the UDP socket is invalid");
      return;
    }
    int n = batch->receive();
    if (n < 0) {
      if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) bump(in_->io_errors, 1);
      continue;  // a pending socket error is consumed by the failed call
    }
    snap = refresh(std::move(snap), &seen);
    batch->deliver(n, *snap);
  }
} catch (const std::exception& e) { fail(std::string("UDP->TUN: ") + e.what()); }

}  // namespace flannel
