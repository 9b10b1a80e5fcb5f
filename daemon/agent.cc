#include "daemon/agent.h"

#include <algorithm>
#include <ctime>

#include "core/subnet_env.h"
#include "daemon/logging.h"
#include "daemon/sd_notify.h"
#include "daemon/subnet_file.h"

namespace flannel {
namespace {

using namespace std::chrono;

constexpr auto kConfigRetry = seconds(1);
constexpr auto kMaxWatchWait = seconds(30);

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

}  // namespace

Agent::Agent(AgentSettings settings, Store& store, ExternalInterface iface, Metrics& metrics)
    : settings_(std::move(settings)),
      store_(store),
      iface_(std::move(iface)),
      metrics_(metrics),
      keeper_(store, metrics, settings_.lease_ttl) {}

std::optional<Config> Agent::wait_for_config(std::stop_token stop) {
  std::string last_problem;
  while (!stop.stop_requested()) {
    std::string json;
    Status s = store_.get_config(&json);
    std::string problem;
    if (s.ok()) {
      try {
        return parse_config(json);
      } catch (const ConfigError& e) {
        problem = "Network config at " + settings_.config_key + " is invalid: " + e.what();
      }
    } else if (s.code == StoreCode::kNotFound) {
      problem = "Network config not found at " + settings_.config_key +
                "; waiting for it (write it with: flannelctl config set '{\"Network\":\"10.5.0.0/16\"}')";
    } else {
      metrics_.store_errors++;
      problem = "Cannot read network config from " + store_.describe() + ": " + s.message;
    }
    // Log each distinct problem once at warning level, repeats only at -v 1.
    if (problem != last_problem) {
      FLOG_WARNING("{}", problem);
      last_problem = problem;
    } else {
      FLOG_V(1, "{}", problem);
    }
    if (!sleep_unless_stopped(stop, kConfigRetry)) break;
  }
  return std::nullopt;
}

PreviousRun Agent::read_previous_run() {
  PreviousRun prev;
  try {
    auto text = read_file_if_exists(settings_.subnet_file);
    if (!text) return prev;
    auto env = parse_env_file(*text);
    std::string warning;
    prev.subnet = previous_subnet_from_env(env, &warning);
    if (!warning.empty()) FLOG_WARNING("Ignoring previous subnet in {}: {}", settings_.subnet_file, warning);
    prev.network = cidr_from_env(env, "FLANNEL_NETWORK");
    prev.ip_masq = env.count("FLANNEL_IPMASQ") && env.at("FLANNEL_IPMASQ") == "true";
    if (prev.subnet) FLOG_INFO("Found previous subnet {} in {}", prev.subnet->str(), settings_.subnet_file);
  } catch (const std::exception& e) {
    FLOG_WARNING("Ignoring unreadable subnet file {}: {}", settings_.subnet_file, e.what());
  }
  return prev;
}

int Agent::run(std::stop_token stop) {
  config_ = wait_for_config(stop);
  if (!config_) return 0;
  FLOG_INFO("Network config: {}", config_->str());
  try {
    backend_ = make_backend(config_->backend_type);
    backend_->set_notify([](const std::string& line) { FLOG_INFO("{}", line); });
    setup_ = backend_->setup(*config_, iface_);
  } catch (const std::exception& e) {
    FLOG_ERROR("Error registering network: {}", e.what());
    return 1;
  }

  PreviousRun previous = read_previous_run();
  net_rules_ = std::make_unique<NetRules>(
      NetRulesSettings{settings_.ip_masq, settings_.iptables_forward_rules, settings_.iptables_resync},
      previous);

  if (!establish_lease(previous.subnet, stop)) return stop.stop_requested() ? 0 : 1;
  watch_loop(stop);
  return 0;
}

bool Agent::establish_lease(std::optional<IP4Net> previous, std::stop_token stop) {
  metrics_.ready = false;
  auto lease = keeper_.acquire(*config_, setup_.attrs, previous, stop);
  if (!lease) return false;
  lease_ = *lease;
  metrics_.lease_expiry_seconds = unix_seconds(lease_.expiration);
  FLOG_INFO("Lease acquired: {}", lease_.subnet.str());
  peers_.set_own(lease_.subnet);
  try {
    backend_->lease_acquired(lease_);
    net_rules_->apply(config_->network, lease_.subnet);  // rules in place before subnet.env
    write_subnet_file();
  } catch (const std::exception& e) {
    FLOG_ERROR("{}", e.what());
    return false;
  }
  metrics_.ready = true;
  std::string err;
  if (!sd_notify("READY=1", &err)) FLOG_WARNING("Cannot notify systemd: {}", err);
  return true;
}

void Agent::write_subnet_file() {
  SubnetEnv env = make_subnet_env(config_->network, lease_.subnet, setup_.mtu, settings_.ip_masq);
  try {
    write_file_atomic(settings_.subnet_file, render_subnet_env(env));
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("Failed to write subnet file: ") + e.what());
  }
  FLOG_V(1, "Wrote {}", settings_.subnet_file);
}

void Agent::send_to_backend(const std::vector<PeerEvent>& batch) {
  metrics_.peers = peers_.size();
  if (!backend_->wants_peers()) return;
  // The first batch is the full peer set, even when empty: backends use it to remove kernel
  // state left for leases that vanished while the agent was down.
  if (batch.empty() && backend_synced_) return;
  backend_synced_ = true;
  size_t added = std::count_if(batch.begin(), batch.end(),
                               [](const PeerEvent& e) { return e.type == PeerEvent::Type::kAdded; });
  FLOG_V(1, "Applying {} peer changes ({} added, {} removed)", batch.size(), added,
         batch.size() - added);
  try {
    backend_->apply(batch);
  } catch (const std::exception& e) {
    FLOG_ERROR("Backend {} failed to apply {} peer changes: {}", backend_->type(), batch.size(),
               e.what());
  }
}

bool Agent::resync(uint64_t* cursor) {
  LeaseList list;
  Status s = store_.list_leases(&list);
  if (!s.ok()) {
    metrics_.store_errors++;
    FLOG_WARNING("Cannot list leases ({}): {}", to_string(s.code), s.message);
    return false;
  }
  for (const auto& w : list.warnings) {
    metrics_.malformed_entries++;
    FLOG_WARNING("Ignoring bad subnet node: {}", w);
  }
  *cursor = list.revision;
  send_to_backend(peers_.resync(list.leases));
  return true;
}

bool Agent::check_own_event(const LeaseEvent& ev) {
  if (ev.type == LeaseEventType::kRemoved) return false;
  if (ev.lease.revision == lease_.revision) return true;  // the echo of our own write
  if (ev.lease.attrs == lease_.attrs) {
    // Rewritten with our attrs by someone else (an admin tool, an old agent's renewal): adopt
    // the new revision so our next CAS renewal matches.
    lease_.revision = ev.lease.revision;
    lease_.expiration = ev.lease.expiration;
    metrics_.lease_expiry_seconds = unix_seconds(lease_.expiration);
    return true;
  }
  return false;
}

void Agent::lease_lost(const std::string& why, std::stop_token stop, uint64_t* cursor) {
  metrics_.leases_lost++;
  metrics_.ready = false;
  FLOG_WARNING("Lease {} {}; re-acquiring", lease_.subnet.str(), why);
  IP4Net old = lease_.subnet;
  if (!establish_lease(old, stop)) return;
  if (lease_.subnet != old) FLOG_WARNING("Subnet changed from {} to {}", old.str(), lease_.subnet.str());
  while (!resync(cursor) && sleep_unless_stopped(stop, seconds(1))) {
  }
}

void Agent::watch_loop(std::stop_token stop) {
  uint64_t cursor = 0;
  while (!resync(&cursor)) {
    if (!sleep_unless_stopped(stop, seconds(1))) return;
  }
  auto renew_at = [&]() -> std::optional<Clock::time_point> {
    if (!lease_.expiration) return std::nullopt;  // a reservation is never renewed
    return *lease_.expiration - duration_cast<Clock::duration>(settings_.renew_margin);
  };
  std::optional<Clock::time_point> next_renew = renew_at();
  const auto check_every = backend_->check_interval();
  std::optional<Clock::time_point> next_check;
  if (check_every.count() > 0) next_check = Clock::now() + check_every;

  while (!stop.stop_requested()) {
    if (!metrics_.ready) {  // a failed re-acquire (already logged): try again shortly
      if (!sleep_unless_stopped(stop, seconds(1))) return;
      lease_lost("is still not held", stop, &cursor);
      next_renew = renew_at();
      continue;
    }
    auto now = Clock::now();
    if (next_renew && now >= *next_renew) {
      Status s = keeper_.renew(&lease_);
      if (s.ok()) {
        metrics_.lease_expiry_seconds = unix_seconds(lease_.expiration);
        FLOG_INFO("Lease renewed, new expiration: {}", utc(*lease_.expiration));
        next_renew = renew_at();
      } else if (s.code == StoreCode::kNotFound || s.code == StoreCode::kConflict) {
        lease_lost("could not be renewed (" + s.message + ")", stop, &cursor);
        next_renew = renew_at();
        continue;
      } else {
        metrics_.store_errors++;
        auto left = lease_.expiration ? *lease_.expiration - now : Clock::duration(minutes(1));
        auto wait = std::min<Clock::duration>(minutes(1), std::max<Clock::duration>(left / 2, seconds(1)));
        FLOG_ERROR("Error renewing lease ({}): {}; retrying in {}s", to_string(s.code), s.message,
                   duration_cast<seconds>(wait).count());
        next_renew = now + wait;
      }
    }
    if (next_check && now >= *next_check) {
      try {
        backend_->check();
      } catch (const std::exception& e) {
        FLOG_ERROR("Backend {} check failed: {}", backend_->type(), e.what());
      }
      next_check = Clock::now() + check_every;
    }
    auto wait = duration_cast<milliseconds>(kMaxWatchWait);
    for (const auto& deadline : {next_renew, next_check}) {
      if (!deadline) continue;
      auto until = duration_cast<milliseconds>(*deadline - Clock::now());
      wait = std::clamp(until, milliseconds(1), wait);
    }
    WatchResult w = store_.watch_leases(cursor, wait, stop);
    for (const auto& warning : w.warnings) {
      metrics_.malformed_entries++;
      FLOG_WARNING("Ignoring bad subnet event: {}", warning);
    }
    switch (w.status.code) {
      case StoreCode::kOk: {
        cursor = w.revision;
        metrics_.watch_events += w.events.size();
        std::vector<LeaseEvent> others;
        bool lost = false;
        for (const auto& ev : w.events) {
          if (ev.lease.subnet == lease_.subnet) {
            if (!check_own_event(ev)) lost = true;
          } else {
            others.push_back(ev);
          }
        }
        send_to_backend(peers_.apply(others));
        if (lost) {
          lease_lost("has been revoked or taken over", stop, &cursor);
          next_renew = renew_at();
        }
        break;
      }
      case StoreCode::kTimeout:
        if (w.revision > cursor) cursor = w.revision;
        break;
      case StoreCode::kCancelled:
        return;
      case StoreCode::kHistoryGone:
        metrics_.watch_resyncs++;
        FLOG_WARNING("Watch fell behind the store's history (revision {}); resyncing", cursor);
        if (resync(&cursor)) {
          Lease mine;
          Status s = store_.get_lease(lease_.subnet, &mine);
          if (s.code == StoreCode::kNotFound || (s.ok() && !(mine.attrs == lease_.attrs))) {
            lease_lost("disappeared while the watch was behind", stop, &cursor);
            next_renew = renew_at();
          } else if (s.ok()) {
            lease_.revision = mine.revision;
            lease_.expiration = mine.expiration;
          }
        }
        break;
      default:
        metrics_.store_errors++;
        FLOG_WARNING("Watch error ({}): {}; retrying in 1s", to_string(w.status.code),
                     w.status.message);
        sleep_unless_stopped(stop, seconds(1));
        break;
    }
  }
}

}  // namespace flannel
