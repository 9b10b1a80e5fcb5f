#include "backends/process/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string_view>
#include <thread>
#include <utility>

extern char** environ;

namespace flannel {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kDefaultPath = "/bin:/usr/bin";  // glibc's execvp without PATH

std::string errno_text(int e) { return std::strerror(e); }

// Sole owner of a descriptor (this library links nothing of the project, so not UniqueFd).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// `fd` moved to 3 or above (close-on-exec), so that putting the child's ends on 0, 1 and 2 cannot
// overwrite one another when we were started with some of 0-2 closed. -1 stays -1.
int lift(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int e = errno;
  ::close(fd);
  errno = e;
  return high;
}

// A close-on-exec pipe with both ends at 3 or above. False (errno set) on failure.
bool make_pipe(Fd* read_end, Fd* write_end) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return false;
  read_end->reset(lift(p[0]));
  write_end->reset(lift(p[1]));
  return read_end->valid() && write_end->valid();
}

bool open_dev_null(Fd* fd) {
  fd->reset(lift(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  return fd->valid();
}

std::string not_found(const std::string& name) {
  const char* path = std::getenv("PATH");
  return name + ": not found in PATH (" + (path ? path : std::string("unset: ") + kDefaultPath) +
         ")";
}

void check_argv(const std::vector<std::string>& argv, const char* who) {
  if (argv.empty() || argv[0].empty())
    throw std::invalid_argument(std::string(who) + ": argv must name a program");
}

void check_spec(const ChildSpec& spec) {
  check_argv(spec.argv, "run_child");
  if (spec.timeout <= 0ms)
    throw std::invalid_argument("run_child: the timeout for `" + command_line(spec.argv) +
                                "` must be > 0, got " + std::to_string(spec.timeout.count()) +
                                " ms");
}

// ---- In the child, between clone and exec ---------------------------------------------------
// The child shares our memory until it execs (CLONE_VM): it only makes system calls, reads the
// ExecPlan built for it and writes its ChildFailure; it never allocates or takes a lock.
// IN_CHILD: these functions run on the child's own stack, which AddressSanitizer does not know;
// its instrumentation there (the bookkeeping before a [[noreturn]] call) would print a warning
// into the child's stderr, i.e. into the program's output. They touch no memory ASan could check
// better than the parent does.
#define IN_CHILD __attribute__((no_sanitize("address")))

// Why the child could not execute, written into the parent's memory.
struct ChildFailure {
  enum Step : int { kNone, kRedirect, kGroup, kExec };
  Step step = kNone;
  int error = 0;  // errno
};

[[noreturn]] IN_CHILD void fail_in_child(ChildFailure* failure, ChildFailure::Step step) {
  failure->error = errno;
  failure->step = step;
  ::_exit(127);
}

// Default action for every signal (ignored ones stay ignored across exec otherwise), then an
// empty mask: in that order, as the parent's handlers must never run in the child.
IN_CHILD void reset_signals() {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // fails for KILL/STOP
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

// Everything the child needs, built in the parent. Not movable: argv_/envp_ point into it.
class ExecPlan {
 public:
  ExecPlan(std::string path, const std::vector<std::string>& argv,
           const std::optional<std::vector<std::string>>& env)
      : path_(std::move(path)), args_(argv), env_(env.value_or(std::vector<std::string>{})) {
    for (auto& a : args_) argv_.push_back(a.data());
    argv_.push_back(nullptr);
    for (auto& e : env_) envp_.push_back(e.data());
    envp_.push_back(nullptr);
    envp_ptr_ = env ? envp_.data() : environ;
  }
  ExecPlan(const ExecPlan&) = delete;
  ExecPlan& operator=(const ExecPlan&) = delete;

  const std::string& path() const { return path_; }
  [[noreturn]] IN_CHILD void exec_in_child(ChildFailure* failure) const;

  std::array<int, 3> fds = {-1, -1, -1};  // put on the child's 0, 1, 2; -1: ours stays
  bool die_with_parent = false;
  bool own_group = false;  // the child leads a process group of its own (killed as one)
  pid_t parent = ::getpid();

 private:
  std::string path_;
  std::vector<std::string> args_, env_;
  std::vector<char*> argv_, envp_;
  char** envp_ptr_ = nullptr;
};

IN_CHILD void ExecPlan::exec_in_child(ChildFailure* failure) const {
  if (die_with_parent && (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != parent))
    ::_exit(127);  // the parent is already gone
  reset_signals();
  if (own_group && ::setpgid(0, 0) != 0) fail_in_child(failure, ChildFailure::kGroup);
  for (int i = 0; i < 3; ++i)
    if (fds[i] >= 0 && ::dup2(fds[i], i) < 0) fail_in_child(failure, ChildFailure::kRedirect);
  // Ours are all close-on-exec already; this catches those a library opened without it.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  ::execve(path_.c_str(), argv_.data(), envp_ptr_);
  fail_in_child(failure, ChildFailure::kExec);
}

struct CloneArgs {
  const ExecPlan* plan;
  ChildFailure* failure;
};

IN_CHILD int child_main(void* arg) {
  auto* args = static_cast<CloneArgs*>(arg);
  args->plan->exec_in_child(args->failure);
}

// ---- In the parent ---------------------------------------------------------------------------

enum class Waited { kExited, kRunning, kLost };

// Waits for `pid` to exit until `deadline` (a past one: just looks), polling: a child may close
// its output well before it exits. kLost if waitpid fails (someone else reaped it).
Waited wait_for(pid_t pid, Clock::time_point deadline, int* status) {
  auto nap = 1ms;
  for (;;) {
    pid_t got = ::waitpid(pid, status, WNOHANG);
    if (got == pid) return Waited::kExited;
    if (got < 0 && errno != EINTR) return Waited::kLost;
    if (Clock::now() >= deadline) return Waited::kRunning;
    std::this_thread::sleep_for(nap);
    nap = std::min<std::chrono::milliseconds>(nap * 2, 20ms);
  }
}

// Signals `pid` (with `group`, its whole process group: what it started too), waits until
// `deadline`, then SIGKILLs it (or the group) if needed and waits until it is gone.
ExitStatus stop_child(pid_t pid, int sig, Clock::time_point deadline, bool group = false) {
  int status = 0;
  const pid_t target = group ? -pid : pid;
  if (sig != 0) ::kill(target, sig);
  Waited w = wait_for(pid, deadline, &status);
  if (w == Waited::kRunning) {
    ::kill(target, SIGKILL);
    w = wait_for(pid, Clock::time_point::max(), &status);
  }
  return w == Waited::kExited ? ExitStatus::from_wait_status(status) : ExitStatus{};
}

std::string failure_text(const std::string& path, const ChildFailure& failure) {
  std::string what = failure.step == ChildFailure::kExec ? "cannot execute " + path
                     : failure.step == ChildFailure::kGroup
                         ? "cannot start " + path + ": setpgid"
                         : "cannot start " + path + ": redirecting its stdio";
  return what + ": " + errno_text(failure.error);
}

// Blocks every signal on this thread while it lives: none may reach one of our handlers in a
// child that shares our memory before it has put them back to their defaults.
class AllSignalsBlocked {
 public:
  AllSignalsBlocked() {
    sigset_t all;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old_);
  }
  ~AllSignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  AllSignalsBlocked(const AllSignalsBlocked&) = delete;
  AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;

 private:
  sigset_t old_;
};

// Starts `plan` as glibc's posix_spawn does, with clone(CLONE_VM | CLONE_VFORK) on a stack of its
// own: no copy of our address space (a fork() costs milliseconds per command in a large process,
// more on a loaded host), and this thread resumes once the child has exec'd or failed. The pid of
// the running program, or -1 with *error set (the child that failed is reaped).
pid_t start_child(const ExecPlan& plan, std::string* error) {
  std::vector<char> stack(64 * 1024);  // 16-byte aligned, as operator new aligns
  ChildFailure failure;
  CloneArgs args{&plan, &failure};
  pid_t pid = -1;
  int clone_errno = 0;
  {
    AllSignalsBlocked blocked;
    pid = ::clone(child_main, stack.data() + stack.size(), CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
    clone_errno = errno;
  }
  if (pid < 0) {
    *error = "cannot start " + plan.path() + ": clone: " + errno_text(clone_errno);
    return -1;
  }
  if (failure.step == ChildFailure::kNone) return pid;
  stop_child(pid, 0, Clock::time_point::max());
  *error = failure_text(plan.path(), failure);
  return -1;
}

// Blocks SIGPIPE on this thread while it lives and discards one raised meanwhile, so writing to
// a child that exited without reading its stdin fails with EPIPE instead of killing us.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigset_t pipe = sigpipe_set();
    ::pthread_sigmask(SIG_BLOCK, &pipe, &old_);
    was_pending_ = pending();
  }
  ~SigpipeBlocked() {
    if (!was_pending_ && pending()) {
      sigset_t pipe = sigpipe_set();
      timespec now{};
      ::sigtimedwait(&pipe, nullptr, &now);
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  static sigset_t sigpipe_set() {
    sigset_t s;
    ::sigemptyset(&s);
    ::sigaddset(&s, SIGPIPE);
    return s;
  }
  static bool pending() {
    sigset_t s;
    return ::sigpending(&s) == 0 && ::sigismember(&s, SIGPIPE) == 1;
  }
  sigset_t old_;
  bool was_pending_ = false;
};

// Our end of one of the child's stdin/stdout/stderr pipes.
struct Stream {
  Fd fd;                        // closed when done
  std::string* sink = nullptr;  // output: appended here
  std::string_view source;      // input: what is still to be written
};

// Moves what it can through a stream poll() found ready; closes it at EOF, on an error, or once
// all is written. A child that closed its stdin early (EPIPE) just does not get the rest.
void pump(Stream& s) {
  if (s.sink) {
    char buf[65536];
    ssize_t n = ::read(s.fd.get(), buf, sizeof buf);
    if (n > 0) s.sink->append(buf, static_cast<size_t>(n));
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) s.fd.reset();
    return;
  }
  ssize_t n = ::write(s.fd.get(), s.source.data(), s.source.size());
  if (n > 0) s.source.remove_prefix(static_cast<size_t>(n));
  if (n < 0 && errno != EINTR && errno != EAGAIN) s.source = {};
  if (s.source.empty()) s.fd.reset();
}

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, INT_MAX));
}

// Pumps the streams until all are closed (true) or the deadline passes (false).
bool pump_all(std::array<Stream, 3>& streams, Clock::time_point deadline) {
  for (;;) {
    std::array<pollfd, 3> fds{};
    std::array<Stream*, 3> of{};
    nfds_t n = 0;
    for (auto& s : streams) {
      if (!s.fd.valid()) continue;
      fds[n] = {s.fd.get(), static_cast<short>(s.sink ? POLLIN : POLLOUT), 0};
      of[n++] = &s;
    }
    if (n == 0) return true;
    int wait = ms_left(deadline);
    if (wait == 0) return false;
    if (::poll(fds.data(), n, wait) <= 0) continue;  // EINTR, or the deadline (checked above)
    for (nfds_t i = 0; i < n; ++i)
      if (fds[i].revents != 0) pump(*of[i]);
  }
}

// The child's stdin (a pipe fed with spec.stdin_data, or /dev/null), stdout (a pipe) and stderr
// (a pipe if captured, else ours): our ends in `ours`, the child's in `theirs`. False (errno
// set) if one cannot be made.
bool open_streams(const ChildSpec& spec, ChildResult& r, std::array<Stream, 3>& ours,
                  std::array<Fd, 3>& theirs) {
  if (spec.stdin_data.empty()) {
    if (!open_dev_null(&theirs[0])) return false;
  } else {
    if (!make_pipe(&theirs[0], &ours[0].fd)) return false;
    if (::fcntl(ours[0].fd.get(), F_SETFL, O_NONBLOCK) != 0) return false;
    ours[0].source = spec.stdin_data;
  }
  ours[1].sink = &r.out;
  if (!make_pipe(&ours[1].fd, &theirs[1])) return false;
  if (!spec.capture_stderr) return true;
  ours[2].sink = &r.err;
  return make_pipe(&ours[2].fd, &theirs[2]);
}

// Pumps the streams and reaps the child; kills it at the deadline.
void collect(pid_t pid, std::array<Stream, 3>& streams, Clock::time_point deadline,
             ChildResult& r) {
  int status = 0;
  Waited w = pump_all(streams, deadline) ? wait_for(pid, deadline, &status) : Waited::kRunning;
  if (w == Waited::kRunning) {
    r.timed_out = true;
    r.status = stop_child(pid, SIGKILL, Clock::now(), /*group=*/true);
  } else if (w == Waited::kExited) {
    r.status = ExitStatus::from_wait_status(status);
  }
}

std::string excerpt(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  size_t start = text.find_first_not_of(kSpace);
  if (start == std::string_view::npos) return "";
  text = text.substr(start, text.find_last_not_of(kSpace) - start + 1);
  if (text.size() <= 400) return std::string(text);
  return std::string(text.substr(0, 400)) + "...";
}

bool same_name(std::string_view a, std::string_view b) {
  return a.substr(0, a.find('=')) == b.substr(0, b.find('='));
}

}  // namespace

// ---- Public ----------------------------------------------------------------------------------

ExitStatus ExitStatus::from_wait_status(int status) {
  ExitStatus s;
  if (WIFEXITED(status)) s.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) s.signal = WTERMSIG(status);
  return s;
}

std::string ExitStatus::str() const {
  if (code >= 0) return "exited with status " + std::to_string(code);
  if (signal > 0) {
    const char* name = ::sigdescr_np(signal);
    return "killed by signal " + std::to_string(signal) + " (" + (name ? name : "unknown") + ")";
  }
  return "ended with an unknown status (it was reaped elsewhere: is SIGCHLD ignored?)";
}

std::string ChildResult::describe() const {
  std::string what = !error.empty() ? "could not be started: " + error
                     : timed_out    ? "did not finish within " + std::to_string(timeout.count()) +
                                       " ms and was killed"
                                 : status.str();
  std::string text = excerpt(err.empty() ? out : err);
  // Appended piece by piece: GCC 12 at -O3 misreads `"literal" + std::string&&` as an
  // overlapping memcpy (-Wrestrict, GCC bug 105329).
  std::string line = "`";
  line += command_line(argv);
  line += "` ";
  line += what;
  if (!text.empty()) line += ": " + text;
  return line;
}

ChildResult run_child(const ChildSpec& spec) {
  check_spec(spec);
  ChildResult r{.argv = spec.argv, .timeout = spec.timeout};
  auto path = find_program(spec.argv[0]);
  if (!path) {
    r.error = not_found(spec.argv[0]);
    return r;
  }
  const auto deadline = Clock::now() + spec.timeout;
  ExecPlan plan(*path, spec.argv, spec.env);
  plan.own_group = true;  // a timeout kills what the command started, too
  std::array<Stream, 3> ours;
  std::array<Fd, 3> theirs;
  if (!open_streams(spec, r, ours, theirs)) {
    r.error = "cannot start " + *path + ": " + errno_text(errno);
    return r;
  }
  for (int i = 0; i < 3; ++i) plan.fds[i] = theirs[i].get();
  SigpipeBlocked sigpipe_blocked;
  pid_t pid = start_child(plan, &r.error);
  for (auto& fd : theirs) fd.reset();  // else we would never see EOF on stdout
  if (pid > 0) collect(pid, ours, deadline, r);
  return r;
}

ChildProcess ChildProcess::spawn(const ProcessSpec& spec) {
  check_argv(spec.argv, "ChildProcess::spawn");
  auto path = find_program(spec.argv[0]);
  if (!path) throw ChildError(not_found(spec.argv[0]));
  ExecPlan plan(*path, spec.argv, spec.env);
  Fd dev_null;
  if (!open_dev_null(&dev_null))
    throw ChildError("cannot start " + *path + ": /dev/null: " + errno_text(errno));
  plan.fds[0] = dev_null.get();
  plan.die_with_parent = spec.die_with_parent;
  std::string error;
  pid_t pid = start_child(plan, &error);
  if (pid < 0) throw ChildError(error);
  return ChildProcess(pid);
}

ChildProcess::~ChildProcess() { terminate(2s); }

ChildProcess::ChildProcess(ChildProcess&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    terminate(2s);
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

std::optional<ExitStatus> ChildProcess::poll() {
  if (pid_ <= 0) return std::nullopt;
  int status = 0;
  Waited w = wait_for(pid_, Clock::time_point::min(), &status);
  if (w == Waited::kRunning) return std::nullopt;
  pid_ = -1;
  return w == Waited::kExited ? ExitStatus::from_wait_status(status) : ExitStatus{};
}

std::optional<ExitStatus> ChildProcess::terminate(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return std::nullopt;
  return stop_child(std::exchange(pid_, -1), SIGTERM, Clock::now() + grace);
}

std::vector<std::string> environment_with(const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    auto same = [&](const std::string& o) { return same_name(*e, o); };
    if (std::none_of(overrides.begin(), overrides.end(), same)) env.emplace_back(*e);
  }
  for (const auto& o : overrides)
    if (o.find('=') != std::string::npos) env.push_back(o);
  return env;
}

std::optional<std::string> find_program(const std::string& name,
                                        const std::vector<std::string>& fallback_dirs) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::stringstream entries(path ? path : kDefaultPath);
  std::vector<std::string> dirs;
  for (std::string dir; std::getline(entries, dir, ':');) dirs.push_back(dir.empty() ? "." : dir);
  dirs.insert(dirs.end(), fallback_dirs.begin(), fallback_dirs.end());
  for (const auto& dir : dirs) {
    std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return std::nullopt;
}

std::string command_line(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& word : argv) {
    if (!line.empty()) line += ' ';
    if (!word.empty() && word.find_first_of(" \t\n'\"") == std::string::npos) {
      line += word;
      continue;
    }
    line += '\'';
    for (char c : word) line += c == '\'' ? std::string("'\\''") : std::string(1, c);
    line += '\'';
  }
  return line;
}

}  // namespace flannel
