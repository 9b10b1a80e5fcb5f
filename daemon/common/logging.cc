#include "daemon/common/logging.h"

#include <fcntl.h>

#include <execinfo.h>
#include <fnmatch.h>
#include <pwd.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#ifndef FLANNEL_VERSION
#define FLANNEL_VERSION "unknown"
#endif

namespace flannel {

namespace {

constexpr char kLoggerName[] = "flannel";

struct VModulePattern {
  std::string pattern;
  int level;
};

// Process-wide logging state. Written only by setup/shutdown (documented as single-threaded);
// read by every log call.
std::atomic<int> g_verbosity{0};
std::atomic<bool> g_has_vmodule{false};
std::vector<VModulePattern> g_vmodule;
std::atomic<bool> g_has_backtrace_at{false};
std::string g_backtrace_file;
int g_backtrace_line = 0;

std::shared_ptr<spdlog::logger> g_owned;  // keeps the installed logger alive
std::atomic<spdlog::logger*> g_current{nullptr};
std::string g_log_file_path;

std::string_view basename_of(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string_view strip_extension(std::string_view name) {
  size_t dot = name.rfind('.');
  return dot == std::string_view::npos || dot == 0 ? name : name.substr(0, dot);
}

// glog's strconv.Atoi-based parts: optional sign, decimal digits only.
bool parse_decimal(std::string_view text, int* out) {
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s.size() > 9) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = negative ? -v : v;
  return true;
}

std::vector<VModulePattern> parse_vmodule(const std::string& value) {
  static constexpr char kSyntax[] = "syntax error: expect comma-separated list of filename=N";
  std::vector<VModulePattern> out;
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string::npos) comma = value.size();
    std::string_view part(value.data() + start, comma - start);
    start = comma + 1;
    if (part.empty()) continue;  // e.g. a trailing comma
    size_t eq = part.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == part.size() ||
        part.find('=', eq + 1) != std::string_view::npos) {
      throw std::invalid_argument(kSyntax);
    }
    int level = 0;
    if (!parse_decimal(part.substr(eq + 1), &level)) throw std::invalid_argument(kSyntax);
    if (level < 0) throw std::invalid_argument("negative value for vmodule level");
    if (level == 0) continue;  // harmless, as glog skips it
    out.push_back({std::string(part.substr(0, eq)), level});
  }
  return out;
}

std::pair<std::string, int> parse_backtrace_at(const std::string& value) {
  static constexpr char kSyntax[] = "syntax error: expect file.cc:234";
  if (value.empty()) return {"", 0};
  size_t colon = value.find(':');
  if (colon == std::string::npos || value.find(':', colon + 1) != std::string::npos) {
    throw std::invalid_argument(kSyntax);
  }
  std::string file = value.substr(0, colon);
  if (file.find('.') == std::string::npos) throw std::invalid_argument(kSyntax);
  int line = 0;
  if (!parse_decimal(std::string_view(value).substr(colon + 1), &line)) {
    throw std::invalid_argument(kSyntax);
  }
  if (line <= 0) throw std::invalid_argument("negative or zero value for line");
  return {file, line};
}

// -stderrthreshold to the lowest spdlog level that reaches stderr. INFO includes FLOG_V lines,
// which glog also counts as INFO.
spdlog::level::level_enum parse_severity(const std::string& value) {
  std::string upper;
  for (char c : value) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  int n = 0;
  if (upper == "INFO") {
    n = 0;
  } else if (upper == "WARNING") {
    n = 1;
  } else if (upper == "ERROR") {
    n = 2;
  } else if (upper == "FATAL") {
    n = 3;
  } else if (!parse_decimal(value, &n)) {
    throw std::invalid_argument("unknown severity \"" + value +
                                "\" (expected INFO, WARNING, ERROR, FATAL or 0..3)");
  }
  if (n <= 0) return spdlog::level::trace;
  if (n == 1) return spdlog::level::warn;
  if (n == 2) return spdlog::level::err;
  if (n == 3) return spdlog::level::critical;
  return spdlog::level::off;
}

char severity_char(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::warn: return 'W';
    case spdlog::level::err: return 'E';
    case spdlog::level::critical: return 'F';
    default: return 'I';  // trace, debug (FLOG_V) and info
  }
}

std::string stack_trace() {
  void* frames[64];
  int n = ::backtrace(frames, 64);
  char** symbols = ::backtrace_symbols(frames, n);
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += '\n';
    out += symbols != nullptr ? symbols[i] : "?";
  }
  std::free(symbols);
  return out;
}

class GlogFormatter final : public spdlog::formatter {
 public:
  GlogFormatter() : pid_(static_cast<int>(::getpid())) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const char* file = msg.source.filename != nullptr ? msg.source.filename : "???";
    int line = msg.source.filename != nullptr ? msg.source.line : 1;
    std::string header = glog_header(severity_char(msg.level), msg.time, pid_, file, line);
    dest.append(header.data(), header.data() + header.size());
    dest.append(msg.payload.data(), msg.payload.data() + msg.payload.size());
    if (g_has_backtrace_at.load(std::memory_order_relaxed) && line == g_backtrace_line &&
        basename_of(file) == g_backtrace_file) {
      std::string trace = stack_trace();
      dest.append(trace.data(), trace.data() + trace.size());
    }
    if (msg.payload.size() == 0 || msg.payload.data()[msg.payload.size() - 1] != '\n') {
      dest.push_back('\n');
    }
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<GlogFormatter>();
  }

 private:
  int pid_;
};

std::shared_ptr<spdlog::logger> make_logger(std::vector<spdlog::sink_ptr> sinks) {
  for (auto& sink : sinks) sink->set_formatter(make_glog_formatter());
  auto logger = std::make_shared<spdlog::logger>(kLoggerName, sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::trace);  // FLOG_V does its own gating
  // Every line is written out at once: an idle agent logs nothing, so a periodic flusher would
  // only be a thread waking every few seconds in each agent of a 100-host lab.
  logger->flush_on(spdlog::level::trace);
  return logger;
}

spdlog::logger* fallback_logger() {
  static const std::shared_ptr<spdlog::logger> fallback =
      make_logger({std::make_shared<spdlog::sinks::stderr_sink_mt>()});
  return fallback.get();
}

void install(std::shared_ptr<spdlog::logger> logger) {
  spdlog::drop(kLoggerName);
  spdlog::register_logger(logger);
  g_current.store(logger.get());
  g_owned = std::move(logger);
}

void set_filters(int v, const std::vector<VModulePattern>& vmodule,
                 std::pair<std::string, int> backtrace_at) {
  g_verbosity.store(v);
  g_vmodule = vmodule;
  g_has_vmodule.store(!g_vmodule.empty());
  g_backtrace_file = std::move(backtrace_at.first);
  g_backtrace_line = backtrace_at.second;
  g_has_backtrace_at.store(g_backtrace_line > 0);
}

std::string short_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "unknownhost";
  std::string host(buf);
  if (size_t dot = host.find('.'); dot != std::string::npos) host.resize(dot);
  return host;
}

std::string user_name() {
  struct passwd pw;
  struct passwd* result = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &result) == 0 && result != nullptr &&
      pw.pw_name != nullptr && pw.pw_name[0] != '\0') {
    return pw.pw_name;
  }
  return "unknownuser";
}

std::tm local_tm(std::time_t t) {
  std::tm tm{};
  ::localtime_r(&t, &tm);
  return tm;
}

// Creates the INFO log file with glog's name and header, and points PROG.INFO at it.
std::string create_log_file(const LogOptions& opts) {
  std::string dir = opts.log_dir;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    dir = tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp";
  }
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const std::time_t now = std::time(nullptr);
  const std::tm tm = local_tm(now);
  const std::string host = short_hostname();
  const std::string program(basename_of(opts.program));
  const std::string name = fmt::format("{}.{}.{}.log.INFO.{:04}{:02}{:02}-{:02}{:02}{:02}.{}",
                                       program, host, user_name(), tm.tm_year + 1900, tm.tm_mon + 1,
                                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ::getpid());
  const std::string path = dir + "/" + name;
  // A new file only (the name holds the time and pid): O_EXCL|O_NOFOLLOW never write through a
  // file or symbolic link someone planted in a shared directory such as /tmp.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  std::FILE* f = fd < 0 ? nullptr : ::fdopen(fd, "w");
  if (f == nullptr) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot create log file " + path + ": " + std::strerror(errno) +
                             " (check -log_dir, or run with -logtostderr=true)");
  }
  std::string header = fmt::format(
      "Log file created at: {:04}/{:02}/{:02} {:02}:{:02}:{:02}\n"
      "Running on machine: {}\n"
      "Binary: {} {} (C++, spdlog)\n"
      "Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg\n",
      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, host, program,
      FLANNEL_VERSION);
  std::fputs(header.c_str(), f);
  std::fclose(f);
  // The symlink is a convenience; glog ignores failures here too.
  const std::string link = dir + "/" + program + ".INFO";
  ::unlink(link.c_str());
  if (::symlink(name.c_str(), link.c_str()) != 0) {
    // Nothing to do: the file itself is there.
  }
  return path;
}

}  // namespace

void validate_vmodule(const std::string& value) { (void)parse_vmodule(value); }
void validate_backtrace_at(const std::string& value) { (void)parse_backtrace_at(value); }
void validate_severity(const std::string& value) { (void)parse_severity(value); }

std::string glog_header(char severity, std::chrono::system_clock::time_point when, int pid,
                        std::string_view file, int line) {
  const auto since_epoch = when.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - secs).count();
  std::time_t t = static_cast<std::time_t>(secs.count());
  if (micros < 0) {  // before 1970: keep the fraction positive
    micros += 1000000;
    t -= 1;
  }
  const std::tm tm = local_tm(t);
  return fmt::format("{}{:02}{:02} {:02}:{:02}:{:02}.{:06} {:>7} {}:{}] ", severity, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros, pid, basename_of(file),
                     line);
}

std::unique_ptr<spdlog::formatter> make_glog_formatter() {
  return std::make_unique<GlogFormatter>();
}

void setup_logging(const LogOptions& opts) {
  auto vmodule = parse_vmodule(opts.vmodule);
  auto backtrace_at = parse_backtrace_at(opts.log_backtrace_at);
  const auto threshold = parse_severity(opts.stderrthreshold);

  std::vector<spdlog::sink_ptr> sinks;
  std::string path;
  if (opts.logtostderr) {
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  } else {
    path = create_log_file(opts);
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false));
    auto err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    err->set_level(opts.alsologtostderr ? spdlog::level::trace : threshold);
    sinks.push_back(std::move(err));
  }
  set_filters(opts.v, vmodule, std::move(backtrace_at));
  install(make_logger(std::move(sinks)));
  g_log_file_path = path;
}

void shutdown_logging() {
  if (auto* current = g_current.load()) current->flush();
  g_current.store(nullptr);
  spdlog::shutdown();
  g_owned.reset();
  g_log_file_path.clear();
}

std::string log_file_path() { return g_log_file_path; }

void set_logging_sink_for_test(spdlog::sink_ptr sink, int v, const std::string& vmodule) {
  set_filters(v, parse_vmodule(vmodule), {"", 0});
  install(make_logger({std::move(sink)}));
  g_log_file_path.clear();
}

namespace logging_detail {

spdlog::logger* logger() {
  spdlog::logger* current = g_current.load(std::memory_order_acquire);
  return current != nullptr ? current : fallback_logger();
}

bool v_enabled(int level, const char* file) {
  if (level <= g_verbosity.load(std::memory_order_relaxed)) return true;
  if (!g_has_vmodule.load(std::memory_order_relaxed)) return false;
  const std::string name(strip_extension(basename_of(file != nullptr ? file : "")));
  for (const auto& p : g_vmodule) {
    if (::fnmatch(p.pattern.c_str(), name.c_str(), 0) == 0) return p.level >= level;
  }
  return false;
}

void die_after_fatal() {
  logger()->flush();
  std::fflush(nullptr);
  std::_Exit(255);
}

}  // namespace logging_detail

}  // namespace flannel
