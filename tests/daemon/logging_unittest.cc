// GCC 12 with -fsanitize reports a false -Wmaybe-uninitialized inside libstdc++'s <regex>
// (std::function in the NFA compiler); it must be silenced before any header is read.
// (Clang has no such warning, and -Werror would reject the unknown name.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// Logging: glog line layout, severities, -v / -vmodule gating, log files named like glog's.
#include "daemon/common/logging.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

namespace flannel {
namespace {

namespace fs = std::filesystem;

class LoggingTest : public ::testing::Test {
 protected:
  void use_capture(int v = 0, const std::string& vmodule = "") {
    out_.str("");
    set_logging_sink_for_test(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_), v, vmodule);
  }
  void TearDown() override { shutdown_logging(); }
  std::string captured() {
    logging_detail::logger()->flush();
    return out_.str();
  }
  std::ostringstream out_;
};

// I1122 01:27:54.476791    4729 main.cc:132] Lease acquired: 10.5.34.0/24
std::string line_regex(char severity, int line, const std::string& message) {
  return std::string("^") + severity +
         "(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01]) "
         "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\\.[0-9]{6} "
         "[ 0-9]{7} logging_unittest\\.cc:" +
         std::to_string(line) + "\\] " + message + "\n$";
}

TEST_F(LoggingTest, InfoLineHasGlogLayout) {
  use_capture();
  const int line = __LINE__ + 1;
  FLOG_INFO("Lease acquired: {}", "10.5.34.0/24");
  const std::string got = captured();
  EXPECT_TRUE(std::regex_match(
      got, std::regex(line_regex('I', line, "Lease acquired: 10\\.5\\.34\\.0/24"))))
      << got;
  // pid right-aligned in exactly 7 columns between single spaces.
  char pid[16];
  std::snprintf(pid, sizeof(pid), " %7d ", static_cast<int>(::getpid()));
  EXPECT_EQ(got.substr(21, 9), pid) << got;
}

TEST_F(LoggingTest, SeverityLetters) {
  use_capture();
  const int line = __LINE__ + 1;
  FLOG_WARNING("w {}", 1);
  FLOG_ERROR("e {}", 2);
  const std::string got = captured();
  std::istringstream lines(got);
  std::string w, e;
  std::getline(lines, w);
  std::getline(lines, e);
  EXPECT_TRUE(std::regex_match(w + "\n", std::regex(line_regex('W', line, "w 1")))) << got;
  EXPECT_TRUE(std::regex_match(e + "\n", std::regex(line_regex('E', line + 1, "e 2")))) << got;
}

TEST_F(LoggingTest, HeaderForAKnownTime) {
  std::tm tm{};
  tm.tm_year = 2019 - 1900;
  tm.tm_mon = 10;  // November
  tm.tm_mday = 22;
  tm.tm_hour = 1;
  tm.tm_min = 27;
  tm.tm_sec = 54;
  tm.tm_isdst = -1;
  const auto when =
      std::chrono::system_clock::from_time_t(std::mktime(&tm)) + std::chrono::microseconds(476791);
  EXPECT_EQ(glog_header('I', when, 4729, "/src/daemon/main.cc", 132),
            "I1122 01:27:54.476791    4729 main.cc:132] ");
  EXPECT_EQ(glog_header('E', when + std::chrono::microseconds(9), 12345678, "x.cc", 7),
            "E1122 01:27:54.476800 12345678 x.cc:7] ");
}

TEST_F(LoggingTest, VerbosityGating) {
  use_capture(/*v=*/1);
  FLOG_V(1, "shown {}", 1);
  FLOG_V(2, "hidden {}", 2);
  const std::string got = captured();
  EXPECT_NE(got.find("] shown 1\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("hidden"), std::string::npos) << got;
  EXPECT_EQ(got[0], 'I');  // V logs are INFO in glog
}

TEST_F(LoggingTest, VmoduleRaisesOneFile) {
  use_capture(/*v=*/0, "other=5,logging_unit*=3");
  FLOG_V(3, "file level {}", 3);
  FLOG_V(4, "too verbose");
  const std::string got = captured();
  EXPECT_NE(got.find("] file level 3\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("too verbose"), std::string::npos) << got;
  EXPECT_TRUE(logging_detail::v_enabled(5, "/x/other.cc"));
  EXPECT_FALSE(logging_detail::v_enabled(1, "/x/third.cc"));
}

TEST_F(LoggingTest, MessageEndingInNewlineIsNotDoubled) {
  use_capture();
  FLOG_INFO("done\n");
  const std::string got = captured();
  ASSERT_GE(got.size(), 7u);
  EXPECT_EQ(got.substr(got.size() - 7), "] done\n") << got;
  EXPECT_EQ(got.find("\n\n"), std::string::npos) << got;
}

TEST_F(LoggingTest, FatalLogsAndExits255) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        set_logging_sink_for_test(std::make_shared<spdlog::sinks::stderr_sink_mt>());
        FLOG_FATAL("cannot continue: {}", "boom");
      },
      ::testing::ExitedWithCode(255),
      "F[0-9]{4} .* logging_unittest\\.cc:[0-9]+\\] cannot continue: boom");
}

TEST_F(LoggingTest, Validators) {
  EXPECT_NO_THROW(validate_vmodule(""));
  EXPECT_NO_THROW(validate_vmodule("a=1,b*=2,"));
  EXPECT_THROW(validate_vmodule("a"), std::invalid_argument);
  EXPECT_THROW(validate_vmodule("a=x"), std::invalid_argument);
  EXPECT_THROW(validate_vmodule("=1"), std::invalid_argument);
  EXPECT_THROW(validate_vmodule("a=-1"), std::invalid_argument);
  EXPECT_NO_THROW(validate_backtrace_at(""));
  EXPECT_NO_THROW(validate_backtrace_at("main.cc:10"));
  EXPECT_THROW(validate_backtrace_at("main.cc"), std::invalid_argument);
  EXPECT_THROW(validate_backtrace_at("main:10"), std::invalid_argument);
  EXPECT_THROW(validate_backtrace_at("main.cc:0"), std::invalid_argument);
  EXPECT_THROW(validate_backtrace_at("main.cc:x"), std::invalid_argument);
  for (const char* ok : {"INFO", "warning", "Error", "FATAL", "0", "3"}) {
    EXPECT_NO_THROW(validate_severity(ok)) << ok;
  }
  EXPECT_THROW(validate_severity("LOUD"), std::invalid_argument);
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "flannel-logging-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_F(LoggingTest, LogDirGetsGlogNamedFileAndSymlink) {
  TempDir dir;
  LogOptions opts;
  opts.program = "flanneld";
  opts.logtostderr = false;
  opts.log_dir = dir.path().string() + "/";  // trailing slash as in the seed unit
  opts.stderrthreshold = "FATAL";            // keep the test's stderr quiet
  setup_logging(opts);
  const int line = __LINE__ + 1;
  FLOG_INFO("Lease acquired: {}", "10.5.34.0/24");
  const std::string path = log_file_path();
  ASSERT_FALSE(path.empty());
  // An INFO line is in the file at once (flushed line by line, no periodic flusher).
  EXPECT_NE(read_file(path).find("] Lease acquired: 10.5.34.0/24\n"), std::string::npos);
  FLOG_WARNING("flushed now");
  const std::string name = fs::path(path).filename().string();
  EXPECT_TRUE(std::regex_match(
      name, std::regex("flanneld\\.[^.]+\\.[^.]+\\.log\\.INFO\\.[0-9]{8}-[0-9]{6}\\." +
                       std::to_string(::getpid()))))
      << name;
  EXPECT_EQ(fs::path(path).parent_path(), dir.path());
  const fs::path link = dir.path() / "flanneld.INFO";
  ASSERT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(fs::read_symlink(link).string(), name);

  const std::string content = read_file(path);
  EXPECT_EQ(content.rfind("Log file created at: ", 0), 0u) << content;
  EXPECT_NE(content.find("\nLog line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg\n"),
            std::string::npos)
      << content;
  std::smatch m;
  EXPECT_TRUE(std::regex_search(
      content, m,
      std::regex("\nI[0-9]{4} [0-9:]{8}\\.[0-9]{6} [ 0-9]{7} logging_unittest\\.cc:" +
                 std::to_string(line) + "\\] Lease acquired: 10\\.5\\.34\\.0/24\n")))
      << content;
  EXPECT_NE(content.find("] flushed now\n"), std::string::npos) << content;
  shutdown_logging();
  EXPECT_EQ(log_file_path(), "");
}

// In a shared directory such as /tmp, anyone can plant a symbolic link under the name the log
// file will have (it is predictable: program, host, user, time, pid). The agent must refuse it,
// not write through it into the link's target.
TEST_F(LoggingTest, APlantedSymlinkAtTheLogFilesNameIsRefused) {
  TempDir dir;
  const std::string victim = dir.path().string() + "/victim";
  std::ofstream(victim) << "precious\n";
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  std::string h(host);
  if (auto dot = h.find('.'); dot != std::string::npos) h.resize(dot);
  const char* user = ::getpwuid(::getuid())->pw_name;
  const std::time_t now = std::time(nullptr);
  for (std::time_t t = now; t < now + 4; ++t) {  // the next seconds too: the call may cross one
    std::tm tm{};
    ::localtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    const std::string name =
        "flanneld." + h + "." + user + ".log.INFO." + stamp + "." + std::to_string(::getpid());
    ASSERT_EQ(::symlink(victim.c_str(), (dir.path() / name).c_str()), 0);
  }
  LogOptions opts;
  opts.logtostderr = false;
  opts.log_dir = dir.path().string();
  try {
    setup_logging(opts);
    FAIL() << "wrote the log through a planted symlink";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("File exists"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(victim), "precious\n");
}

TEST_F(LoggingTest, MissingLogDirIsAClearError) {
  LogOptions opts;
  opts.logtostderr = false;
  opts.log_dir = "/nonexistent-flannel-log-dir";
  try {
    setup_logging(opts);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("cannot create log file /nonexistent-flannel-log-dir/flanneld.", 0), 0u)
        << msg;
    EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  }
}

TEST_F(LoggingTest, StderrOnlyWritesNoFile) {
  LogOptions opts;  // flanneld's default: -logtostderr=true
  setup_logging(opts);
  EXPECT_EQ(log_file_path(), "");
}

}  // namespace
}  // namespace flannel
