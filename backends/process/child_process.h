// The one way this project runs another program: argv only (no shell), the program found as
// execvp finds it, none of our descriptors left open in the child, the child always reaped.
//
//   run_child(spec)  runs a command to completion: stdin from a string (or /dev/null), stdout and
//                    stderr captured, killed with SIGKILL at the timeout. For iptables and the
//                    CNI delegate plugin.
//   ChildProcess     a long-running program (wireguard-go): stdin /dev/null, our stdout and
//                    stderr (its messages land in our log), stopped with SIGTERM, a grace
//                    period, then SIGKILL.
//
// The child starts with an empty signal mask and every signal at its default action: the agent
// blocks SIGINT/SIGTERM for sigwait and the CNI plugin ignores SIGPIPE, and a child must see
// those signals as any command does. A program that cannot be started (not in PATH, not
// executable, a bad interpreter) is reported as such, with the path and the errno text, never as
// an exit status 127 to be guessed at.
//
// Children are waited for by pid, so a process that ignores SIGCHLD (its children then reap
// themselves) gets ExitStatus{} ("unknown") instead of a status.
//
// Thread safety: run_child may run on any number of threads at once. A ChildProcess is used by
// one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace flannel {

// How a child ended.
struct ExitStatus {
  int code = -1;   // the exit status (0-255) if the child exited, else -1
  int signal = 0;  // the signal that killed it, else 0

  // From a waitpid() status.
  static ExitStatus from_wait_status(int status);
  bool success() const { return code == 0; }
  // "exited with status 1", "killed by signal 9 (Killed)"; for ExitStatus{} "ended with an
  // unknown status (...)".
  std::string str() const;
};

// A command to run to completion.
struct ChildSpec {
  // argv[0] names the program: used as it is if it contains a '/', else looked up in our PATH
  // (find_program()). It is passed to the program as written.
  std::vector<std::string> argv{};
  // The child's whole environment, "NAME=value" each; nullopt: ours. See environment_with().
  std::optional<std::vector<std::string>> env{};
  // Written to the child's stdin, which is then closed; "" gives the child /dev/null.
  std::string stdin_data{};
  // The child is killed with SIGKILL if it has not exited and closed its stdout and stderr by
  // then, with every process it started: it runs in a process group of its own, and the whole
  // group is killed (a script's own children too). Must be > 0.
  std::chrono::milliseconds timeout{0};
  // true: stderr is captured in ChildResult::err; false: the child writes to our stderr.
  bool capture_stderr = true;
};

struct ChildResult {
  std::vector<std::string> argv{};       // the command, for messages
  std::chrono::milliseconds timeout{0};  // as in the spec, for messages
  // Not empty: the program could not be started, e.g. "cannot execute /usr/sbin/iptables:
  // Permission denied" or "iptables: not found in PATH (/usr/bin:/bin)". Nothing else is set.
  std::string error{};
  bool timed_out = false;  // it was still running at the timeout and was killed
  ExitStatus status{};
  std::string out{}, err{};  // what it wrote (err only with capture_stderr)

  // Started, finished in time and exited with status 0.
  bool ok() const { return error.empty() && !timed_out && status.success(); }
  // For log lines and errors: the command, what happened and the captured output (stderr, else
  // stdout; trimmed, at most 400 characters), e.g. "`iptables -t nat -S FOO` exited with status
  // 1: iptables: No chain/target/match by that name."
  std::string describe() const;
};

// Runs spec.argv to completion and returns how it went. Output of any size is collected while
// stdin is written, so neither side blocks the other. A child that exits without reading its
// stdin is no error of ours (SIGPIPE is blocked on this thread meanwhile). Failures to start are
// returned in ChildResult::error, not thrown. Throws std::invalid_argument if argv is empty or
// the timeout is not > 0.
ChildResult run_child(const ChildSpec& spec);

// Thrown by ChildProcess::spawn when the program cannot be started.
class ChildError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A long-running child.
struct ProcessSpec {
  std::vector<std::string> argv{};                // as ChildSpec::argv
  std::optional<std::vector<std::string>> env{};  // as ChildSpec::env
  // The child gets SIGTERM when the thread that spawned it exits (PR_SET_PDEATHSIG: the kernel
  // ties it to that thread, not to the process), so no child outlives an agent that was killed.
  bool die_with_parent = false;
};

// Owns one running child: the destructor stops it (terminate(2 s)). Movable, not copyable.
class ChildProcess {
 public:
  ChildProcess() = default;  // no child
  // Starts spec.argv. Throws ChildError naming the program and the reason if it cannot be
  // started, std::invalid_argument if argv is empty.
  static ChildProcess spawn(const ProcessSpec& spec);
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The child's pid; -1 when there is none (never started, or reaped by poll()/terminate()).
  pid_t pid() const { return pid_; }
  // Does not block: how the child ended if it has (it is reaped, pid() becomes -1); nullopt
  // while it runs or if there is no child.
  std::optional<ExitStatus> poll();
  // SIGTERM, then SIGKILL if it is still running after `grace`; waits until it is gone and
  // returns how it ended (nullopt if there was no child).
  std::optional<ExitStatus> terminate(std::chrono::milliseconds grace);

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
};

// Our environment, with each "NAME=value" of `overrides` added or put in place of the variable
// of that name, and each bare "NAME" removed.
std::vector<std::string> environment_with(const std::vector<std::string>& overrides);

// The file execvp would run for `name`: `name` itself if it contains a '/'; else the first
// <dir>/<name> that is an executable regular file, for dir in our PATH ("/bin:/usr/bin" when
// PATH is unset; an empty entry is the current directory), then in `fallback_dirs`. nullopt if
// there is none.
std::optional<std::string> find_program(const std::string& name,
                                        const std::vector<std::string>& fallback_dirs = {});

// argv as one line for messages: words joined by spaces, a word with a space or quote (or an
// empty one) in single quotes.
std::string command_line(const std::vector<std::string>& argv);

}  // namespace flannel
