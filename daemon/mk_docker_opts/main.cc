// mk-docker-opts.sh: turns flannel's subnet.env into docker daemon options, with the options,
// output and exit codes of flannel v0.11's dist/mk-docker-opts.sh (getopts "f:d:icmk:?h"):
//
//   -f FILE  flannel env file (/run/flannel/subnet.env); a missing file is skipped
//   -d FILE  output file (/run/docker_opts.env), replaced only when rendering succeeded
//   -i       write the individual DOCKER_OPT_* variables
//   -c       write the combined KEY="..." variable (neither -i nor -c: both)
//   -k KEY   name of the combined variable (DOCKER_OPTS)
//   -m       leave out --ip-masq
//   -h, -?   usage on stderr, exit 1
//
// DOCKER_OPT_* and $KEY already in the environment are included, as the script includes them.
// Differences from the script, all in the direction of safety: the output is written atomically
// (temp file in the same directory + rename, existing permissions kept) instead of truncated and
// appended to, so docker never reads a half-written file; an unreadable or malformed env file,
// and an output that cannot be written, are reported and exit 1 instead of producing a partial
// file. The rendering itself is core/docker_opts.h.
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/docker_opts.h"
#include "core/flags.h"
#include "core/subnet_env.h"
#include "daemon/common/subnet_file.h"

extern char** environ;

namespace flannel {
namespace {

constexpr char kDefaultEnvFile[] = "/run/flannel/subnet.env";
constexpr char kDefaultOutput[] = "/run/docker_opts.env";

struct Args {
  std::string env_file = kDefaultEnvFile;
  std::string output = kDefaultOutput;
  DockerOptsOptions render;
};

int usage(const std::string& argv0) {
  std::cerr << argv0
            << " [-f FLANNEL-ENV-FILE] [-d DOCKER-ENV-FILE] [-i] [-c] [-m] [-k COMBINED-KEY]\n"
               "\n"
               "Generate Docker daemon options based on flannel env file\n"
               "OPTIONS:\n"
               "\t-f\tPath to flannel env file. Defaults to /run/flannel/subnet.env\n"
               "\t-d\tPath to Docker env file to write to. Defaults to /run/docker_opts.env\n"
               "\t-i\tOutput each Docker option as individual var. e.g. DOCKER_OPT_MTU=1500\n"
               "\t-c\tOutput combined Docker options into DOCKER_OPTS var\n"
               "\t-k\tSet the combined options key to this value (default DOCKER_OPTS=)\n"
               "\t-m\tDo not output --ip-masq (useful for older Docker version)\n"
               "\n";
  return 1;
}

// POSIX getopts "f:d:icmk:?h": clustered letters (-ic), attached or separate option arguments
// (-fFILE, -f FILE), stops at the first operand, at "-" and after "--". Returns false (after
// printing why) for an unknown option or a missing argument; sets *help for -h / -?.
bool parse_args(int argc, char** argv, Args* args, bool* help) {
  const std::string prog = argc > 0 ? argv[0] : "mk-docker-opts.sh";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') break;
    for (size_t j = 1; j < a.size(); ++j) {
      const char c = a[j];
      if (c == 'f' || c == 'd' || c == 'k') {
        std::string value;
        if (j + 1 < a.size()) {
          value = a.substr(j + 1);
        } else if (i + 1 < argc) {
          value = argv[++i];
        } else {
          std::cerr << prog << ": No arg for -" << c << " option\n";
          return false;
        }
        if (c == 'f') args->env_file = value;
        if (c == 'd') args->output = value;
        if (c == 'k') args->render.key = value;
        break;  // the rest of this argument was the value
      }
      switch (c) {
        case 'i': args->render.individual = true; break;
        case 'c': args->render.combined = true; break;
        case 'm': args->render.omit_ipmasq = true; break;
        case 'h':
        case '?': *help = true; return true;
        default: std::cerr << prog << ": Illegal option -" << c << "\n"; return false;
      }
    }
  }
  return true;
}

// The env file's variables, or an empty map when it is absent or not a regular file (the
// script's `[ -f "$flannel_env" ]`). Throws std::runtime_error when it exists but cannot be read
// or parsed.
std::map<std::string, std::string> read_env_file(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return {};
    throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return {};
  auto text = read_file_if_exists(path);
  if (!text) return {};
  try {
    return parse_env_file(*text);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot parse " + path + ": " + e.what());
  }
}

void write_all(int fd, const std::string& content, const std::string& path) {
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
}

// Replaces `path` with `content`. A regular file (or a symlink to one) is replaced atomically,
// keeping its permissions; something that is not a regular file (-d /dev/stdout, a FIFO) is
// written in place, as the shell's redirection would.
void write_output(const std::string& path, const std::string& content) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    try {
      write_all(fd, content, path);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
    return;
  }
  std::string target = path;
  unsigned mode = 0644;
  if (::stat(path.c_str(), &st) == 0) {
    mode = st.st_mode & 07777;
    // Write through a symlink to its target rather than replacing the link.
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) != nullptr) target = resolved;
  }
  write_file_atomic(target, content, mode);
}

int run(int argc, char** argv) {
  const std::string prog = argc > 0 ? argv[0] : "mk-docker-opts.sh";
  Args args;
  bool help = false;
  if (!parse_args(argc, argv, &args, &help) || help) return usage(prog);

  try {
    const auto env_file = read_env_file(args.env_file);
    const auto environment = environment_map(environ);
    std::string content;
    try {
      content = render_docker_opts(env_file, args.render, environment);
    } catch (const DockerOptsError& e) {
      std::cerr << e.what() << "\n";  // "Invalid value of FLANNEL_IPMASQ: X", as the script
      return 1;
    }
    write_output(args.output, content);
  } catch (const std::exception& e) {
    std::cerr << prog << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace flannel

int main(int argc, char** argv) { return flannel::run(argc, argv); }
