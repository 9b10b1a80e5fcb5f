#include "tests/support/etcd_server.h"

#include "tests/support/loopback.h"
#include "tests/support/wait.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace flannel::testing {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

namespace {

// Finds a program in PATH (before fork: the child only execs).
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::stringstream ss(dirs);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// fork + exec with stdout/stderr appended to `log_path`, stdin from /dev/null. The child is
// killed when the forking thread dies (PR_SET_PDEATHSIG), so a crashed test leaves no etcd.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  std::string exe = find_program(argv.at(0));
  if (exe.empty()) return -1;
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid != 0) return pid;  // parent (or -1)
  // Child: async-signal-safe calls only until exec.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  int in = ::open("/dev/null", O_RDONLY);
  int out = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (in < 0 || out < 0) ::_exit(127);
  ::dup2(in, 0);
  ::dup2(out, 1);
  ::dup2(out, 2);
  ::execv(exe.c_str(), cargv.data());
  ::_exit(127);
}

struct CurlDeleter {
  void operator()(CURL* e) const { curl_easy_cleanup(e); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

size_t append_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t grab_index(char* data, size_t size, size_t n, void* user) {
  std::string line(data, size * n);
  if (strncasecmp(line.c_str(), "X-Etcd-Index:", 13) == 0) {
    std::string v = line.substr(13);
    v.erase(0, v.find_first_not_of(" \t"));
    v.erase(v.find_last_not_of(" \t\r\n") + 1);
    *static_cast<std::string*>(user) = v;
  }
  return size * n;
}

std::atomic<uint64_t> g_prefix_counter{0};

constexpr char kDirPrefix[] = "flannel-etcd-";

// Removes the temp dirs of EtcdServers whose test process died without running destructors
// (killed by a timeout, say; etcd itself went with it through PDEATHSIG). Each dir names its
// owner pid in the file "owner"; a dir is removed only if that process no longer exists.
void sweep_stale_dirs(const std::string& tmp) {
  try {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(tmp, ec)) {
      const std::string name = entry.path().filename().string();
      if (!name.starts_with(kDirPrefix) || !entry.is_directory(ec)) continue;
      std::ifstream in(entry.path() / "owner");
      long pid = 0;
      if (!(in >> pid) || pid <= 0) continue;
      if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        fs::remove_all(entry.path(), ec);
      }
    }
  } catch (const fs::filesystem_error&) {
    // Best effort: a sweep problem must not fail the test that starts etcd.
  }
}

}  // namespace

int run_program(const std::vector<std::string>& argv, const std::string& log_path) {
  pid_t pid = spawn(argv, log_path);
  if (pid < 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int EtcdServer::free_port() {
  int port = 0;
  ::close(bind_loopback(&port, /*listen=*/false));
  return port;
}

std::string EtcdServer::unique_prefix(const std::string& tag) {
  return "/flannel-test/" + std::to_string(::getpid()) + "-" + std::to_string(++g_prefix_counter) +
         "-" + tag;
}

EtcdServer::EtcdServer(Options options) : options_(options) {
  curl_global_init(CURL_GLOBAL_DEFAULT);  // reference-counted; idempotent after the first
  const char* tmp_env = std::getenv("TMPDIR");
  const std::string tmp = tmp_env && *tmp_env ? tmp_env : "/tmp";
  sweep_stale_dirs(tmp);
  std::string templ = tmp + "/" + kDirPrefix + "XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) {
    throw std::runtime_error("mkdtemp " + templ + ": " + std::strerror(errno));
  }
  dir_ = buf.data();
  std::ofstream(dir_ + "/owner") << ::getpid() << "\n";
  try {
    if (options_.tls) make_certs();
    // A port picked by free_port() can be taken by someone else before etcd binds it: retry.
    std::string last_error;
    for (int attempt = 0; attempt < 3; ++attempt) {
      try {
        start_once();
        return;
      } catch (const std::runtime_error& e) {
        last_error = e.what();
        stop();
        fs::remove_all(dir_ + "/data");
      }
    }
    throw std::runtime_error(last_error);
  } catch (...) {
    stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
    throw;
  }
}

EtcdServer::~EtcdServer() {
  stop();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

EtcdServer& EtcdServer::shared() {
  static EtcdServer server(Options{});
  return server;
}

EtcdServer& EtcdServer::shared_tls() {
  static EtcdServer server(Options{.tls = true});
  return server;
}

EtcdServer& EtcdServer::shared_v3() {
  static EtcdServer server(Options{.enable_v2 = false});
  return server;
}

EtcdServer& EtcdServer::shared_v3_tls() {
  static EtcdServer server(Options{.tls = true, .enable_v2 = false});
  return server;
}

void EtcdServer::make_certs() {
  const std::string log = dir_ + "/openssl.log";
  auto run = [&](std::vector<std::string> argv) {
    if (run_program(argv, log) != 0) {
      throw std::runtime_error("openssl failed generating test certificates: " + log_tail());
    }
  };
  auto write = [](const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  };
  const std::vector<std::string> ec_key = {"-newkey", "ec", "-pkeyopt",
                                           "ec_paramgen_curve:prime256v1", "-nodes"};
  ca_file_ = dir_ + "/ca.crt";
  std::vector<std::string> ca = {"openssl", "req", "-x509"};
  ca.insert(ca.end(), ec_key.begin(), ec_key.end());
  ca.insert(ca.end(), {"-keyout", dir_ + "/ca.key", "-out", ca_file_, "-days", "7", "-subj",
                       "/CN=flannel-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
                       "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
  run(ca);

  auto issue = [&](const std::string& name, const std::string& cn, const std::string& ext) {
    std::vector<std::string> req = {"openssl", "req", "-new"};
    req.insert(req.end(), ec_key.begin(), ec_key.end());
    req.insert(req.end(), {"-keyout", dir_ + "/" + name + ".key", "-out",
                           dir_ + "/" + name + ".csr", "-subj", "/CN=" + cn});
    run(req);
    write(dir_ + "/" + name + ".ext", ext);
    run({"openssl", "x509", "-req", "-in", dir_ + "/" + name + ".csr", "-CA", ca_file_, "-CAkey",
         dir_ + "/ca.key", "-set_serial", std::to_string(name == "server" ? 2 : 3), "-days", "7",
         "-out", dir_ + "/" + name + ".crt", "-extfile", dir_ + "/" + name + ".ext"});
  };
  issue("server", "127.0.0.1",
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth,clientAuth\n");
  issue("client", "flannel-test-client",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
  server_cert_ = dir_ + "/server.crt";
  server_key_ = dir_ + "/server.key";
  client_cert_ = dir_ + "/client.crt";
  client_key_ = dir_ + "/client.key";
}

void EtcdServer::start_once() {
  client_port_ = free_port();
  peer_port_ = free_port();
  while (peer_port_ == client_port_) peer_port_ = free_port();
  launch();
}

void EtcdServer::wipe_and_restart() {
  stop();
  std::error_code ec;
  fs::remove_all(dir_ + "/data", ec);
  if (ec) throw std::runtime_error("cannot delete " + dir_ + "/data: " + ec.message());
  launch();
}

void EtcdServer::launch() {
  const std::string scheme = options_.tls ? "https" : "http";
  endpoint_ = scheme + "://127.0.0.1:" + std::to_string(client_port_);
  const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);

  std::vector<std::string> argv = {
      "etcd",
      "--name=flannel-test",
      "--data-dir=" + dir_ + "/data",
      "--listen-client-urls=" + endpoint_,
      "--advertise-client-urls=" + endpoint_,
      "--listen-peer-urls=" + peer,
      "--initial-advertise-peer-urls=" + peer,
      "--initial-cluster=flannel-test=" + peer,
      "--initial-cluster-state=new",
      options_.enable_v2 ? "--enable-v2=true" : "--enable-v2=false",
      // One member: a short election timeout makes it leader within milliseconds.
      "--heartbeat-interval=10",
      "--election-timeout=100",
      "--logger=zap",
      "--log-outputs=stderr",
      "--log-level=warn",
  };
  if (options_.tls) {
    argv.insert(argv.end(), {"--cert-file=" + server_cert_, "--key-file=" + server_key_,
                             "--trusted-ca-file=" + ca_file_, "--client-cert-auth=true"});
  }
  if (const char* etcd = std::getenv("FLANNEL_TEST_ETCD"); etcd && *etcd) argv[0] = etcd;
  pid_ = spawn(argv, dir_ + "/etcd.log");
  if (pid_ < 0) {
    throw std::runtime_error("cannot start " + argv[0] +
                             " (install etcd-server, or set FLANNEL_TEST_ETCD)");
  }
  std::string why;
  if (!wait_ready(SteadyClock::now() + options_.start_timeout, &why)) {
    throw std::runtime_error("etcd at " + endpoint_ + " did not come up: " + why +
                             "; log: " + log_tail());
  }
}

bool EtcdServer::wait_ready(SteadyClock::time_point deadline, std::string* why) {
  bool exited = false;
  const bool answered = wait_until(
      [&] {
        exited = etcd_exited(why);
        return exited || answers(why);
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()));
  return answered && !exited;
}

bool EtcdServer::etcd_exited(std::string* why) {
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
  pid_ = -1;
  *why = "etcd exited with status " +
         std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
  return true;
}

bool EtcdServer::answers(std::string* why) const {
  // /health says a leader exists; the v2 GET (or the v3 range) says the API is on.
  RawResponse health = raw("GET", "/health");
  if (health.status != 200 || health.body.find("true") == std::string::npos) {
    *why = health.status ? "health " + health.body : health.error;
    return false;
  }
  if (!options_.enable_v2) {
    RawResponse v3 = raw("POST", "/v3/kv/range", R"({"key":"AA=="})");
    if (v3.status == 200) return true;
    *why = "v3 gateway answers " + std::to_string(v3.status) + " " + v3.body + v3.error;
    return false;
  }
  RawResponse v2 = raw("GET", "/v2/keys/?quorum=true");
  if (v2.status == 200) return true;
  *why = "v2 keys API answers " + std::to_string(v2.status) + " " + v2.body + v2.error;
  return false;
}

std::string EtcdServer::log_tail() const {
  std::string text;
  for (const char* name : {"/etcd.log", "/openssl.log"}) {
    std::ifstream in(dir_ + name);
    std::stringstream ss;
    ss << in.rdbuf();
    text += ss.str();
  }
  if (text.size() > 2000) text = "..." + text.substr(text.size() - 2000);
  return text;
}

void EtcdServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  const bool gone = wait_until(
      [&] {
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        return r == pid_ || (r < 0 && errno != EINTR);
      },
      std::chrono::seconds(5));
  if (!gone) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  pid_ = -1;
}

double EtcdServer::metric(const std::string& name) const {
  RawResponse r = raw("GET", "/metrics");
  if (r.status != 200) return -1;
  // One sample a line: "<name> <value>" (labelled metrics have "{" after the name).
  const std::string line_start = "\n" + name + " ";
  const size_t at = r.body.find(line_start);
  if (at == std::string::npos) return -1;
  return std::strtod(r.body.c_str() + at + line_start.size(), nullptr);
}

EtcdOptions EtcdServer::client_options(const std::string& prefix) const {
  EtcdOptions o;
  o.endpoints = {endpoint_};
  o.prefix = prefix;
  if (options_.tls) {
    o.cafile = ca_file_;
    o.certfile = client_cert_;
    o.keyfile = client_key_;
  }
  return o;
}

EtcdServer::RawResponse EtcdServer::raw(const std::string& method, const std::string& path,
                                        const std::string& form_body,
                                        const std::string& userpwd) const {
  RawResponse r;
  std::unique_ptr<CURL, CurlDeleter> e(curl_easy_init());
  if (!e) {
    r.error = "curl_easy_init failed";
    return r;
  }
  std::string url = endpoint_ + path;
  char errbuf[CURL_ERROR_SIZE] = {0};
  CURL* h = e.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, grab_index);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &r.etcd_index);
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  if (method != "GET") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!form_body.empty()) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(form_body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, form_body.c_str());
    headers.reset(curl_slist_append(nullptr, "Content-Type: application/x-www-form-urlencoded"));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  }
  if (options_.tls) {
    curl_easy_setopt(h, CURLOPT_CAINFO, ca_file_.c_str());
    curl_easy_setopt(h, CURLOPT_SSLCERT, client_cert_.c_str());
    curl_easy_setopt(h, CURLOPT_SSLKEY, client_key_.c_str());
  }
  if (!userpwd.empty()) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(h, CURLOPT_USERPWD, userpwd.c_str());
  }
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    r.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    return r;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

}  // namespace flannel::testing
