// UDP probes for the rules lab tests: a socket in a namespace (each datagram from its own
// source port, so each is a new conntrack flow), and source_seen(): which source address a
// datagram from one namespace arrives with in another.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/lab/rules_lab.h"

namespace flannel::testing {

// ---- UDP probes ----------------------------------------------------------------------------

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
};

inline SockAddr sockaddr_of(const std::string& addr, int port) {
  SockAddr a;
  if (addr.find(':') != std::string::npos) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET6, addr.c_str(), &s6->sin6_addr) != 1)
      throw std::runtime_error("bad address " + addr);
    a.len = sizeof(sockaddr_in6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&a.ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, addr.c_str(), &s4->sin_addr) != 1)
      throw std::runtime_error("bad address " + addr);
    a.len = sizeof(sockaddr_in);
  }
  return a;
}

inline std::string addr_str(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
  else ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  return buf;
}

// A UDP socket bound to addr:port (port 0 = any), opened in the current thread's namespace (a
// socket stays in the namespace it was made in).
class UdpSocket {
 public:
  UdpSocket(const std::string& addr, int port) {
    const SockAddr a = sockaddr_of(addr, port);
    fd_ = ::socket(a.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&a.ss), a.len) != 0) {
      const std::string err = std::strerror(errno);
      ::close(fd_);
      throw std::runtime_error("bind " + addr + ":" + std::to_string(port) + ": " + err);
    }
  }
  // The same, made inside `netns`.
  static UdpSocket in(const std::string& netns, const std::string& addr, int port) {
    EnterNetns enter(netns);
    return UdpSocket(addr, port);
  }
  UdpSocket(UdpSocket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  UdpSocket& operator=(UdpSocket&&) = delete;
  ~UdpSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool send_to(const std::string& addr, int port, const std::string& payload) const {
    const SockAddr a = sockaddr_of(addr, port);
    return ::sendto(fd_, payload.data(), payload.size(), 0,
                    reinterpret_cast<const sockaddr*>(&a.ss),
                    a.len) == static_cast<ssize_t>(payload.size());
  }
  // The source address of the next datagram within `timeout` ("" if none came).
  std::string receive_from(std::chrono::milliseconds timeout) const {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return "";
    char buf[256];
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    if (::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len) < 0)
      return "";
    return addr_str(from);
  }

 private:
  int fd_ = -1;
};

// Sends UDP datagrams from `from_addr` in namespace `from_ns` (a fresh socket, so a fresh flow,
// each time) to `to_addr` in `to_ns`, until one arrives; returns the source address the receiver
// saw ("" if none arrived within 5 s).
inline std::string source_seen(const std::string& from_ns, const std::string& from_addr,
                               const std::string& to_ns, const std::string& to_addr) {
  constexpr int kPort = 9997;
  UdpSocket sink = UdpSocket::in(to_ns, to_addr, kPort);
  std::string seen;
  wait_until(
      [&] {
        UdpSocket src = UdpSocket::in(from_ns, from_addr, 0);
        src.send_to(to_addr, kPort, "probe");
        seen = sink.receive_from(200ms);
        return !seen.empty();
      },
      5s);
  return seen;
}

}  // namespace flannel::testing
