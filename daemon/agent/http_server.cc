#include "daemon/agent/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace flannel {
namespace {

using std::chrono::steady_clock;
constexpr size_t kMaxRequest = 8192;

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

bool request_complete(const std::string& in) {
  return in.find("\r\n\r\n") != std::string::npos || in.find("\n\n") != std::string::npos ||
         in.size() >= kMaxRequest;
}

// A listening socket on ip:port, IPv4 or IPv6. Throws std::runtime_error naming the address.
int listen_on(const std::string& ip, int port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  const bool v6 = ip.find(':') != std::string::npos;
  const std::string where = (v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) != 1)
      throw std::runtime_error("healthz: -healthz-ip=" + ip + " is not an IP address");
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, ip.c_str(), &a->sin_addr) != 1)
      throw std::runtime_error("healthz: -healthz-ip=" + ip + " is not an IP address");
    len = sizeof(sockaddr_in);
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    throw std::runtime_error("healthz: cannot listen on " + where + ": " + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (v6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 128) != 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error("healthz: cannot listen on " + where + ": " + std::strerror(e));
  }
  return fd;
}

int bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

}  // namespace

HttpServer::HttpServer(const std::string& ip, int port, Handler handler)
    : handler_(std::move(handler)) {
  listen_fd_ = listen_on(ip, port);
  port_ = bound_port(listen_fd_);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    int e = errno;
    ::close(listen_fd_);
    throw std::runtime_error(std::string("healthz: eventfd: ") + std::strerror(e));
  }
  thread_ = std::thread([this] { run(); });
}

HttpServer::~HttpServer() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  for (const auto& [fd, c] : connections_) ::close(fd);
  ::close(listen_fd_);
  ::close(wake_fd_);
}

void HttpServer::run() {
  std::vector<pollfd> fds;
  for (;;) {
    const bool room = connections_.size() < kMaxConnections;
    fds = {{listen_fd_, static_cast<short>(room ? POLLIN : 0), 0}, {wake_fd_, POLLIN, 0}};
    for (const auto& [fd, c] : connections_)
      fds.push_back({fd, static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
    if (::poll(fds.data(), fds.size(), poll_timeout_ms()) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      auto it = connections_.find(fds[i].fd);
      if (!on_ready(it->first, it->second)) {
        ::close(it->first);
        connections_.erase(it);
      }
    }
    const auto now = steady_clock::now();
    std::erase_if(connections_, [&](const auto& kv) {
      if (now < kv.second.deadline) return false;
      ::close(kv.first);  // a client too slow to send its request or read the answer
      return true;
    });
    if (fds[0].revents & POLLIN) accept_all();
  }
}

void HttpServer::accept_all() {
  while (connections_.size() < kMaxConnections) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;  // EAGAIN: none left (or a transient error: poll tells us again)
    connections_[fd].deadline = steady_clock::now() + kConnectionDeadline;
  }
}

int HttpServer::poll_timeout_ms() const {
  if (connections_.empty()) return -1;
  auto first = std::min_element(connections_.begin(), connections_.end(), [](auto& a, auto& b) {
                 return a.second.deadline < b.second.deadline;
               })->second.deadline;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(first - steady_clock::now()).count();
  return static_cast<int>(std::max<long>(ms, 0));
}

bool HttpServer::on_ready(int fd, Connection& c) {
  if (c.out.empty()) {
    char buf[1024];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n > 0) c.in.append(buf, static_cast<size_t>(n));
    if (n > 0 && !request_complete(c.in)) return true;
    if (n == 0 && c.in.empty()) return false;  // closed without asking anything
    c.out = respond(c.in);
  }
  ssize_t n = ::send(fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  c.sent += static_cast<size_t>(n);
  return c.sent < c.out.size();
}

std::string HttpServer::respond(const std::string& req) const {
  size_t sp1 = req.find(' ');
  size_t sp2 = sp1 == std::string::npos ? sp1 : req.find(' ', sp1 + 1);
  HttpResponse resp;
  if (sp2 == std::string::npos) {
    resp = {400, "bad request\n"};
  } else {
    std::string method = req.substr(0, sp1);
    std::string path = req.substr(sp1 + 1, sp2 - sp1 - 1);
    if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
    try {
      resp = handler_(method, path);
    } catch (const std::exception& e) {  // a broken handler answers 500, the server lives on
      resp = {500, std::string("internal error: ") + e.what() + "\n"};
    }
  }
  return "HTTP/1.1 " + std::to_string(resp.status) + " " + reason(resp.status) +
         "\r\nContent-Type: " + resp.content_type +
         "\r\nContent-Length: " + std::to_string(resp.body.size()) +
         "\r\nConnection: close\r\n\r\n" + resp.body;
}

}  // namespace flannel
