#include "daemon/agent/agent.h"

#include <set>

#include "core/subnet_env.h"
#include "daemon/agent/agent_clock.h"
#include "daemon/agent/heap.h"
#include "daemon/agent/sd_notify.h"
#include "daemon/common/logging.h"
#include "daemon/common/subnet_file.h"

namespace flannel {
namespace {

using namespace std::chrono;

double unix_seconds(const std::optional<Clock::time_point>& t) {
  if (!t) return 0;
  return duration<double>(t->time_since_epoch()).count();
}

}  // namespace

Agent::Agent(AgentSettings settings, Store& store, ExternalInterface iface, Metrics& metrics,
             BackendFactory backends)
    : settings_(std::move(settings)),
      store_(store),
      iface_(std::move(iface)),
      metrics_(metrics),
      make_backend_(std::move(backends)),
      keeper_(store, metrics, settings_.lease_ttl),
      set_aside_(settings_.peer_retry_first, settings_.peer_retry_max) {
  public_v6_ = iface_.ext_v6_addr;
}

void Agent::set_state(AgentState s) {
  // Readers never see a state with a stale readiness: not ready before leaving kHolding.
  const bool ready = s == AgentState::kHolding && !hold_.iface_down;
  if (!ready) ready_ = false;
  if (state_.exchange(s) != s) FLOG_V(1, "Agent state: {}", to_string(s));
  if (ready) ready_ = true;
  metrics_.ready = ready;
}

int Agent::run(std::stop_token stop) {
  AgentState state = AgentState::kWaitingForConfig;
  set_state(state);
  while (state != AgentState::kStopping) {
    state = step(state, stop);
    set_state(state);
  }
  return exit_code_;
}

AgentState Agent::step(AgentState state, std::stop_token stop) {
  AgentEvent event = stop.stop_requested() ? AgentEvent::kStop : handle(state, stop);
  if (event == AgentEvent::kFatal) exit_code_ = 1;
  return transition(state, event);
}

AgentEvent Agent::handle(AgentState state, std::stop_token stop) {
  switch (state) {
    case AgentState::kWaitingForConfig: return read_config(stop);
    case AgentState::kAcquiring: return acquire(stop);
    case AgentState::kHolding: return hold(stop);
    case AgentState::kLost: return reacquire(stop);
    case AgentState::kStopping: break;
  }
  return AgentEvent::kStop;
}

// --- the first valid config (kWaitingForConfig) ---

AgentEvent Agent::start_with(Config config) {
  config_ = std::move(config);
  FLOG_INFO("Network config: {}", config_->str());
  if (!prepare_interface() || !start_backend()) return AgentEvent::kFatal;
  set_admission_rules();
  PreviousRun previous = read_previous_run();
  NetRulesSettings rules{settings_.ip_masq,           settings_.iptables_forward_rules,
                         settings_.iptables_resync,   settings_.enable_nftables,
                         settings_.iptables_mode,     settings_.ip_masq_fully_random_disable,
                         settings_.ip_blackhole_route};
  net_rules_ = std::make_unique<NetRules>(std::move(rules), previous,
                                          [this](bool nftables, bool ipv6, uint64_t n) {
                                            metrics_.count_rule_repairs(nftables, ipv6, n);
                                          });
  hold_.next_backend_check = every(backend_->check_interval());
  hold_.next_lease_check = every(settings_.lease_check_interval);
  start_following();
  return AgentEvent::kOk;
}

bool Agent::start_backend() {
  try {
    backend_ = make_backend_(config_->backend_type);
    backend_->set_notify([](const std::string& line) { FLOG_INFO("{}", line); });
    setup_ = backend_->setup(*config_, iface_);
    // With IPv6 on, the lease always advertises PublicIPv6 (a backend that writes no IPv6 data
    // of its own, e.g. alloc, still says where the host is).
    if (config_->enable_ipv6 && !setup_.attrs.public_ipv6)
      setup_.attrs.public_ipv6 = iface_.ext_v6_addr;
  } catch (const std::exception& e) {
    FLOG_ERROR("Error registering network: {}", e.what());
    return false;
  }
  return true;
}

bool Agent::prepare_interface() {
  if (config_->enable_ipv6 && config_->backend_type == "udp") {
    FLOG_ERROR(
        "The udp backend is IPv4 only but the network config has EnableIPv6 true: use the "
        "vxlan or host-gw backend for IPv6, or set EnableIPv6 to false");
    return false;
  }
  if (auto problem = complete_interface(iface_, true)) {
    FLOG_ERROR("{}", *problem);
    return false;
  }
  return true;
}

std::optional<std::string> Agent::complete_interface(ExternalInterface& e, bool log) const {
  if (!config_->enable_ipv4) e.ext_addr = IP4{};  // current flannel advertises PublicIP 0.0.0.0
  if (!config_->enable_ipv6) {                    // nothing IPv6 is advertised or configured
    e.iface_v6_addr.reset();
    e.ext_v6_addr.reset();
    return std::nullopt;
  }
  if (!e.iface_v6_addr && settings_.find_iface_v6) {
    try {
      e.iface_v6_addr = settings_.find_iface_v6(e);
    } catch (const std::exception& err) {
      return "Cannot read the IPv6 addresses of interface " + e.name + ": " + err.what();
    }
  }
  if (!e.iface_v6_addr && !e.ext_v6_addr) {
    return "failed to find IPv6 address for interface " + e.name + " (EnableIPv6 is true: give " +
           e.name +
           " a global or link-local IPv6 address that is not deprecated, or set -public-ipv6)";
  }
  if (!e.iface_v6_addr) e.iface_v6_addr = e.ext_v6_addr;
  if (e.ext_v6_addr) {
    if (log)
      FLOG_INFO("Using {} as external IPv6 address (interface IPv6 address {})",
                e.ext_v6_addr->str(), e.iface_v6_addr->str());
  } else {
    e.ext_v6_addr = e.iface_v6_addr;
    if (log)
      FLOG_INFO("Defaulting external IPv6 address to interface IPv6 address ({})",
                e.ext_v6_addr->str());
  }
  return std::nullopt;
}

// --- kAcquiring and kLost ---

AgentEvent Agent::acquire(std::stop_token stop) {
  AgentEvent event = establish(rereg_ ? std::optional(rereg_->old) : previous_key_, stop);
  if (event != AgentEvent::kFailed) return event;
  if (stop.stop_requested()) return AgentEvent::kStop;
  // At start a local error (backend, rules, subnet file) is the operator's to fix; after a
  // store reset the agent held a lease before, so it keeps trying as it does for a lost one.
  return rereg_ ? try_again_later(stop) : AgentEvent::kFatal;
}

AgentEvent Agent::reacquire(std::stop_token stop) {
  AgentEvent event = establish(lease_.key(), stop);
  return event == AgentEvent::kFailed ? try_again_later(stop) : event;
}

AgentEvent Agent::try_again_later(std::stop_token stop) {
  rereg_.reset();  // no summary line for a re-registration that failed
  if (!sleep_unless_stopped(stop, settings_.retry_pause)) return AgentEvent::kStop;
  FLOG_WARNING("Lease {} is still not held; re-acquiring", lease_.key().str());
  return AgentEvent::kFailed;
}

AgentEvent Agent::establish(std::optional<LeaseKey> previous, std::stop_token stop) {
  LeaseList seen;
  auto lease = keeper_.acquire(*config_, setup_.attrs, previous, stop, &seen);
  if (!lease) return AgentEvent::kStop;
  std::optional<LeaseKey> old;
  if (lease_.key() != LeaseKey{}) old = lease_.key();
  lease_ = *lease;
  FLOG_INFO("Lease acquired: {}", lease_.key().str());
  if (old && *old != lease_.key()) {
    FLOG_WARNING("Subnet changed from {} to {}", old->str(), lease_.key().str());
  }
  peers_.set_own(lease_.key());
  try {
    install_lease();
  } catch (const std::exception& e) {
    FLOG_ERROR("{}", e.what());
    return AgentEvent::kFailed;
  }
  lease_updated();
  // The full peer set from the list the lease was chosen from: no second list of every lease.
  // The watch continues from that list's revision, so whatever changed since (our own write
  // included) arrives as events, and a store reset right after our write is the first watch's
  // answer (kStoreReset).
  hold_.new_peers = std::move(seen);
  return AgentEvent::kOk;
}

void Agent::install_lease() {
  if (!ensure_backend())
    throw std::runtime_error("Cannot install lease " + lease_.key().str() +
                             ": the backend is not set up");
  backend_->lease_acquired(lease_);
  // rules in place before subnet.env: IPv4 rules only with IPv4 on (an IPv6-only lease's v4 part
  // is the 0.0.0.0/0 placeholder), IPv6 rules when the lease has an IPv6 subnet
  RulesTarget target{config_->network,   lease_.subnet,        std::nullopt,
                     lease_.ipv6_subnet, config_->enable_ipv4, config_->enable_nftables};
  if (config_->enable_ipv6) target.network6 = config_->ipv6_network;
  net_rules_->apply(target);
  net_rules_->wait();  // the rules (or their logged failure) before anyone reads subnet.env
  write_subnet_file();
}

// --- steps ---

void Agent::write_subnet_file(bool only_if_changed) {
  SubnetEnv env = make_subnet_env(*config_, lease_.key(), setup_.mtu, settings_.ip_masq);
  const std::string text = render_subnet_env(env);
  try {
    if (only_if_changed && read_file_if_exists(settings_.subnet_file) == text) return;
    write_file_atomic(settings_.subnet_file, text);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("Failed to write subnet file: ") + e.what());
  }
  FLOG_V(1, "Wrote {}", settings_.subnet_file);
}

void Agent::lease_updated() {
  metrics_.lease_expiry_seconds = unix_seconds(lease_.expiration);
  hold_.next_renew.reset();  // a reservation is never renewed
  if (lease_.expiration) {
    hold_.next_renew = *lease_.expiration - duration_cast<Clock::duration>(settings_.renew_margin);
  }
}

void Agent::count_peers() {
  metrics_.peers = peers_.size();
  metrics_.ipv6_peers = peers_.ipv6_peers();  // kept by the cache: no pass over the peers per event
  for (const auto& r : peers_.take_new_refusals()) {
    metrics_.count_refusal(r.refusal.reason);
    FLOG_WARNING("Refusing lease {} ({}): {}; it is not programmed and stays in the store",
                 subnet_key(r.lease.key()), refusal_name(r.refusal.reason), r.refusal.detail);
  }
  metrics_.refused_leases = peers_.refused().size();
}

void Agent::set_admission_rules() {
  AdmissionRules rules = AdmissionRules::from_config(*config_);
  for (IP4 ip : {iface_.iface_addr, iface_.ext_addr, setup_.attrs.public_ip})
    if (!ip.is_zero()) rules.own_ip4.push_back(ip);
  for (const auto& ip : {iface_.iface_v6_addr, iface_.ext_v6_addr, setup_.attrs.public_ipv6})
    if (ip) rules.own_ip6.push_back(*ip);
  rules.backend_data = [this](const Lease& peer) -> std::optional<std::string> {
    if (!backend_) return std::nullopt;  // rebuilding: sync() judges the peer instead
    return backend_->refuse_peer_data(peer);
  };
  peers_.set_rules(std::move(rules));
}

Status Agent::resync() {
  LeaseList list;
  Status s = store_.list_leases(&list);
  if (!s.ok()) {
    metrics_.store_errors++;
    FLOG_WARNING("Cannot list leases ({}): {}", to_string(s.code), s.message);
    return s;
  }
  sync_peers(std::move(list));
  return s;
}

void Agent::sync_peers(LeaseList list) {
  for (const auto& w : list.warnings) {
    metrics_.malformed_entries++;
    FLOG_WARNING("Ignoring bad subnet node: {}", w);
  }
  hold_.cursor = list.revision;
  if (hold_.reset_grace_until) {  // keep the peers that have not re-registered yet
    std::set<LeaseKey> listed;
    for (const auto& l : list.leases) listed.insert(l.key());
    for (const auto& [subnet, lease] : peers_.peers())
      if (!listed.count(subnet)) list.leases.push_back(lease);
  }
  auto diff = peers_.resync(list.leases);
  FLOG_V(1, "Resync: {} peers, {} changes", peers_.size(), diff.size());
  Restarted restarted = restart_changed(diff);
  list = LeaseList();
  diff.clear();
  diff.shrink_to_fit();
  sync_backend(restarted);
  // A full sync is rare (start, lost history, store reset) and its transient memory large.
  if (long released = release_free_heap(); released > 0)
    FLOG_V(1, "Released {} kB of free heap after the sync", released / 1024);
}

}  // namespace flannel
