#include "backends/wireguard/wireguard_go.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "backends/backend.h"
#include "backends/wireguard/uapi.h"

extern char** environ;

namespace flannel {
namespace {

using namespace std::chrono_literals;

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exited with status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st))
    return "killed by signal " + std::to_string(WTERMSIG(st)) + " (" + strsignal(WTERMSIG(st)) +
           ")";
  return "stopped (status " + std::to_string(st) + ")";
}

}  // namespace

WireguardGo::WireguardGo(std::string device, std::string binary)
    : device_(std::move(device)), binary_(std::move(binary)) {}

WireguardGo::~WireguardGo() { stop(); }

std::string WireguardGo::socket_path() const { return uapi_socket_path(device_); }

void WireguardGo::start() {
  if (pid_ > 0) return;
  ::mkdir("/var/run/wireguard", 0755);  // wireguard-go makes it too; harmless if present
  // Everything the child needs is built before fork: the child only makes syscalls.
  std::vector<std::string> args{binary_, "-f", device_};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    if (std::strncmp(*e, "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=", 45) != 0 &&
        std::strncmp(*e, "WG_PROCESS_FOREGROUND=", 22) != 0 &&
        std::strncmp(*e, "LOG_LEVEL=", 10) != 0)
      env_strings.emplace_back(*e);
  }
  // We chose userspace on purpose; wireguard-go otherwise refuses to run beside the kernel module.
  env_strings.emplace_back("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1");
  env_strings.emplace_back("LOG_LEVEL=error");
  env_strings.emplace_back(
      "WG_PROCESS_FOREGROUND=1");  // as its own -f re-exec; also skips the banner
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = binary_.find('/') == std::string::npos ? "/usr/bin/" + binary_ : binary_;
  if (::access(exe.c_str(), X_OK) != 0) {
    throw BackendError("wireguard: cannot run " + exe + ": " + std::strerror(errno) +
                       " (install Debian's wireguard-go: apt-get install wireguard-go)");
  }

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw BackendError(std::string("wireguard: fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(exe.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  pid_ = pid;
  if (starts_++ > 0) ++restarts_;

  UapiClient client(socket_path());
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!client.reachable()) {
    if (auto why = exited()) {
      throw BackendError("wireguard: " + exe + " -f " + device_ + " " + *why +
                         " before its UAPI socket " + socket_path() +
                         " appeared (its output is in this log; is /dev/net/tun available?)");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      stop();
      throw BackendError("wireguard: " + exe + " -f " + device_ + " did not open " + socket_path() +
                         " within 5 s; stopped it");
    }
    std::this_thread::sleep_for(10ms);  // polling a socket that appears asynchronously
  }
}

std::optional<std::string> WireguardGo::exited() {
  if (pid_ <= 0) return std::nullopt;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == 0) return std::nullopt;
  pid_ = -1;
  if (r < 0) return std::string("vanished (waitpid: ") + std::strerror(errno) + ")";
  return describe_status(st);
}

void WireguardGo::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + 2s;
    while (!exited()) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
  }
  // Left behind only by a SIGKILLed child; never touch a socket of a process we did not start.
  if (starts_ > 0) ::unlink(socket_path().c_str());
}

}  // namespace flannel
