// Child processes for tests: start a program (optionally inside a network namespace), capture
// its stderr+stdout to a file, signal it, wait for it with a deadline. A Process kills its child
// (SIGKILL) on destruction if it is still running, and the child gets SIGKILL if the test
// process dies (PR_SET_PDEATHSIG), so no test leaves a daemon behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace flannel::testing {

class Process {
 public:
  struct Spec {
    std::vector<std::string> argv;               // argv[0] is a path or a name in PATH
    std::map<std::string, std::string> env_set;  // added to (or replacing in) our environment
    std::vector<std::string> env_unset;          // removed from the environment
    std::string netns;                           // run inside /var/run/netns/<netns> if set
    std::string log_path;                        // stdout+stderr appended here ("" = /dev/null)
  };

  explicit Process(Spec spec);  // throws std::runtime_error if fork/exec setup fails
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&&) = delete;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const;
  // Waits up to `timeout` for exit; returns the exit code (128+N for a signal), or nullopt.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  bool running();
  // The captured output so far ("" if not captured).
  std::string output() const;
  const Spec& spec() const { return spec_; }

 private:
  Spec spec_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// Runs a command to completion (e.g. "ip netns add X"); returns exit code, output in *out.
int run_command(const std::vector<std::string>& argv, std::string* out = nullptr,
                const std::string& netns = "");

// Runs `ip <args>` in `netns` and returns what it printed, less the "Peer netns reference is
// invalid" lines iproute2 prints while it names link-netns peers and another test deletes a
// namespace: noise from parallel tests, never a fact about `netns`.
std::string ip_output(const std::string& netns, const std::vector<std::string>& args);

// True if a TCP socket listens on `port` in `netns` ("" = ours), as `ss -Hltn` shows it: what a
// test awaits after starting a server (iperf3 -s) before its client connects.
bool tcp_listening(const std::string& netns, int port);

// Reads a whole file ("" if missing).
std::string read_file(const std::string& path);

}  // namespace flannel::testing
