#include "daemon/cni/plugin.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/process/child_process.h"
#include "core/cni_config.h"

namespace flannel::cni {
namespace {

using nlohmann::json;

std::string errno_text(int e) { return std::strerror(e); }

const std::string* env_get(const std::map<std::string, std::string>& env, const std::string& k) {
  auto it = env.find(k);
  return it == env.end() ? nullptr : &it->second;
}

// The CNI_* variables a command needs, with the message SPEC readers expect.
struct Args {
  std::string command, container_id, netns, ifname, path;
};

Args read_args(const std::map<std::string, std::string>& env, const std::string& command) {
  Args a;
  a.command = command;
  auto need = [&](const std::string& k, std::string* into) {
    const std::string* v = env_get(env, k);
    if (!v || v->empty())
      throw Error(kInvalidEnvironment, k + " is not set (the runtime sets it for " + command + ")");
    *into = *v;
  };
  need("CNI_CONTAINERID", &a.container_id);
  if (!valid_container_id(a.container_id))
    throw Error(kInvalidEnvironment,
                "CNI_CONTAINERID \"" + a.container_id + "\" has characters outside [A-Za-z0-9_.-]");
  if (command == "DEL") {
    if (auto v = env_get(env, "CNI_NETNS")) a.netns = *v;  // may be empty on DEL
  } else {
    need("CNI_NETNS", &a.netns);
  }
  need("CNI_IFNAME", &a.ifname);
  need("CNI_PATH", &a.path);
  return a;
}

// Reads a whole file. nullopt with *err = errno on failure.
std::optional<std::string> slurp(const std::string& path, int* err) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return std::nullopt;
  }
  std::string s;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = errno;
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    s.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return s;
}

FlannelEnv load_subnet_env(const std::string& path) {
  int e = 0;
  auto text = slurp(path, &e);
  if (!text) {
    if (e == ENOENT)
      throw Error(kTryAgainLater, path + " does not exist: is flanneld running? it writes " + path +
                                      " once it holds a lease");
    throw Error(kIOFailure, "cannot read " + path + ": " + errno_text(e));
  }
  return parse_flannel_env(*text, path);
}

std::string saved_path(const std::string& data_dir, const std::string& container_id) {
  return data_dir + "/" + container_id;
}

// Writes the delegate config for DEL: dataDir 0700, file 0600, unique temp + fsync + rename.
void save_config(const std::string& data_dir, const std::string& container_id,
                 const std::string& bytes) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) throw Error(kIOFailure, "cannot create dataDir " + data_dir + ": " + ec.message());
  ::chmod(data_dir.c_str(), 0700);
  const std::string path = saved_path(data_dir, container_id);
  // A unique temp beside it whose name starts with a dot: container ids start with a letter or
  // digit, so no container's saved config (not even that of a container named "<id>.tmp") is
  // ever a temp file of another's.
  std::string tmp = data_dir + "/." + container_id + ".XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);  // 0600, O_EXCL
  if (fd < 0) throw Error(kIOFailure, "cannot write " + tmp + ": " + errno_text(errno));
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(kIOFailure, "cannot write " + tmp + ": " + errno_text(e));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error(kIOFailure, "cannot write " + path + ": " + errno_text(e));
  }
}

// A delegate still running after this is killed and its command fails: within kubelet's 2 minute
// runtime request timeout, so that the runtime gets our error rather than a killed plugin.
constexpr std::chrono::seconds kDelegateTimeout{100};

// Runs `path` with `env` (CNI_COMMAND replaced by `command`), `input` on stdin; collects stdout.
// stderr is inherited, so the delegate's diagnostics reach the runtime's log as ours do.
ChildResult run_delegate(const std::string& path, const std::string& command,
                         const std::map<std::string, std::string>& env, const std::string& input) {
  std::vector<std::string> envs;
  for (const auto& [k, v] : env)
    if (k != "CNI_COMMAND") envs.push_back(k + "=" + v);
  envs.push_back("CNI_COMMAND=" + command);
  return run_child({.argv = {path},
                    .env = std::move(envs),
                    .stdin_data = input,
                    .timeout = kDelegateTimeout,
                    .capture_stderr = false});
}

// Finds and runs the delegate; returns its stdout on success, throws its error otherwise.
std::string delegate(const json& conf, const std::string& command, const Args& a,
                     const std::map<std::string, std::string>& env) {
  const std::string type = conf.value("type", "");
  if (type.empty() || type.find('/') != std::string::npos)
    throw Error(kInvalidConfig, "delegate config has no plugin \"type\"");
  auto path = find_in_path(type, a.path);
  if (!path)
    throw Error(kInvalidConfig, "delegate plugin \"" + type + "\" not found in CNI_PATH " + a.path +
                                    " (on Debian: apt-get install containernetworking-plugins)");
  ChildResult r = run_delegate(*path, command, env, conf.dump());
  if (r.ok()) return r.out;
  json e = json::parse(r.out, nullptr, false);
  if (r.error.empty() && !r.timed_out && e.is_object() && e.contains("code") &&
      e["code"].is_number_integer() && e.contains("msg") && e["msg"].is_string())
    throw Error(
        e["code"].get<int>(), type + ": " + e["msg"].get<std::string>(),
        e.contains("details") && e["details"].is_string() ? e["details"].get<std::string>() : "");
  // "delegate bridge ADD failed: `/usr/lib/cni/bridge` exited with status 2: <its stdout>"
  throw Error(kInternal, "delegate " + type + " " + command + " failed: " + r.describe());
}

int cmd_add(const Args& a, const NetConf& conf, const std::map<std::string, std::string>& env,
            std::ostream& out) {
  FlannelEnv fenv = load_subnet_env(conf.subnet_file);
  json d = delegate_config(conf, fenv);
  // Saved first, as the public plugin does: if the delegate fails half-way, the runtime's DEL
  // finds the config and lets the delegate clean up.
  save_config(conf.data_dir, a.container_id, d.dump());
  std::string res = delegate(d, "ADD", a, env);
  json j = json::parse(res, nullptr, false);
  if (j.is_discarded())
    throw Error(kInternal, "delegate " + d["type"].get<std::string>() +
                               " printed a result that is not JSON: " + res.substr(0, 200));
  out << convert_result(j, conf.cni_version).dump() << "\n";
  return 0;
}

int cmd_del(const Args& a, const NetConf& conf, const std::map<std::string, std::string>& env,
            std::ostream& err) {
  const std::string path = saved_path(conf.data_dir, a.container_id);
  int e = 0;
  auto saved = slurp(path, &e);
  if (!saved) {
    if (e == ENOENT) return 0;  // SPEC: DEL of something already gone succeeds
    throw Error(kIOFailure, "cannot read " + path + ": " + errno_text(e));
  }
  json d = json::parse(*saved, nullptr, false);
  if (!d.is_object() || !d.contains("type") || !d["type"].is_string()) {
    // As the public plugin: nothing to hand to a delegate; the veth goes with the netns.
    err << "flannel: " << path << " is not a delegate config; removing it without a delegate DEL\n";
    ::unlink(path.c_str());
    return 0;
  }
  if (!conf.runtime_config.is_null()) d["runtimeConfig"] = conf.runtime_config;
  delegate(d, "DEL", a, env);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    err << "flannel: cannot remove " << path << ": " << errno_text(errno) << "\n";
  return 0;
}

int cmd_check(const Args& a, const NetConf& conf, const std::map<std::string, std::string>& env) {
  if (!version_has_check(conf.cni_version))
    throw Error(kIncompatibleVersion,
                "CHECK is not defined for cniVersion " + conf.cni_version + " (0.4.0 and later)");
  const std::string path = saved_path(conf.data_dir, a.container_id);
  int e = 0;
  auto saved = slurp(path, &e);
  if (!saved) {
    if (e == ENOENT)
      throw Error(kUnknownContainer, "container " + a.container_id + " is unknown: no " + path +
                                         " (it is written by ADD)");
    throw Error(kIOFailure, "cannot read " + path + ": " + errno_text(e));
  }
  delegate(check_config(*saved, conf), "CHECK", a, env);
  return 0;
}

}  // namespace

std::optional<std::string> find_in_path(const std::string& type, const std::string& cni_path) {
  if (type.empty() || type.find('/') != std::string::npos) return std::nullopt;
  std::stringstream ss(cni_path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string p = dir + "/" + type;
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0)
      return p;
  }
  return std::nullopt;
}

int run_cni_plugin(const std::map<std::string, std::string>& env, std::string_view stdin_data,
                   std::ostream& out, std::ostream& err) {
  ::signal(SIGPIPE, SIG_IGN);
  std::string version;
  try {
    const std::string* cmd = env_get(env, "CNI_COMMAND");
    if (!cmd || cmd->empty())
      throw Error(kInvalidEnvironment,
                  "CNI_COMMAND is not set: this is a CNI plugin, run by the container "
                  "runtime (kubelet) with ADD, DEL, CHECK or VERSION");
    if (*cmd == "VERSION") {
      json j = json::parse(stdin_data, nullptr, false);
      std::string req = j.is_object() && j.contains("cniVersion") && j["cniVersion"].is_string()
                            ? j["cniVersion"].get<std::string>()
                            : "";
      out << version_json(req) << "\n";
      return 0;
    }
    if (*cmd != "ADD" && *cmd != "DEL" && *cmd != "CHECK")
      throw Error(kInvalidEnvironment,
                  "CNI_COMMAND \"" + *cmd + "\" is not one of ADD, DEL, CHECK, VERSION");
    // The version for the error JSON, as far as it can be read, before full validation.
    json peek = json::parse(stdin_data, nullptr, false);
    if (peek.is_object() && peek.contains("cniVersion") && peek["cniVersion"].is_string())
      version = peek["cniVersion"].get<std::string>();
    Args a = read_args(env, *cmd);
    NetConf conf = parse_netconf(stdin_data);
    if (*cmd == "ADD") return cmd_add(a, conf, env, out);
    if (*cmd == "DEL") return cmd_del(a, conf, env, err);
    return cmd_check(a, conf, env);
  } catch (const Error& e) {
    out << error_json(e, version) << "\n";
    err << "flannel: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    Error ie(kInternal, e.what());
    out << error_json(ie, version) << "\n";
    err << "flannel: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace flannel::cni
