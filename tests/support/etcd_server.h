// EtcdServer: a real etcd (etcd-server 3.4, v2 API enabled unless asked not to) for tests, on
// loopback.
//
// Each EtcdServer starts its own etcd process on free 127.0.0.1 ports with a fresh data dir in
// a temp directory, waits until it answers (polling with a deadline), and on destruction stops it
// (SIGTERM, then SIGKILL) and removes the directory. The process is also killed if the test
// process dies (PR_SET_PDEATHSIG), so a crashed test leaves no etcd behind; the temp dirs of
// test processes that died that way are removed by the next EtcdServer.
//
// Starting etcd takes a few hundred milliseconds, so tests normally share one per process:
// EtcdServer::shared() (plain HTTP) and EtcdServer::shared_tls() (HTTPS with mandatory client
// certificates) start lazily on first use and live until exit; each test isolates itself with
// unique_prefix().
//
// TLS mode writes a throwaway CA, a server certificate (SAN IP:127.0.0.1) and a client
// certificate with the openssl CLI into the temp dir, and runs etcd with --client-cert-auth.
//
// Not thread-safe for construction/destruction; endpoint() and the file accessors may be read
// from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "stores/open_store.h"

namespace flannel::testing {

class EtcdServer {
 public:
  struct Options {
    bool tls = false;  // https with --client-cert-auth
    // false: etcd without --enable-v2 (as etcd 3.5/3.6 run by default): only the v3 API (and
    // its /v3 JSON gateway) answers, so nothing can pass through v2 by accident.
    bool enable_v2 = true;
    std::chrono::milliseconds start_timeout{20000};
  };

  // Starts etcd; throws std::runtime_error (with the end of etcd's log) if it does not come up.
  explicit EtcdServer(Options options);
  EtcdServer() : EtcdServer(Options{}) {}
  ~EtcdServer();
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // Process-wide instances, started on first use and stopped at exit.
  static EtcdServer& shared();
  static EtcdServer& shared_tls();
  // The same with the v2 API disabled (enable_v2 = false), for the etcd v3 store.
  static EtcdServer& shared_v3();
  static EtcdServer& shared_v3_tls();

  // "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT".
  const std::string& endpoint() const { return endpoint_; }
  bool tls() const { return options_.tls; }
  // TLS mode only (empty otherwise): PEM files in the temp dir.
  const std::string& ca_file() const { return ca_file_; }
  const std::string& client_cert_file() const { return client_cert_; }
  const std::string& client_key_file() const { return client_key_; }

  // EtcdOptions for a client of this server: its endpoint, the prefix, and in TLS mode the CA
  // and client certificate.
  EtcdOptions client_options(const std::string& prefix) const;

  // A prefix no other test of this process (or any other process) uses:
  // "/flannel-test/<pid>-<counter>-<tag>".
  static std::string unique_prefix(const std::string& tag = "t");

  // A raw HTTP exchange with this server, bypassing the Store code (for wire-level checks and
  // for writing data the way another agent would). `path` includes the query, e.g.
  // "/v2/keys/a/b?recursive=true". A body is sent as application/x-www-form-urlencoded (etcd's
  // /v2/auth API reads JSON from it all the same). `userpwd` ("user:password") adds basic auth.
  struct RawResponse {
    long status = 0;  // 0 = transport failure, see error
    std::string body;
    std::string etcd_index;  // X-Etcd-Index header, "" if absent
    std::string error;
  };
  RawResponse raw(const std::string& method, const std::string& path,
                  const std::string& form_body = "", const std::string& userpwd = "") const;

  // The value of the unlabelled metric `name` on etcd's /metrics, -1 if it cannot be read.
  // E.g. etcd_debugging_store_watch_requests_total, the v2 watch requests etcd has taken so far:
  // a test awaits it growing to know its watch_leases() call reached etcd, instead of sleeping.
  double metric(const std::string& name) const;

  // Stops etcd now (the destructor does it otherwise). Further requests fail to connect.
  void stop();

  // Simulates a lost data dir: stops etcd, deletes its data dir and starts a fresh etcd on the
  // same client and peer ports (same TLS mode), returning once it answers. The new etcd has the
  // same cluster id (same member name and peer URL) and starts again at a low X-Etcd-Index.
  // Throws std::runtime_error if it does not come up.
  void wipe_and_restart();

  // A 127.0.0.1 TCP port that was free a moment ago (bound to port 0 and released).
  static int free_port();

 private:
  void start_once();  // picks free ports, then launch()
  void launch();      // starts etcd on client_port_/peer_port_ and waits until it answers
  bool wait_ready(std::chrono::steady_clock::time_point deadline, std::string* why);
  bool etcd_exited(std::string* why);    // reaps etcd if it exited; *why says how
  bool answers(std::string* why) const;  // health and the API are up; else *why says what not
  void make_certs();
  std::string log_tail() const;

  Options options_;
  std::string dir_;  // temp dir: data, log, certs
  std::string endpoint_;
  std::string ca_file_, client_cert_, client_key_, server_cert_, server_key_;
  int client_port_ = 0, peer_port_ = 0;
  pid_t pid_ = -1;
};

// Runs a program (argv[0] looked up in PATH) with its output appended to `log_path`; returns its
// exit status, or -1 if it could not be started.
int run_program(const std::vector<std::string>& argv, const std::string& log_path);

}  // namespace flannel::testing
