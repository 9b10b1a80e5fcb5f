#include "daemon/agent/agent.h"

#include <algorithm>
#include <ctime>
#include <set>

#include "core/subnet_env.h"
#include "daemon/agent/heap.h"
#include "daemon/common/logging.h"
#include "daemon/agent/sd_notify.h"
#include "daemon/common/subnet_file.h"

namespace flannel {
namespace {

using namespace std::chrono;
using Steady = steady_clock;

std::string utc(Clock::time_point t) {
  std::time_t tt = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

double unix_seconds(const std::optional<Clock::time_point>& t) {
  if (!t) return 0;
  return duration<double>(t->time_since_epoch()).count();
}

bool due(const std::optional<Clock::time_point>& t) { return t && Clock::now() >= *t; }

// The next deadline of a periodic duty, or none when its interval is 0.
template <class Duration>
std::optional<Clock::time_point> every(Duration interval) {
  if (interval.count() <= 0) return std::nullopt;
  return Clock::now() + duration_cast<Clock::duration>(interval);
}

}  // namespace

const char* to_string(AgentState state) {
  switch (state) {
    case AgentState::kWaitingForConfig: return "waiting for config";
    case AgentState::kAcquiring: return "acquiring";
    case AgentState::kHolding: return "holding";
    case AgentState::kLost: return "lost";
    case AgentState::kStopping: return "stopping";
  }
  return "unknown";
}

Agent::Agent(AgentSettings settings, Store& store, ExternalInterface iface, Metrics& metrics,
             BackendFactory backends)
    : settings_(std::move(settings)),
      store_(store),
      iface_(std::move(iface)),
      metrics_(metrics),
      make_backend_(std::move(backends)),
      keeper_(store, metrics, settings_.lease_ttl) {}

void Agent::set_state(AgentState s) {
  // Readers never see a state with a stale readiness: not ready before leaving kHolding.
  const bool ready = s == AgentState::kHolding;
  if (!ready) ready_ = false;
  if (state_.exchange(s) != s) FLOG_V(1, "Agent state: {}", to_string(s));
  if (ready) ready_ = true;
  metrics_.ready = ready;
}

int Agent::run(std::stop_token stop) {
  set_state(AgentState::kWaitingForConfig);
  config_ = wait_for_config(stop);
  if (!config_) {
    set_state(AgentState::kStopping);
    return 0;
  }
  FLOG_INFO("Network config: {}", config_->str());
  if (!prepare_interface()) {
    set_state(AgentState::kStopping);
    return 1;
  }
  try {
    backend_ = make_backend_(config_->backend_type);
    backend_->set_notify([](const std::string& line) { FLOG_INFO("{}", line); });
    setup_ = backend_->setup(*config_, iface_);
    // With IPv6 on, the lease always advertises PublicIPv6 (a backend that writes no IPv6 data
    // of its own, e.g. alloc, still says where the host is).
    if (config_->enable_ipv6 && !setup_.attrs.public_ipv6) setup_.attrs.public_ipv6 = iface_.ext_v6_addr;
  } catch (const std::exception& e) {
    FLOG_ERROR("Error registering network: {}", e.what());
    set_state(AgentState::kStopping);
    return 1;
  }

  PreviousRun previous = read_previous_run();
  net_rules_ = std::make_unique<NetRules>(
      NetRulesSettings{settings_.ip_masq, settings_.iptables_forward_rules, settings_.iptables_resync},
      previous);

  next_backend_check_ = every(backend_->check_interval());
  next_lease_check_ = every(settings_.lease_check_interval);
  set_state(AgentState::kAcquiring);
  if (!establish(previous_key_, stop)) {
    set_state(AgentState::kStopping);
    return stop.stop_requested() ? 0 : 1;
  }
  holding(stop);
  set_state(AgentState::kStopping);
  return 0;
}

bool Agent::prepare_interface() {
  if (config_->enable_ipv6 && config_->backend_type == "udp") {
    FLOG_ERROR("The udp backend is IPv4 only but the network config has EnableIPv6 true: use the "
               "vxlan or host-gw backend for IPv6, or set EnableIPv6 to false");
    return false;
  }
  if (!config_->enable_ipv4) iface_.ext_addr = IP4{};  // current flannel advertises PublicIP 0.0.0.0
  if (!config_->enable_ipv6) {  // nothing IPv6 is advertised or configured
    iface_.iface_v6_addr.reset();
    iface_.ext_v6_addr.reset();
    return true;
  }
  if (!iface_.iface_v6_addr && settings_.find_iface_v6) {
    try {
      iface_.iface_v6_addr = settings_.find_iface_v6(iface_);
    } catch (const std::exception& e) {
      FLOG_ERROR("Cannot read the IPv6 addresses of interface {}: {}", iface_.name, e.what());
      return false;
    }
  }
  if (!iface_.iface_v6_addr && !iface_.ext_v6_addr) {
    FLOG_ERROR("failed to find IPv6 address for interface {} (EnableIPv6 is true: give {} a global "
               "or link-local IPv6 address that is not deprecated, or set -public-ipv6)",
               iface_.name, iface_.name);
    return false;
  }
  if (!iface_.iface_v6_addr) iface_.iface_v6_addr = iface_.ext_v6_addr;
  if (iface_.ext_v6_addr) {
    FLOG_INFO("Using {} as external IPv6 address (interface IPv6 address {})", iface_.ext_v6_addr->str(),
              iface_.iface_v6_addr->str());
  } else {
    iface_.ext_v6_addr = iface_.iface_v6_addr;
    FLOG_INFO("Defaulting external IPv6 address to interface IPv6 address ({})", iface_.ext_v6_addr->str());
  }
  return true;
}

bool Agent::establish(std::optional<LeaseKey> previous, std::stop_token stop) {
  LeaseList seen;
  auto lease = keeper_.acquire(*config_, setup_.attrs, previous, stop, &seen);
  if (!lease) return false;
  std::optional<LeaseKey> old;
  if (lease_.key() != LeaseKey{}) old = lease_.key();
  lease_ = *lease;
  FLOG_INFO("Lease acquired: {}", lease_.key().str());
  if (old && *old != lease_.key()) {
    FLOG_WARNING("Subnet changed from {} to {}", old->str(), lease_.key().str());
  }
  peers_.set_own(lease_.key());
  try {
    backend_->lease_acquired(lease_);
    // rules in place before subnet.env: iptables only with IPv4 on (an IPv6-only lease's v4 part
    // is the 0.0.0.0/0 placeholder), ip6tables when the lease has an IPv6 subnet
    std::optional<IP6Net> network6;
    if (config_->enable_ipv6) network6 = config_->ipv6_network;
    net_rules_->apply(config_->network, lease_.subnet, network6, lease_.ipv6_subnet, config_->enable_ipv4);
    write_subnet_file();
  } catch (const std::exception& e) {
    FLOG_ERROR("{}", e.what());
    return false;
  }
  lease_updated();
  set_state(AgentState::kHolding);
  if (!notified_) {
    notified_ = true;
    std::string err;
    if (!sd_notify("READY=1", &err)) FLOG_WARNING("Cannot notify systemd: {}", err);
  }
  // The full peer set from the list the lease was chosen from: no second list of every lease.
  // The watch continues from that list's revision, so whatever changed since (our own write
  // included) arrives as events, and a store reset right after our write is the first watch's
  // answer (kStoreReset).
  sync_peers(std::move(seen));
  return true;
}

void Agent::write_subnet_file() {
  SubnetEnv env = make_subnet_env(*config_, lease_.key(), setup_.mtu, settings_.ip_masq);
  try {
    write_file_atomic(settings_.subnet_file, render_subnet_env(env));
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("Failed to write subnet file: ") + e.what());
  }
  FLOG_V(1, "Wrote {}", settings_.subnet_file);
}

void Agent::lease_updated() {
  metrics_.lease_expiry_seconds = unix_seconds(lease_.expiration);
  next_renew_.reset();  // a reservation is never renewed
  if (lease_.expiration) {
    next_renew_ = *lease_.expiration - duration_cast<Clock::duration>(settings_.renew_margin);
  }
}

void Agent::count_peers() {
  metrics_.peers = peers_.size();
  metrics_.ipv6_peers = peers_.ipv6_peers();  // kept by the cache: no pass over the peers per event
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
  cursor_ = list.revision;
  if (reset_grace_until_) {  // keep the peers that have not re-registered yet
    std::set<LeaseKey> listed;
    for (const auto& l : list.leases) listed.insert(l.key());
    for (const auto& [subnet, lease] : peers_.peers())
      if (!listed.count(subnet)) list.leases.push_back(lease);
  }
  auto diff = peers_.resync(list.leases);
  FLOG_V(1, "Resync: {} peers, {} changes", peers_.size(), diff.size());
  list = LeaseList();
  diff.clear();
  diff.shrink_to_fit();
  sync_backend();
  // A full sync is rare (start, lost history, store reset) and its transient memory large.
  if (long released = release_free_heap(); released > 0)
    FLOG_V(1, "Released {} kB of free heap after the sync", released / 1024);
}

void Agent::sync_backend() {
  count_peers();
  next_sync_retry_.reset();
  if (!backend_->wants_peers()) return;
  std::vector<Lease> all;
  all.reserve(peers_.size());
  for (const auto& [subnet, lease] : peers_.peers()) all.push_back(lease);
  try {
    backend_->sync(all);
  } catch (const std::exception& e) {
    FLOG_ERROR("Backend {} failed to sync {} peers: {}; retrying", backend_->type(), all.size(),
               e.what());
    next_sync_retry_ = Clock::now() + duration_cast<Clock::duration>(settings_.retry_pause);
  }
}

void Agent::send_to_backend(const std::vector<PeerEvent>& batch, Steady::time_point arrived) {
  count_peers();
  if (batch.empty() || !backend_->wants_peers()) return;
  size_t added = std::count_if(batch.begin(), batch.end(),
                               [](const PeerEvent& e) { return e.type == PeerEvent::Type::kAdded; });
  FLOG_V(1, "Applying {} peer changes ({} added, {} removed)", batch.size(), added,
         batch.size() - added);
  try {
    backend_->apply(batch);
  } catch (const std::exception& e) {
    // The kernel may now differ from the peer set: a full sync shortly brings it back.
    FLOG_ERROR("Backend {} failed to apply {} peer changes: {}; a full sync follows",
               backend_->type(), batch.size(), e.what());
    next_sync_retry_ = Clock::now() + duration_cast<Clock::duration>(settings_.retry_pause);
    return;
  }
  auto took = duration<double>(Steady::now() - arrived).count();
  metrics_.peer_apply_seconds.observe(took);
  FLOG_V(2, "Peer changes applied in {} us ({} changes, from the watch answer to the last ack)",
         static_cast<long>(took * 1e6), batch.size());
}

void Agent::holding(std::stop_token stop) {
  const auto check_every = backend_->check_interval();
  while (!stop.stop_requested()) {
    if (state() == AgentState::kLost) {  // a failed re-acquire (already logged): again shortly
      if (!sleep_unless_stopped(stop, settings_.retry_pause)) return;
      on_lease_lost("is still not held", stop);
      continue;
    }
    if (due(next_renew_)) on_renew_due(stop);
    if (state() != AgentState::kHolding) continue;
    if (due(next_lease_check_)) {
      next_lease_check_ = every(settings_.lease_check_interval);
      on_lease_check_due(stop);
      if (state() != AgentState::kHolding) continue;
    }
    if (due(next_backend_check_)) {
      next_backend_check_ = every(check_every);
      on_backend_check_due();
    }
    if (due(next_sync_retry_)) sync_backend();
    if (after_outage_) {
      on_store_back(stop);
      if (after_outage_ && !sleep_unless_stopped(stop, settings_.retry_pause)) return;  // still down
      if (state() != AgentState::kHolding || after_outage_) continue;
    }
    if (due(reset_grace_until_)) {  // the re-registrations are in: forget who never came back
      reset_grace_until_.reset();
      if (resync().code == StoreCode::kStoreReset) on_store_reset("resyncing after a reset", stop);
      continue;
    }

    auto wait = settings_.max_watch_wait;
    for (const auto& deadline :
         {next_renew_, next_lease_check_, next_backend_check_, next_sync_retry_, reset_grace_until_}) {
      if (!deadline) continue;
      auto until = duration_cast<milliseconds>(*deadline - Clock::now());
      wait = std::clamp(until, milliseconds(1), wait);
    }
    WatchResult w = store_.watch_leases(cursor_, wait, stop);
    on_watch(w, Steady::now(), stop);
  }
}

void Agent::on_watch(const WatchResult& w, Steady::time_point arrived, std::stop_token stop) {
  for (const auto& warning : w.warnings) {
    metrics_.malformed_entries++;
    FLOG_WARNING("Ignoring bad subnet event: {}", warning);
  }
  switch (w.status.code) {
    case StoreCode::kOk: {
      cursor_ = w.revision;
      metrics_.watch_events += w.events.size();
      std::vector<LeaseEvent> others;
      bool lost = false;
      for (const auto& ev : w.events) {
        if (ev.lease.key() == lease_.key()) {
          if (!check_own_event(ev)) lost = true;
        } else {
          others.push_back(ev);
        }
      }
      send_to_backend(peers_.apply(others), arrived);
      if (lost) on_lease_lost("has been revoked or taken over", stop);
      return;
    }
    case StoreCode::kTimeout:
      if (w.revision > cursor_) cursor_ = w.revision;
      return;
    case StoreCode::kCancelled:
      return;
    case StoreCode::kHistoryGone:
      metrics_.watch_resyncs++;
      FLOG_WARNING("Watch fell behind the store's history (revision {}); resyncing", cursor_);
      if (Status s = resync(); s.code == StoreCode::kStoreReset) {
        on_store_reset("listing after lost history", stop);
      } else if (s.ok()) {
        verify_own_lease(stop, "disappeared while the watch was behind");
      }
      return;
    case StoreCode::kStoreReset:
      on_store_reset("watch: " + w.status.message, stop);
      return;
    default:
      metrics_.store_errors++;
      FLOG_WARNING("Watch error ({}): {}; retrying in {} ms", to_string(w.status.code),
                   w.status.message, settings_.retry_pause.count());
      after_outage_ = true;
      sleep_unless_stopped(stop, settings_.retry_pause);
      return;
  }
}

bool Agent::check_own_event(const LeaseEvent& ev) {
  if (ev.type == LeaseEventType::kRemoved) return false;
  if (ev.lease.revision == lease_.revision) return true;  // the echo of our own write
  if (ev.lease.attrs == lease_.attrs) {
    // Rewritten with our attrs by someone else (an admin tool, an old agent's renewal): adopt
    // the new revision so our next CAS renewal matches.
    lease_.revision = ev.lease.revision;
    lease_.expiration = ev.lease.expiration;
    lease_updated();
    return true;
  }
  return false;
}

void Agent::on_renew_due(std::stop_token stop) {
  Status s = keeper_.renew(&lease_);
  if (s.ok()) {
    lease_updated();
    FLOG_INFO("Lease renewed, new expiration: {}", utc(*lease_.expiration));
  } else if (s.code == StoreCode::kNotFound || s.code == StoreCode::kConflict) {
    on_lease_lost("could not be renewed (" + s.message + ")", stop);
  } else if (s.code == StoreCode::kStoreReset) {
    on_store_reset("renewing the lease: " + s.message, stop);
  } else {
    metrics_.store_errors++;
    auto now = Clock::now();
    auto left = lease_.expiration ? *lease_.expiration - now : Clock::duration(minutes(1));
    auto wait = std::min<Clock::duration>(minutes(1), std::max<Clock::duration>(left / 2, seconds(1)));
    FLOG_ERROR("Error renewing lease ({}): {}; retrying in {}s", to_string(s.code), s.message,
               duration_cast<seconds>(wait).count());
    next_renew_ = now + wait;
  }
}

void Agent::on_lease_check_due(std::stop_token stop) {
  verify_own_lease(stop, "is no longer in the store");
}

bool Agent::verify_own_lease(std::stop_token stop, const char* when, bool missing_is_reset) {
  Lease mine;
  Status s = store_.get_lease(lease_.key(), &mine);
  if (s.code == StoreCode::kStoreReset) {
    on_store_reset("checking our lease: " + s.message, stop);
    return false;
  }
  if (s.code == StoreCode::kNotFound) {
    if (missing_is_reset) {
      on_store_reset(std::string("checking our lease: it ") + when, stop);
    } else {
      on_lease_lost(when, stop);
    }
    return false;
  }
  if (s.ok() && !(mine.attrs == lease_.attrs)) {
    on_lease_lost("was taken over (it now announces " + mine.attrs.public_ip.str() + ")", stop);
    return false;
  }
  if (!s.ok()) {  // transport trouble or a malformed value: look again at the next check
    metrics_.store_errors++;
    FLOG_WARNING("Cannot check lease {} ({}): {}", lease_.key().str(), to_string(s.code), s.message);
    if (s.code == StoreCode::kUnavailable) after_outage_ = true;
    return false;
  }
  if (mine.revision != lease_.revision) {
    lease_.revision = mine.revision;
    lease_.expiration = mine.expiration;
    lease_updated();
  }
  return true;
}

void Agent::on_store_back(std::stop_token stop) {
  after_outage_ = false;
  if (!verify_own_lease(stop, "was gone when the store answered again", /*missing_is_reset=*/true)) return;
  Status s = resync();
  if (s.code == StoreCode::kStoreReset) on_store_reset("listing after an outage: " + s.message, stop);
  if (s.code == StoreCode::kUnavailable) after_outage_ = true;
}

void Agent::on_backend_check_due() {
  try {
    backend_->check();
  } catch (const std::exception& e) {
    FLOG_ERROR("Backend {} check failed: {}", backend_->type(), e.what());
  }
}

void Agent::on_lease_lost(const std::string& why, std::stop_token stop) {
  if (state() != AgentState::kLost) metrics_.leases_lost++;
  set_state(AgentState::kLost);
  FLOG_WARNING("Lease {} {}; re-acquiring", lease_.key().str(), why);
  if (!establish(lease_.key(), stop) && !stop.stop_requested()) set_state(AgentState::kLost);
}

void Agent::on_store_reset(const std::string& where, std::stop_token stop) {
  metrics_.store_resets++;
  const auto started = Steady::now();
  const LeaseKey old = lease_.key();
  FLOG_WARNING("Store {} was reset (it lost its data or was replaced; noticed while {}); "
               "re-registering", store_.describe(), where);
  set_state(AgentState::kWaitingForConfig);
  auto config = wait_for_config(stop);
  if (!config) return;  // stopped
  if (config->backend_type != config_->backend_type) {
    FLOG_WARNING("The re-read config names backend {} but this agent runs {}; restart flanneld to "
                 "switch backends", config->backend_type, config_->backend_type);
  }
  config_ = std::move(config);
  reset_grace_until_ = Clock::now() + duration_cast<Clock::duration>(settings_.reset_grace);
  set_state(AgentState::kAcquiring);
  if (!establish(old, stop)) {
    if (!stop.stop_requested()) set_state(AgentState::kLost);
    return;
  }
  auto ms = duration_cast<milliseconds>(Steady::now() - started).count();
  if (lease_.key() == old) {
    FLOG_INFO("Store reset handled: lease {} re-registered (same subnet), {} peers resynced in {} ms "
              "(peers not re-registered yet stay programmed for {} s)",
              lease_.key().str(), peers_.size(), ms, duration_cast<seconds>(settings_.reset_grace).count());
  } else {
    FLOG_WARNING("Store reset handled: subnet {} was taken, now holding {}; {} peers resynced in {} ms "
                 "(peers not re-registered yet stay programmed for {} s)",
                 old.str(), lease_.key().str(), peers_.size(), ms,
                 duration_cast<seconds>(settings_.reset_grace).count());
  }
}

}  // namespace flannel
