// WireguardGo: supervises one `wireguard-go -f <device>` child (Debian's userspace WireGuard),
// run through backends/process/ (ChildProcess) with stdin on /dev/null and our stdout/stderr.
// The child creates the TUN device and its UAPI socket /var/run/wireguard/<device>.sock; both go
// away when it exits. The child gets SIGTERM if the thread that started it dies
// (PR_SET_PDEATHSIG), and the destructor stops it (SIGTERM, then SIGKILL after 2 s) and removes
// a socket file it left, so no process or socket outlives the agent.
//
// Restarting is the owner's job: exited() reports a death (and why) without blocking; the owner
// calls start() again and re-applies the whole device configuration.
//
// Thread safety: one owner thread (the one that should take the child along when it dies);
// only restarts() may be read from another thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>

namespace flannel {

class ChildProcess;  // backends/process/child_process.h, which only this backend's sources see

class WireguardGo {
 public:
  explicit WireguardGo(std::string device, std::string binary = "wireguard-go");
  ~WireguardGo();
  WireguardGo(const WireguardGo&) = delete;
  WireguardGo& operator=(const WireguardGo&) = delete;

  // Starts the child (`binary` as found in PATH) and waits (up to 5 s) until its UAPI socket
  // accepts connections. Throws BackendError with the reason (binary missing or not executable,
  // early exit status) otherwise; a child that missed the 5 s is stopped first. Does nothing
  // while a child is already running. Every start after the first that launches a child counts
  // in restarts(), whether the child then comes up or not.
  void start();
  // Non-blocking: if the child has exited since start(), reaps it and returns why
  // ("exited with status 1", "killed by signal 9"); nullopt while it runs (or was never started).
  std::optional<std::string> exited();
  // SIGTERM, wait up to 2 s, SIGKILL; removes a leftover socket. Idempotent.
  void stop();

  pid_t pid() const;  // -1 when not running
  const std::string& device() const { return device_; }
  std::string socket_path() const;
  int restarts() const { return restarts_; }

 private:
  void wait_until_listening();
  std::string command() const;  // for messages: "/usr/bin/wireguard-go -f flannel-wg"

  std::string device_;
  std::string binary_;
  std::unique_ptr<ChildProcess> child_;  // the running (or exited, not yet reaped) child
  int starts_ = 0;
  std::atomic<int> restarts_ = 0;  // read by the metrics thread
};

}  // namespace flannel
