#include "daemon/agent/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace flannel {

bool sd_notify(const std::string& state, std::string* error) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return true;
  size_t len = std::strlen(path);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (len >= sizeof(addr.sun_path)) {
    if (error) *error = "NOTIFY_SOCKET path too long: " + std::string(path);
    return false;
  }
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (error) *error = std::string("sd_notify socket: ") + std::strerror(errno);
    return false;
  }
  socklen_t alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                       reinterpret_cast<sockaddr*>(&addr), alen);
  int saved = errno;
  ::close(fd);
  if (n < 0) {
    if (error) *error = "sd_notify to " + std::string(path) + ": " + std::strerror(saved);
    return false;
  }
  return true;
}

}  // namespace flannel
