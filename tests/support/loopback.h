// Loopback TCP sockets for tests: one place that binds 127.0.0.1 on a kernel-chosen port.
#pragma once

namespace flannel::testing {

// A TCP socket bound to 127.0.0.1 on a free port, listening (backlog 16) when `listen` is true.
// Returns the fd (caller closes it) and sets *port. Throws std::runtime_error naming the failure.
int bind_loopback(int* port, bool listen = true);

}  // namespace flannel::testing
