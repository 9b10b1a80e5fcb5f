#include "tests/support/process.h"

#include "tests/support/wait.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace flannel::testing {
namespace {

std::string find_in_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
  std::stringstream ss(p);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string cand = dir + "/" + name;
    if (::access(cand.c_str(), X_OK) == 0) return cand;
  }
  for (const char* d : {"/usr/sbin/", "/sbin/", "/usr/bin/"}) {
    std::string cand = d + name;
    if (::access(cand.c_str(), X_OK) == 0) return cand;
  }
  return name;
}

}  // namespace

Process::Process(Spec spec) : spec_(std::move(spec)) {
  if (spec_.argv.empty()) throw std::runtime_error("Process: empty argv");
  // Everything the child needs is prepared before fork: the child only makes syscalls.
  std::string exe = find_in_path(spec_.argv[0]);
  std::vector<char*> argv;
  for (auto& a : spec_.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq) env[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
  }
  for (const auto& k : spec_.env_unset) env.erase(k);
  for (const auto& [k, v] : spec_.env_set) env[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  int ns_fd = -1;
  if (!spec_.netns.empty()) {
    std::string ns_path = "/var/run/netns/" + spec_.netns;
    ns_fd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0) throw std::runtime_error("cannot open " + ns_path + ": " + std::strerror(errno));
  }
  int out_fd = ::open(spec_.log_path.empty() ? "/dev/null" : spec_.log_path.c_str(),
                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out_fd < 0) {
    if (ns_fd >= 0) ::close(ns_fd);
    throw std::runtime_error("cannot open log " + spec_.log_path + ": " + std::strerror(errno));
  }
  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (ns_fd >= 0 && ::setns(ns_fd, CLONE_NEWNET) != 0) ::_exit(126);
    int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    ::execve(exe.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  if (ns_fd >= 0) ::close(ns_fd);
  ::close(out_fd);
}

Process::Process(Process&& other) noexcept
    : spec_(std::move(other.spec_)), pid_(other.pid_), exit_code_(other.exit_code_) {
  other.pid_ = -1;
}

Process::~Process() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
}

void Process::signal(int sig) const {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, sig);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  wait_until(
      [&] {
        int st = 0;
        if (::waitpid(pid_, &st, WNOHANG) != pid_) return false;
        exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return true;
      },
      timeout);
  return exit_code_;
}

bool Process::running() { return !wait(std::chrono::milliseconds(0)).has_value(); }

std::string Process::output() const {
  return spec_.log_path.empty() ? "" : read_file(spec_.log_path);
}

int run_command(const std::vector<std::string>& argv, std::string* out, const std::string& netns) {
  char tmpl[] = "/tmp/flannel-cmd-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd >= 0) ::close(fd);
  int code;
  {
    Process p({argv, {}, {}, netns, tmpl});
    code = p.wait(std::chrono::minutes(2)).value_or(-1);
  }
  if (out) *out = read_file(tmpl);
  ::unlink(tmpl);
  return code;
}

std::string ip_output(const std::string& netns, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  run_command(argv, &out, netns);
  std::istringstream in(out);
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    if (line.find("Peer netns reference is invalid") == std::string::npos) kept += line + "\n";
  }
  if (!out.empty() && out.back() != '\n' && !kept.empty()) kept.pop_back();
  return kept;
}

bool tcp_listening(const std::string& netns, int port) {
  std::string out;
  const int rc =
      run_command({"ss", "-H", "-l", "-t", "-n", "sport = :" + std::to_string(port)}, &out, netns);
  return rc == 0 && out.find_first_not_of(" \t\r\n") != std::string::npos;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace flannel::testing
