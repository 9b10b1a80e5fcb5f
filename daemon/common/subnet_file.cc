#include "daemon/common/subnet_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace flannel {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw std::runtime_error(what + " " + path + ": " + std::strerror(errno));
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& content, unsigned mode) {
  namespace fs = std::filesystem;
  fs::path target(path);
  fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create directory " + dir.string() + ": " + ec.message());
  // Appended piece by piece: `"." + name + ".XXXXXX"` trips GCC 12's -Wrestrict false positive
  // at -O3 (the inlined operator+(const char*, string&&) insert).
  std::string temp_name = ".";
  temp_name.append(target.filename().string()).append(".XXXXXX");
  std::string tmpl = (dir / temp_name).string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) fail("cannot create temp file for", path);
  auto cleanup = [&] {
    ::close(fd);
    ::unlink(tmpl.c_str());
  };
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      cleanup();
      errno = e;
      fail("cannot write", tmpl);
    }
    off += static_cast<size_t>(n);
  }
  if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) {
    int e = errno;
    cleanup();
    errno = e;
    fail("cannot sync", tmpl);
  }
  ::close(fd);
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmpl.c_str());
    errno = e;
    fail("cannot rename temp file onto", path);
  }
}

std::optional<std::string> read_file_if_exists(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::nullopt;
    fail("cannot read", path);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace flannel
