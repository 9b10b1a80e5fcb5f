#include "backends/wireguard/wireguard_go.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <utility>

#include "backends/backend.h"
#include "backends/process/child_process.h"
#include "backends/wireguard/uapi.h"

namespace flannel {
namespace {

using namespace std::chrono_literals;

ProcessSpec wireguard_go_spec(const std::string& binary, const std::string& device) {
  return {.argv = {binary, "-f", device},
          // We chose userspace on purpose: wireguard-go otherwise refuses to run beside the
          // kernel module. WG_PROCESS_FOREGROUND as its own -f re-exec sets it (no banner).
          .env = environment_with({"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1",
                                   "LOG_LEVEL=error", "WG_PROCESS_FOREGROUND=1"}),
          .die_with_parent = true};
}

}  // namespace

WireguardGo::WireguardGo(std::string device, std::string binary)
    : device_(std::move(device)), binary_(std::move(binary)) {}

WireguardGo::~WireguardGo() { stop(); }

std::string WireguardGo::socket_path() const { return uapi_socket_path(device_); }

pid_t WireguardGo::pid() const { return child_ ? child_->pid() : -1; }

std::string WireguardGo::command() const {
  return command_line({find_program(binary_).value_or(binary_), "-f", device_});
}

void WireguardGo::start() {
  if (pid() > 0) return;
  ::mkdir("/var/run/wireguard", 0755);  // wireguard-go makes it too; harmless if present
  try {
    child_ =
        std::make_unique<ChildProcess>(ChildProcess::spawn(wireguard_go_spec(binary_, device_)));
  } catch (const ChildError& e) {
    throw BackendError(std::string("wireguard: ") + e.what() +
                       " (install Debian's wireguard-go: apt-get install wireguard-go)");
  }
  if (starts_++ > 0) ++restarts_;
  wait_until_listening();
}

void WireguardGo::wait_until_listening() {
  UapiClient client(socket_path());
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!client.reachable()) {
    if (auto why = exited()) {
      throw BackendError("wireguard: " + command() + " " + *why + " before its UAPI socket " +
                         socket_path() +
                         " appeared (its output is in this log; is /dev/net/tun available?)");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      stop();
      throw BackendError("wireguard: " + command() + " did not open " + socket_path() +
                         " within 5 s; stopped it");
    }
    std::this_thread::sleep_for(10ms);  // polling a socket that appears asynchronously
  }
}

std::optional<std::string> WireguardGo::exited() {
  if (!child_) return std::nullopt;
  auto how = child_->poll();
  if (!how) return std::nullopt;
  child_.reset();
  return how->str();
}

void WireguardGo::stop() {
  if (child_) child_->terminate(2s);
  child_.reset();
  // Left behind only by a SIGKILLed child; never touch a socket of a process we did not start.
  if (starts_ > 0) ::unlink(socket_path().c_str());
}

}  // namespace flannel
