// Loopback TCP sockets for tests: one place that binds 127.0.0.1 on a kernel-chosen port.
#pragma once

#include <unistd.h>

#include <string>

namespace flannel::testing {

// A TCP socket bound to 127.0.0.1 on a free port, listening (backlog 16) when `listen` is true.
// Returns the fd (caller closes it) and sets *port. Throws std::runtime_error naming the failure.
int bind_loopback(int* port, bool listen = true);

// A loopback socket that accepts connections (the kernel completes the handshake) but never
// answers: a hung server, for timeout and failover tests.
class SilentServer {
 public:
  SilentServer() { fd_ = bind_loopback(&port_); }
  ~SilentServer() { ::close(fd_); }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace flannel::testing
