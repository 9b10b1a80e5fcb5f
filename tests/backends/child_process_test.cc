// The child-process runner (backends/process/child_process.h) with real programs: /bin/sh,
// /bin/sleep, cat, env, head. Waits are awaited (wait_until), not timed tightly; the only time
// bounds are far from what they tell apart (a killed `sleep 30` returns well within 10 s).
#include "backends/process/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/wait.h"

namespace flannel {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

ChildResult run(std::vector<std::string> argv, std::string stdin_data = "",
                std::chrono::milliseconds timeout = 20s) {
  return run_child(
      {.argv = std::move(argv), .stdin_data = std::move(stdin_data), .timeout = timeout});
}

ChildResult sh(const std::string& script) { return run({"/bin/sh", "-c", script}); }

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// True once `pid` is no process at all (not even a zombie waiting to be reaped).
bool gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// Puts the read end of a fresh pipe on our fd 0 while it lives (so that a child which inherits our
// stdin instead of getting /dev/null is seen, whatever stdin the test runner gave us).
class StdinReplaced {
 public:
  StdinReplaced() {
    saved_ = ::dup(0);
    if (::pipe(pipe_) == 0) ::dup2(pipe_[0], 0);
  }
  ~StdinReplaced() {
    ::dup2(saved_, 0);
    for (int fd : {saved_, pipe_[0], pipe_[1]}) ::close(fd);
  }

 private:
  int saved_ = -1;
  int pipe_[2] = {-1, -1};
};

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/flannel-child-test-XXXXXX";
    path_ = ::mkdtemp(tmpl) ? tmpl : "";
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---- run_child -------------------------------------------------------------------------------

TEST(ChildProcessRun, ExitStatusIsReported) {
  auto r = sh("exit 3");
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status.code, 3);
  EXPECT_EQ(r.status.signal, 0);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.describe(), "`/bin/sh -c 'exit 3'` exited with status 3");
  auto good = sh("exit 0");
  EXPECT_TRUE(good.ok()) << good.describe();
  EXPECT_EQ(good.status.code, 0);
}

TEST(ChildProcessRun, DeathBySignalIsReportedAsSuch) {
  auto r = sh("echo bye >&2; kill -USR1 $$");
  EXPECT_EQ(r.status.code, -1);
  EXPECT_EQ(r.status.signal, SIGUSR1);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.timed_out);
  EXPECT_TRUE(contains(r.describe(), "killed by signal 10 (User defined signal 1): bye"))
      << r.describe();
}

TEST(ChildProcessRun, StdoutAndStderrAreCapturedApart) {
  auto r = sh("echo out; echo err >&2; echo out2");
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "out\nout2\n");
  EXPECT_EQ(r.err, "err\n");
}

TEST(ChildProcessRun, DescribeQuotesStderrElseStdout) {
  auto both = sh("echo '  the out  '; echo ' the err ' >&2; exit 1");
  EXPECT_EQ(both.describe(), "`" + command_line(both.argv) + "` exited with status 1: the err");
  EXPECT_TRUE(contains(sh("echo only out; exit 1").describe(), "status 1: only out"));
  std::string d = sh("head -c 1000 /dev/zero | tr '\\0' x; exit 1").describe();
  EXPECT_TRUE(contains(d, "status 1: " + std::string(400, 'x') + "...")) << d;
  EXPECT_FALSE(contains(d, std::string(401, 'x'))) << d;
}

TEST(ChildProcessRun, OutputsLargerThanAPipeDoNotDeadlock) {
  // 1 MiB on stderr first, then 1 MiB on stdout: a runner that drains stdout before stderr
  // waits for an EOF that never comes while the child waits for room on stderr.
  auto r = sh("head -c 1048576 /dev/zero >&2; head -c 1048576 /dev/zero | tr '\\0' o");
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.err.size(), 1048576u);
  EXPECT_EQ(r.out, std::string(1048576, 'o'));
}

TEST(ChildProcessRun, StdinIsDeliveredWhileOutputIsRead) {
  // cat echoes as it reads: writing all 1 MiB before reading would fill both pipes and stall.
  std::string data;
  for (int i = 0; data.size() < (1u << 20); ++i) data += std::to_string(i) + "\n";
  auto r = run({"cat"}, data);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, data);
}

TEST(ChildProcessRun, NoStdinDataGivesDevNull) {
  StdinReplaced not_dev_null;
  auto r = sh("cat; readlink /proc/self/fd/0 >&2");
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "/dev/null\n");
}

TEST(ChildProcessRun, AChildThatIgnoresItsStdinIsNoErrorOfOurs) {
  // The pipe breaks under our writes: EPIPE, not a SIGPIPE that kills this test process.
  auto r = run({"true"}, std::string(1 << 20, 'x'));
  EXPECT_TRUE(r.ok()) << r.describe();
  sigset_t mask;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  EXPECT_FALSE(sigismember(&mask, SIGPIPE)) << "the runner left SIGPIPE blocked";
  sigset_t pending;
  ::sigpending(&pending);
  EXPECT_FALSE(sigismember(&pending, SIGPIPE)) << "a SIGPIPE is left pending";
}

TEST(ChildProcessRun, EnvironmentIsExactlyTheGivenOneOrOurs) {
  auto exact =
      run_child({.argv = {"/usr/bin/env"}, .env = {{"A=1", "B=two words"}}, .timeout = 20s});
  ASSERT_TRUE(exact.ok()) << exact.describe();
  EXPECT_EQ(exact.out, "A=1\nB=two words\n");

  ::setenv("FLANNEL_CHILD_TEST", "inherited", 1);
  auto ours = run({"/usr/bin/env"});
  ::unsetenv("FLANNEL_CHILD_TEST");
  EXPECT_TRUE(contains(ours.out, "\nFLANNEL_CHILD_TEST=inherited\n")) << ours.out;
}

TEST(ChildProcessRun, TimeoutKillsTheChildAndSaysSo) {
  auto t = Clock::now();
  // The shell prints its pid and becomes sleep (exec), so the pid is the process killed.
  auto r = run({"/bin/sh", "-c", "echo $$; exec /bin/sleep 30"}, "", 300ms);
  EXPECT_LT(Clock::now() - t, 10s);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.status.signal, SIGKILL);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.describe(), "` did not finish within 300 ms and was killed"))
      << r.describe();
  pid_t pid = std::atoi(r.out.c_str());
  ASSERT_GT(pid, 0) << r.out;
  EXPECT_TRUE(gone(pid)) << "pid " << pid << " still exists (not killed, or not reaped)";
}

// A command that starts children of its own (a script): the timeout kills them too, not only
// the process we started. This test process is their subreaper, so the orphaned grandchild is
// ours to reap: it is reaped promptly only if it was killed.
TEST(ChildProcessRun, TimeoutKillsWhatTheChildStartedToo) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  auto r = run({"/bin/sh", "-c", "/bin/sleep 30 & echo $!; wait"}, "", 300ms);
  EXPECT_TRUE(r.timed_out);
  pid_t grandchild = std::atoi(r.out.c_str());
  ASSERT_GT(grandchild, 0) << r.out;
  const bool reaped =
      wait_until([&] { return ::waitpid(grandchild, nullptr, WNOHANG) == grandchild; }, 5s);
  if (!reaped) ::kill(grandchild, SIGKILL);
  EXPECT_TRUE(reaped) << "the script's child " << grandchild << " outlived the timeout";
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST(ChildProcessRun, ZeroOrNegativeTimeoutIsRejected) {
  for (auto timeout : {0ms, -5ms}) {
    try {
      run({"true"}, "", timeout);
      FAIL() << "timeout " << timeout.count() << " ms accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(contains(e.what(), "the timeout for `true` must be > 0, got " +
                                         std::to_string(timeout.count()) + " ms"))
          << e.what();
    }
  }
  EXPECT_THROW(run({}), std::invalid_argument);
  EXPECT_THROW(run({""}), std::invalid_argument);
}

TEST(ChildProcessRun, AMissingProgramIsAnErrorNamingIt) {
  auto by_path = run({"/nonexistent/flannel-test/prog", "arg"});
  EXPECT_EQ(by_path.error,
            "cannot execute /nonexistent/flannel-test/prog: No such file or directory");
  EXPECT_EQ(by_path.status.code, -1) << "reported as an exit status";
  EXPECT_FALSE(by_path.ok());
  EXPECT_TRUE(contains(by_path.describe(),
                       "`/nonexistent/flannel-test/prog arg` could not be "
                       "started: cannot execute /nonexistent"))
      << by_path.describe();

  auto by_name = run({"flannel-test-no-such-program"});
  EXPECT_TRUE(contains(by_name.error, "flannel-test-no-such-program: not found in PATH ("))
      << by_name.error;
  EXPECT_FALSE(by_name.ok());
}

TEST(ChildProcessRun, AFileThatCannotBeExecutedIsAnErrorWithErrno) {
  TempDir dir;
  std::string file = dir.path() + "/not-executable";
  std::ofstream(file) << "#!/bin/sh\nexit 0\n";
  ::chmod(file.c_str(), 0644);
  EXPECT_EQ(run({file}).error, "cannot execute " + file + ": Permission denied");
  std::string bad = dir.path() + "/bad-interpreter";
  std::ofstream(bad) << "#!/nonexistent/flannel-test/sh\n";
  ::chmod(bad.c_str(), 0755);
  EXPECT_EQ(run({bad}).error, "cannot execute " + bad + ": No such file or directory");
}

TEST(ChildProcessRun, ProgramNamesAreLookedUpInPath) {
  TempDir dir;
  std::string prog = dir.path() + "/flannel-test-prog";
  std::ofstream(prog) << "#!/bin/sh\necho \"found as $0\"\n";
  ::chmod(prog.c_str(), 0755);
  std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", ("/nonexistent:" + dir.path() + ":" + old_path).c_str(), 1);
  auto r = run({"flannel-test-prog"});
  auto found = find_program("flannel-test-prog");
  ::setenv("PATH", old_path.c_str(), 1);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "found as " + prog + "\n");
  EXPECT_EQ(found, prog);
  EXPECT_EQ(find_program("flannel-test-prog", {"/nonexistent", dir.path()}), prog);
  EXPECT_EQ(find_program("flannel-test-prog"), std::nullopt);
  EXPECT_EQ(find_program("tmp", {"/"}), std::nullopt) << "a directory is no program";
  EXPECT_EQ(find_program("./x/y"), "./x/y");
  EXPECT_EQ(run({"sh", "-c", "echo $0"}).out, "sh\n") << "argv[0] is passed as written";
}

TEST(ChildProcessRun, TheChildGetsDefaultSignalsAndAnEmptyMask) {
  // As the agent does: SIGTERM blocked (sigwait) and SIGPIPE ignored.
  sigset_t term, old_mask;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &term, &old_mask);
  struct sigaction ignore {
  }, old_pipe{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &old_pipe);
  auto by_term = sh("kill -TERM $$; exit 0");
  auto by_pipe = sh("kill -PIPE $$; exit 0");
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  EXPECT_EQ(by_term.status.signal, SIGTERM) << by_term.describe();
  EXPECT_EQ(by_pipe.status.signal, SIGPIPE) << by_pipe.describe();
}

TEST(ChildProcessRun, OurDescriptorsDoNotLeakIntoTheChild) {
  int fd = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC, as a careless library would
  ASSERT_GE(fd, 3);
  auto r = sh("[ -e /proc/self/fd/" + std::to_string(fd) + " ] && echo leaked; ls /proc/self/fd");
  ::close(fd);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_FALSE(contains(r.out, "leaked")) << r.out;
}

TEST(ChildProcessRun, UncapturedStderrGoesToOurs) {
  TempDir dir;
  std::string file = dir.path() + "/stderr";
  int saved = ::dup(2);
  int log = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ::dup2(log, 2);
  auto r = run_child({.argv = {"/bin/sh", "-c", "echo to-err >&2; echo to-out"},
                      .timeout = 20s,
                      .capture_stderr = false});
  ::dup2(saved, 2);
  ::close(saved);
  ::close(log);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "to-out\n");
  EXPECT_EQ(r.err, "");
  std::stringstream written;
  written << std::ifstream(file).rdbuf();
  EXPECT_EQ(written.str(), "to-err\n");
}

// ---- ChildProcess ----------------------------------------------------------------------------

TEST(ChildProcessDaemon, TerminateStopsItWithSigterm) {
  auto child = ChildProcess::spawn({.argv = {"/bin/sleep", "30"}});
  pid_t pid = child.pid();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(child.poll(), std::nullopt);
  auto how = child.terminate(5s);
  ASSERT_TRUE(how);
  EXPECT_EQ(how->signal, SIGTERM);
  EXPECT_EQ(how->str(), "killed by signal 15 (Terminated)");
  EXPECT_EQ(child.pid(), -1);
  EXPECT_TRUE(gone(pid));
  EXPECT_EQ(child.terminate(5s), std::nullopt);  // no child any more
}

TEST(ChildProcessDaemon, TerminateFallsBackToSigkill) {
  TempDir dir;
  std::string ready = dir.path() + "/ready";
  auto child = ChildProcess::spawn(
      {.argv = {"/bin/sh", "-c", "trap '' TERM; touch " + ready + "; exec /bin/sleep 30"}});
  ASSERT_TRUE(wait_until([&] { return fs::exists(ready); }, 10s));
  pid_t pid = child.pid();
  auto how = child.terminate(200ms);
  ASSERT_TRUE(how);
  EXPECT_EQ(how->signal, SIGKILL);
  EXPECT_TRUE(gone(pid));
}

TEST(ChildProcessDaemon, PollReapsAnExitedChild) {
  auto child = ChildProcess::spawn({.argv = {"/bin/sh", "-c", "exit 4"}});
  pid_t pid = child.pid();
  std::optional<ExitStatus> how;
  ASSERT_TRUE(wait_until([&] { return (how = child.poll()).has_value(); }, 10s));
  EXPECT_EQ(how->code, 4);
  EXPECT_EQ(how->str(), "exited with status 4");
  EXPECT_EQ(child.pid(), -1);
  EXPECT_TRUE(gone(pid));
}

TEST(ChildProcessDaemon, StdinIsDevNullAndTheEnvironmentIsGiven) {
  TempDir dir;
  std::string out = dir.path() + "/out";
  StdinReplaced not_dev_null;
  auto child =
      ChildProcess::spawn({.argv = {"/bin/sh", "-c",
                                    "readlink /proc/self/fd/0 > " + out + ".tmp; echo $X >> " +
                                        out + ".tmp; mv " + out + ".tmp " + out},
                           .env = environment_with({"X=given"})});
  ASSERT_TRUE(wait_until([&] { return fs::exists(out); }, 10s));
  std::stringstream text;
  text << std::ifstream(out).rdbuf();
  EXPECT_EQ(text.str(), "/dev/null\ngiven\n");
}

TEST(ChildProcessDaemon, DestructorStopsTheChild) {
  pid_t pid = -1;
  {
    auto child = ChildProcess::spawn({.argv = {"/bin/sleep", "30"}});
    pid = child.pid();
    ChildProcess moved = std::move(child);
    EXPECT_EQ(child.pid(), -1);
    EXPECT_EQ(moved.pid(), pid);
  }
  EXPECT_TRUE(gone(pid));
}

TEST(ChildProcessDaemon, AMissingProgramThrowsNamingIt) {
  try {
    ChildProcess::spawn({.argv = {"/nonexistent/flannel-test/daemon"}});
    FAIL() << "expected ChildError";
  } catch (const ChildError& e) {
    EXPECT_STREQ(e.what(),
                 "cannot execute /nonexistent/flannel-test/daemon: No such file or directory");
  }
  EXPECT_THROW(ChildProcess::spawn({.argv = {"flannel-test-no-such-daemon"}}), ChildError);
  EXPECT_THROW(ChildProcess::spawn({}), std::invalid_argument);
}

TEST(ChildProcessDaemon, DiesWithTheThreadThatSpawnedIt) {
  ChildProcess child;
  std::thread([&] {
    child = ChildProcess::spawn({.argv = {"/bin/sleep", "30"}, .die_with_parent = true});
  }).join();
  ASSERT_GT(child.pid(), 0);
  std::optional<ExitStatus> how;
  ASSERT_TRUE(wait_until([&] { return (how = child.poll()).has_value(); }, 10s))
      << "the child outlived the thread that spawned it";
  EXPECT_EQ(how->signal, SIGTERM);
}

// ---- Helpers ---------------------------------------------------------------------------------

TEST(ChildProcessHelpers, EnvironmentWithAddsReplacesAndRemoves) {
  ::setenv("FLANNEL_CHILD_A", "old", 1);
  ::setenv("FLANNEL_CHILD_B", "gone", 1);
  auto env = environment_with({"FLANNEL_CHILD_A=new", "FLANNEL_CHILD_B", "FLANNEL_CHILD_C=added"});
  ::unsetenv("FLANNEL_CHILD_A");
  ::unsetenv("FLANNEL_CHILD_B");
  auto count = [&](const std::string& prefix) {
    return std::count_if(env.begin(), env.end(),
                         [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
  };
  EXPECT_EQ(count("FLANNEL_CHILD_A="), 1);
  EXPECT_NE(std::find(env.begin(), env.end(), "FLANNEL_CHILD_A=new"), env.end());
  EXPECT_EQ(count("FLANNEL_CHILD_B"), 0);
  EXPECT_NE(std::find(env.begin(), env.end(), "FLANNEL_CHILD_C=added"), env.end());
  EXPECT_GT(count("PATH="), 0);  // the rest of ours
}

TEST(ChildProcessHelpers, ExitStatusFromWaitStatus) {
  EXPECT_EQ(ExitStatus::from_wait_status(0x0100).str(), "exited with status 1");
  EXPECT_EQ(ExitStatus::from_wait_status(SIGKILL).str(), "killed by signal 9 (Killed)");
  EXPECT_TRUE(contains(ExitStatus{}.str(), "unknown status"));
  EXPECT_TRUE(ExitStatus::from_wait_status(0).success());
}

TEST(ChildProcessHelpers, CommandLineQuotesWhatNeedsIt) {
  EXPECT_EQ(command_line({"iptables", "-t", "nat", "-S"}), "iptables -t nat -S");
  EXPECT_EQ(command_line({"sh", "-c", "echo 'hi'", ""}), "sh -c 'echo '\\''hi'\\''' ''");
}

}  // namespace
}  // namespace flannel
