// flanneld: parse flags, pick the interface, open the store, serve health, run the agent.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <stop_token>
#include <thread>

#include "backends/registry.h"
#include "daemon/agent/agent.h"
#include "daemon/agent/heap.h"
#include "daemon/agent/http_server.h"
#include "daemon/agent/iface.h"
#include "daemon/agent/iface6.h"
#include "daemon/agent/metrics.h"
#include "daemon/agent/sd_notify.h"
#include "daemon/common/logging.h"
#include "daemon/common/options.h"
#include "stores/open_store.h"

extern char** environ;

namespace flannel {
namespace {

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGQUIT);
  return set;
}

// The stop signal received (0 before one arrives).
std::atomic<int> stop_signal{0};

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGQUIT: return "SIGQUIT";
    default: return "a signal";
  }
}

// SIGINT/SIGTERM/SIGQUIT request a clean stop; a second one kills at once (as v0.11 does). The
// signals are blocked at the top of main, before any thread exists (the log flusher is one), so
// only this thread ever receives them. SIGQUIT ends with exit status 2, as v0.11's Go runtime
// did: supervisord setups (seed 002: stopsignal=QUIT, exitcodes=0,2) expect that status, and
// without a handler SIGQUIT's default action dumped core.
void start_signal_thread(std::stop_source stop) {
  sigset_t set = stop_signals();
  std::thread([set, stop]() mutable {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) return;
    FLOG_INFO("Received {}, shutting down", signal_name(sig));
    stop_signal = sig;
    stop.request_stop();
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    for (;;) pause();
  }).detach();
}

HttpResponse health(const Agent& agent, const Metrics& metrics, const std::string& path) {
  if (path == "/healthz") return {200, "flanneld is running"};
  if (path == "/readyz") {
    if (agent.ready()) return {200, "ready"};
    return {503,
            "not ready: no lease held, subnet file not written yet, or the external interface "
            "is gone or down"};
  }
  if (path == "/metrics") return {200, metrics.render(), "text/plain; version=0.0.4"};
  return {404, "404 page not found\n"};
}

IfaceRequest iface_request(const Options& opts) {
  IfaceRequest req{opts.iface, opts.iface_regex, std::nullopt, std::nullopt};
  if (!opts.public_ip.empty()) req.public_ip = IP4::parse(opts.public_ip);
  if (!opts.iface_can_reach.empty()) req.can_reach = IP4::parse(opts.iface_can_reach);
  return req;
}

// The external interface from -iface / -iface-regex / -public-ip, logged as flannel does;
// nullopt (after logging why) when none is usable.
std::optional<ExternalInterface> find_interface(const Options& opts) {
  IfaceRequest req = iface_request(opts);
  ExternalInterface iface;
  std::vector<std::string> notes;
  try {
    iface = lookup_external_interface(req, &notes);
    for (const auto& n : notes) FLOG_INFO("Could not use {}", n);
  } catch (const std::exception& e) {
    for (const auto& n : notes) FLOG_INFO("Could not use {}", n);
    FLOG_ERROR("Failed to find any valid interface to use: {}", e.what());
    return std::nullopt;
  }
  FLOG_INFO("Using interface with name {} and address {}", iface.name, iface.iface_addr.str());
  if (req.public_ip) {
    FLOG_INFO("Using {} as external address", iface.ext_addr.str());
  } else {
    FLOG_INFO("Defaulting external address to interface address ({})", iface.ext_addr.str());
  }
  if (!opts.public_ipv6.empty()) iface.ext_v6_addr = IP6::parse(opts.public_ipv6);
  return iface;
}

// The store from -store and the -etcd-* flags; nullptr (after logging why) when it cannot be
// opened at all.
std::unique_ptr<Store> open_the_store(const Options& opts) {
  try {
    auto store = open_store(parse_store_spec(opts.store), etcd_options(opts), opts.etcd_prefix,
                            [](const std::string& line) { FLOG_INFO("{}", line); });
    FLOG_INFO("Using store {}", store->describe());
    return store;
  } catch (const std::exception& e) {
    FLOG_ERROR("Cannot open the store: {}", e.what());
    return nullptr;
  }
}

AgentSettings agent_settings(const Options& opts) {
  AgentSettings settings;
  IfaceRequest req = iface_request(opts);
  settings.find_iface = [req] { return lookup_usable_interface(req); };
  settings.watch_iface = true;
  // The choice follows routes unless -iface or -iface-regex name the link (-iface-can-reach is
  // also the fallback when they match nothing).
  settings.iface_routes.follow = (req.ifaces.empty() && req.regexes.empty()) || req.can_reach;
  settings.iface_routes.toward = req.can_reach;
  settings.find_iface_v6 = [](const ExternalInterface& i) {
    return preferred_ipv6(i.index, read_ipv6_addrs());
  };
  settings.subnet_file = opts.subnet_file;
  settings.ip_masq = opts.ip_masq;
  settings.iptables_forward_rules = opts.iptables_forward_rules;
  settings.iptables_resync = std::chrono::seconds(opts.iptables_resync);
  settings.enable_nftables = opts.enable_nftables;
  settings.iptables_mode = opts.iptables_mode;
  settings.ip_masq_fully_random_disable = opts.ip_masq_fully_random_disable;
  settings.ip_blackhole_route = opts.ip_blackhole_route;
  settings.renew_margin = std::chrono::minutes(opts.subnet_lease_renew_margin);
  std::string prefix = opts.etcd_prefix;
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  settings.config_key = prefix + "/config";
  settings.lease_check_interval = std::chrono::seconds(opts.lease_check_interval);
  return settings;
}

// The -healthz-port server (nullptr when the port is 0). Throws when it cannot listen.
std::unique_ptr<HttpServer> start_health_server(const Options& opts, Agent& agent,
                                                Metrics& metrics) {
  if (opts.healthz_port <= 0) return nullptr;
  auto http =
      std::make_unique<HttpServer>(opts.healthz_ip, opts.healthz_port,
                                   [&agent, &metrics](const std::string&, const std::string& path) {
                                     return health(agent, metrics, path);
                                   });
  const bool v6 = opts.healthz_ip.find(':') != std::string::npos;
  FLOG_INFO("Serving /healthz, /readyz and /metrics on {}{}{}:{}", v6 ? "[" : "", opts.healthz_ip,
            v6 ? "]" : "", http->port());
  return http;
}

// Runs the agent until a stop signal; the exit code of flanneld.
int run_agent(const Options& opts, const std::stop_source& stop) {
  std::optional<ExternalInterface> iface = find_interface(opts);
  if (!iface) return 1;
  std::unique_ptr<Store> store = open_the_store(opts);
  if (!store) return 1;
  Metrics metrics;
  BackendOptions backend_options;
  backend_options.vxlan_tx_checksum = parse_tx_checksum(opts.vxlan_tx_checksum).value();
  Agent agent(
      agent_settings(opts), *store, *iface, metrics,
      [backend_options](const std::string& type) { return create_backend(type, backend_options); });
  std::unique_ptr<HttpServer> http;
  try {
    http = start_health_server(opts, agent, metrics);
  } catch (const std::exception& e) {
    FLOG_ERROR("{}", e.what());
    return 1;
  }
  int rc = agent.run(stop.get_token());
  sd_notify("STOPPING=1");
  if (rc == 0 && stop_signal == SIGQUIT) {
    FLOG_INFO("Exiting with status 2 (SIGQUIT, as flannel v0.11)");
    return 2;
  }
  if (rc == 0) FLOG_INFO("Exiting cleanly...");
  return rc;
}

int run(int argc, char** argv) {
  sigset_t signals = stop_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // inherited by every thread started later
  int code = 0;
  auto opts = parse_flanneld_command_line(argc, argv, environment_map(environ), std::cerr, &code);
  if (!opts) return code;
  try {
    setup_logging(opts->log);
  } catch (const std::exception& e) {
    std::cerr << "flanneld: " << e.what() << "\n";
    return 2;
  }
  shrink_netlink_messages();
  std::stop_source stop;
  start_signal_thread(stop);
  FLOG_INFO("flanneld {} starting", FLANNEL_VERSION);
  for (const auto& s : opts->settings) FLOG_V(1, "flag {}", s.name + "=" + s.value);
  int rc = run_agent(*opts, stop);
  shutdown_logging();
  return rc;
}

}  // namespace
}  // namespace flannel

int main(int argc, char** argv) { return flannel::run(argc, argv); }
