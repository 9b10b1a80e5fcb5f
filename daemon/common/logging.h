// Logging for the flannel programs: spdlog underneath, glog's line layout on top, so the greps and
// log pipelines written for flannel v0.11 keep working:
//
//   I1122 01:27:54.476791    4729 main.cc:132] Lease acquired: 10.5.34.0/24
//   ^severity I/W/E/F, month+day, local time to the microsecond, pid right-aligned in 7 columns,
//   source file basename:line, "] ", the message.
//
// Use the FLOG_* macros; they capture file:line and take fmt-style format strings checked at
// compile time:
//   FLOG_INFO("Lease acquired: {}", lease.subnet.str());
//   FLOG_WARNING("...");  FLOG_ERROR("...");  FLOG_FATAL("...");  // FATAL logs, flushes, exit(255)
//   FLOG_V(2, "watch event {}", n);   // only when -v >= 2, or -vmodule gives this file >= 2
//
// Destinations follow glog's flags:
//   -logtostderr=true (flanneld's default)  everything to stderr, no files
//   -logtostderr=false [-log_dir=DIR]       everything to the file
//                                             DIR/PROG.HOST.USER.log.INFO.YYYYMMDD-HHMMSS.PID
//                                           (DIR defaults to $TMPDIR or /tmp), plus the symlink
//                                           DIR/PROG.INFO pointing at it; lines at or above
//                                           -stderrthreshold (default ERROR) also go to stderr
//   -alsologtostderr                        files as above, and every line to stderr too
// Output is flushed after every line (no flusher thread: an idle agent stays asleep).
//
// Before setup_logging() is called, the macros write glog-format lines to stderr at -v 0, so
// code that logs early (or a test) never loses a line.
//
// Thread safety: logging from any thread at any time is safe. setup_logging(),
// set_logging_sink_for_test() and shutdown_logging() replace the process logger and must be called
// while no other thread logs (at startup / in a test's SetUp, at exit).
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/chrono.h>  // so FLOG_* can format std::chrono durations and time points
#include <spdlog/spdlog.h>

namespace flannel {

// The glog flags, as parsed from the command line (see daemon/common/options.h).
struct LogOptions {
  std::string program = "flanneld";  // file name prefix of log files
  int v = 0;                         // -v: verbosity for FLOG_V
  std::string vmodule;               // -vmodule: "pattern=N,..." per-file verbosity
  std::string log_backtrace_at;      // -log_backtrace_at: "file.cc:123", a stack trace is appended
  bool logtostderr = true;           // -logtostderr
  bool alsologtostderr = false;      // -alsologtostderr
  std::string log_dir;               // -log_dir
  std::string stderrthreshold = "ERROR";  // -stderrthreshold: INFO|WARNING|ERROR|FATAL or 0..3
};

// Validators for the glog flags (FlagValidator-shaped): throw std::invalid_argument with glog's
// reason for a bad value, return normally for a good one.
void validate_vmodule(
    const std::string& value);  // "syntax error: expect comma-separated list of filename=N"
void validate_backtrace_at(const std::string& value);  // "syntax error: expect file.cc:234"
void validate_severity(const std::string& value);      // "unknown severity ..."

// Installs the process logger described by `opts`. Throws std::runtime_error naming the path and
// the reason when a log file cannot be created (glog would exit); std::invalid_argument for a bad
// vmodule / log_backtrace_at / stderrthreshold. Starts the periodic flusher.
void setup_logging(const LogOptions& opts);

// Flushes and drops the process logger (spdlog::shutdown). Safe to call more than once; logging
// afterwards goes to a fresh stderr logger.
void shutdown_logging();

// The path of the INFO log file being written, or "" when logging only to stderr.
std::string log_file_path();

// For tests: sends every line, glog-formatted, to `sink` only, with the given verbosity.
void set_logging_sink_for_test(spdlog::sink_ptr sink, int v = 0, const std::string& vmodule = "");

// The glog line header for one message: "I1122 01:27:54.476791    4729 main.cc:132] ".
// `file` may be a full path; only its basename is printed. `severity` is one of I W E F.
std::string glog_header(char severity, std::chrono::system_clock::time_point when, int pid,
                        std::string_view file, int line);

// An spdlog formatter writing glog lines (header + message + '\n'); what every sink gets.
std::unique_ptr<spdlog::formatter> make_glog_formatter();

namespace logging_detail {
spdlog::logger* logger();  // never null
// True if FLOG_V(level) at `file` should log: -v >= level, or the first -vmodule pattern that
// matches the file's basename without extension gives >= level.
bool v_enabled(int level, const char* file);
[[noreturn]] void die_after_fatal();  // flush everything, exit(255) as glog does
}  // namespace logging_detail

}  // namespace flannel

#define FLOG_AT_(level, ...) \
  SPDLOG_LOGGER_CALL(::flannel::logging_detail::logger(), level, __VA_ARGS__)
#define FLOG_INFO(...) FLOG_AT_(::spdlog::level::info, __VA_ARGS__)
#define FLOG_WARNING(...) FLOG_AT_(::spdlog::level::warn, __VA_ARGS__)
#define FLOG_ERROR(...) FLOG_AT_(::spdlog::level::err, __VA_ARGS__)
#define FLOG_FATAL(...)                               \
  do {                                                \
    FLOG_AT_(::spdlog::level::critical, __VA_ARGS__); \
    ::flannel::logging_detail::die_after_fatal();     \
  } while (0)
// Verbose logs print with severity I, like glog's V(n).Info.
#define FLOG_V(n, ...)                                         \
  do {                                                         \
    if (::flannel::logging_detail::v_enabled((n), __FILE__)) { \
      FLOG_AT_(::spdlog::level::debug, __VA_ARGS__);           \
    }                                                          \
  } while (0)
