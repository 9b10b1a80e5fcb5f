#include "backends/udp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "backends/backend.h"
#include "core/ip4_prefix_table.h"
#include "core/ipv4_packet.h"

namespace flannel {
namespace {

constexpr size_t kBufSize = 65536;  // any IPv4 packet / UDP datagram fits whole
constexpr int kBatch = 32;          // packets per recvmmsg/sendmmsg

void add(std::atomic<uint64_t>& counter, uint64_t n) {
  if (n) counter.fetch_add(n, std::memory_order_relaxed);
}
uint64_t get(const std::atomic<uint64_t>& counter) { return counter.load(std::memory_order_relaxed); }

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

// The peer table as the forwarding threads see it. Immutable once published.
struct UdpProxy::Snapshot {
  IP4PrefixTable<UdpEndpoint> routes;
  std::unordered_map<uint32_t, uint32_t> sources;  // peer address -> number of subnets it holds

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
  std::atomic<uint64_t> icmp_sent{0}, io_errors{0};
};
struct alignas(64) UdpProxy::UdpToTunCounters {
  std::atomic<uint64_t> rx_packets{0}, rx_bytes{0}, tx_packets{0}, tx_bytes{0};
  std::atomic<uint64_t> unknown_source{0}, write_error{0}, malformed{0}, io_errors{0};
};

UdpProxy::UdpProxy(UniqueFd tun, UniqueFd udp, IP4 tun_addr)
    : tun_(std::move(tun)),
      udp_(std::move(udp)),
      tun_addr_(tun_addr.value),
      snap_(std::make_shared<const Snapshot>()),
      out_(std::make_unique<TunToUdpCounters>()),
      in_(std::make_unique<UdpToTunCounters>()) {
  int flags = ::fcntl(tun_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(tun_.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
    throw BackendError("udp proxy: cannot make the TUN non-blocking: " + std::string(std::strerror(errno)));
  }
  stop_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_.valid()) throw BackendError("udp proxy: " + errno_text("eventfd"));
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
    std::lock_guard<std::mutex> lock(snap_mu_);
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
  std::lock_guard<std::mutex> lock(snap_mu_);
  return snap_;
}

void UdpProxy::apply(const std::vector<RouteChange>& changes) {
  std::lock_guard<std::mutex> writer(writer_mu_);
  auto next = std::make_shared<Snapshot>(*snap_);  // snap_ only changes under writer_mu_
  for (const auto& c : changes) {
    IP4Net subnet = c.subnet.network();
    if (c.peer) next->set(subnet, *c.peer);
    else next->remove(subnet);
  }
  publish(std::move(next));
}

void UdpProxy::replace_all(const std::vector<std::pair<IP4Net, UdpEndpoint>>& routes) {
  std::lock_guard<std::mutex> writer(writer_mu_);
  auto next = std::make_shared<Snapshot>();
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
  s.udp_rx_packets = get(in_->rx_packets);
  s.udp_rx_bytes = get(in_->rx_bytes);
  s.tun_tx_packets = get(in_->tx_packets);
  s.tun_tx_bytes = get(in_->tx_bytes);
  s.drop_unknown_source = get(in_->unknown_source);
  s.drop_tun_write_error = get(in_->write_error);
  s.drop_malformed = get(out_->malformed) + get(in_->malformed);
  s.icmp_sent = get(out_->icmp_sent);
  s.io_errors = get(out_->io_errors) + get(in_->io_errors);
  return s;
}

std::string UdpProxy::failure() const {
  std::lock_guard<std::mutex> lock(failure_mu_);
  return failure_;
}

void UdpProxy::fail(const std::string& why) {
  std::lock_guard<std::mutex> lock(failure_mu_);
  if (!failure_.empty()) failure_ += "; ";
  failure_ += why;
}

bool UdpProxy::send_icmp_error(const uint8_t* pkt, size_t len, uint8_t type, uint8_t code,
                               uint8_t* scratch) {
  ipv4::Header h;
  if (ipv4::parse_header(pkt, len, &h) != ipv4::ParseResult::kOk) return false;
  if (!ipv4::may_send_icmp_error(pkt, len, h)) return false;
  IP4 src{tun_addr_.load(std::memory_order_relaxed)};
  size_t n = ipv4::build_icmp_error(pkt, h, src, type, code, scratch, ipv4::kIcmpErrorMaxLen);
  if (n == 0) return false;
  for (;;) {
    ssize_t w = ::write(tun_.get(), scratch, n);
    if (w >= 0) return true;
    if (errno != EINTR) return false;
  }
}

void UdpProxy::run_tun_to_udp() try {
  std::vector<uint8_t> storage(size_t{kBatch} * kBufSize);
  std::array<uint8_t, ipv4::kIcmpErrorMaxLen> icmp{};
  std::array<mmsghdr, kBatch> msgs{};
  std::array<iovec, kBatch> iov{};
  std::array<sockaddr_in, kBatch> to{};
  std::shared_ptr<const Snapshot> snap;
  uint64_t seen = 0;
  TunToUdpCounters& c = *out_;
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

    uint64_t rx = 0, rx_bytes = 0, no_route = 0, ttl = 0, malformed = 0, icmp_sent = 0;
    int n = 0;
    while (n < kBatch) {
      uint8_t* buf = storage.data() + size_t(n) * kBufSize;
      ssize_t got = ::read(tun_.get(), buf, kBufSize);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) add(c.io_errors, 1);
        break;
      }
      ++rx;
      rx_bytes += size_t(got);
      ipv4::Header h;
      if (ipv4::parse_header(buf, size_t(got), &h) != ipv4::ParseResult::kOk) {
        ++malformed;
        continue;
      }
      const UdpEndpoint* peer = snap->routes.lookup(h.dst);
      if (!peer) {
        ++no_route;
        icmp_sent += send_icmp_error(buf, size_t(got), ipv4::kIcmpDestUnreachable,
                                     ipv4::kCodeNetUnreachable, icmp.data());
        continue;
      }
      if (h.ttl <= 1) {  // we are one router hop: it would leave here with TTL 0
        ++ttl;
        icmp_sent += send_icmp_error(buf, size_t(got), ipv4::kIcmpTimeExceeded,
                                     ipv4::kCodeTtlExceeded, icmp.data());
        continue;
      }
      ipv4::decrement_ttl(buf);
      iov[n] = {buf, h.total_len};
      to[n] = {};
      to[n].sin_family = AF_INET;
      to[n].sin_port = htons(peer->port);
      to[n].sin_addr.s_addr = htonl(peer->addr.value);
      msgs[n] = {};
      msgs[n].msg_hdr.msg_name = &to[n];
      msgs[n].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      msgs[n].msg_hdr.msg_iov = &iov[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
      ++n;
    }

    uint64_t tx = 0, tx_bytes = 0, send_error = 0;
    int off = 0;
    while (off < n) {
      int sent = ::sendmmsg(udp_.get(), msgs.data() + off, unsigned(n - off), 0);
      if (sent < 0) {
        if (errno == EINTR) continue;
        ++send_error;  // this datagram is refused (e.g. no route to the peer): skip it
        ++off;
        continue;
      }
      for (int i = off; i < off + sent; ++i) {
        ++tx;
        tx_bytes += msgs[i].msg_len;
      }
      off += sent;
    }
    add(c.rx_packets, rx);
    add(c.rx_bytes, rx_bytes);
    add(c.tx_packets, tx);
    add(c.tx_bytes, tx_bytes);
    add(c.no_route, no_route);
    add(c.ttl_exceeded, ttl);
    add(c.malformed, malformed);
    add(c.send_error, send_error);
    add(c.icmp_sent, icmp_sent);
  }
} catch (const std::exception& e) {
  fail(std::string("TUN->UDP: ") + e.what());
}

void UdpProxy::run_udp_to_tun() try {
  std::vector<uint8_t> storage(size_t{kBatch} * kBufSize);
  std::array<mmsghdr, kBatch> msgs{};
  std::array<iovec, kBatch> iov{};
  std::array<sockaddr_in, kBatch> from{};
  for (int i = 0; i < kBatch; ++i) {
    iov[i] = {storage.data() + size_t(i) * kBufSize, kBufSize};
  }
  std::shared_ptr<const Snapshot> snap;
  uint64_t seen = 0;
  UdpToTunCounters& c = *in_;
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
    for (int i = 0; i < kBatch; ++i) {
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = ::recvmmsg(udp_.get(), msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) add(c.io_errors, 1);
      continue;  // a pending socket error is consumed by the failed call
    }
    snap = refresh(std::move(snap), &seen);

    uint64_t rx = 0, rx_bytes = 0, tx = 0, tx_bytes = 0, unknown = 0, malformed = 0, werr = 0;
    for (int i = 0; i < n; ++i) {
      const size_t len = msgs[i].msg_len;
      uint8_t* buf = storage.data() + size_t(i) * kBufSize;
      ++rx;
      rx_bytes += len;
      if (from[i].sin_family != AF_INET ||
          !snap->sources.contains(ntohl(from[i].sin_addr.s_addr))) {
        ++unknown;
        continue;
      }
      ipv4::Header h;
      if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ||
          ipv4::parse_header(buf, len, &h) != ipv4::ParseResult::kOk) {
        ++malformed;
        continue;
      }
      ssize_t w;
      do {
        w = ::write(tun_.get(), buf, h.total_len);
      } while (w < 0 && errno == EINTR);
      if (w < 0) {
        ++werr;
        continue;
      }
      ++tx;
      tx_bytes += h.total_len;
    }
    add(c.rx_packets, rx);
    add(c.rx_bytes, rx_bytes);
    add(c.tx_packets, tx);
    add(c.tx_bytes, tx_bytes);
    add(c.unknown_source, unknown);
    add(c.malformed, malformed);
    add(c.write_error, werr);
  }
} catch (const std::exception& e) {
  fail(std::string("UDP->TUN: ") + e.what());
}

}  // namespace flannel
