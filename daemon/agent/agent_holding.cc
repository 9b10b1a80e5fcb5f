// Agent: kHolding, one handler per input (agent.h, "In kHolding a step handles one input"):
// the first sync of a new lease, renewal, the lease check, the backend check, the store coming
// back, the end of a reset's grace, and the watch with what it brings (peer events, our own
// lease changed, lost history, a store reset).
#include <algorithm>
#include <ctime>

#include "daemon/agent/agent.h"
#include "daemon/agent/agent_clock.h"
#include "daemon/agent/sd_notify.h"
#include "daemon/common/logging.h"

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

}  // namespace

// --- kHolding ---

AgentEvent Agent::hold(std::stop_token stop) {
  AgentEvent event = next_input(stop);
  if (event == AgentEvent::kOutage) hold_.store_down = true;
  return event;
}

AgentEvent Agent::next_input(std::stop_token stop) {
  if (hold_.new_peers) return settle_in();
  if (waker_.take() || due(hold_.next_iface_look)) return follow_interface();
  if (due(hold_.next_renew)) return renew();
  if (due(hold_.next_lease_check)) return check_lease();
  if (due(hold_.next_backend_check)) return check_backend();
  if (due(hold_.next_sync_retry)) {
    sync_backend();
    return AgentEvent::kOk;
  }
  if (set_aside_due()) return retry_set_aside();
  if (hold_.store_down) return store_back(stop);
  if (due(hold_.reset_grace_until)) return end_reset_grace();
  return watch(stop);
}

AgentEvent Agent::settle_in() {
  if (!notified_) {
    notified_ = true;
    std::string err;
    if (!sd_notify("READY=1", &err)) FLOG_WARNING("Cannot notify systemd: {}", err);
  }
  LeaseList list = std::move(*hold_.new_peers);
  hold_.new_peers.reset();
  sync_peers(std::move(list));
  if (rereg_) log_reset_handled();
  return AgentEvent::kOk;
}

AgentEvent Agent::renew() {
  Status s = keeper_.renew(&lease_);
  switch (classify(StoreCall::kRenew, s.code)) {
    case AgentEvent::kOk:
      lease_updated();
      FLOG_INFO("Lease renewed, new expiration: {}", utc(*lease_.expiration));
      return AgentEvent::kOk;
    case AgentEvent::kLeaseLost: return lease_lost("could not be renewed (" + s.message + ")");
    case AgentEvent::kStoreReset: return store_reset("renewing the lease: " + s.message);
    default: return renew_later(s);
  }
}

// Sooner than the margin: half the time left, between 1 s and 1 min.
AgentEvent Agent::renew_later(const Status& failure) {
  metrics_.store_errors++;
  auto now = Clock::now();
  auto left = lease_.expiration ? *lease_.expiration - now : Clock::duration(minutes(1));
  auto wait =
      std::min<Clock::duration>(minutes(1), std::max<Clock::duration>(left / 2, seconds(1)));
  FLOG_ERROR("Error renewing lease ({}): {}; retrying in {}s", to_string(failure.code),
             failure.message, duration_cast<seconds>(wait).count());
  hold_.next_renew = now + wait;
  return AgentEvent::kRetry;
}

AgentEvent Agent::check_lease() {
  hold_.next_lease_check = every(settings_.lease_check_interval);
  return verify_own_lease(StoreCall::kCheckLease, "is no longer in the store");
}

AgentEvent Agent::check_backend() {
  hold_.next_backend_check.reset();
  if (!backend_) return AgentEvent::kOk;  // set again when the backend is rebuilt
  hold_.next_backend_check = every(backend_->check_interval());
  try {
    backend_->check();
  } catch (const std::exception& e) {
    FLOG_ERROR("Backend {} check failed: {}", backend_->type(), e.what());
  }
  return AgentEvent::kOk;
}

AgentEvent Agent::verify_own_lease(StoreCall call, const char* when) {
  Lease mine;
  Status s = store_.get_lease(lease_.key(), &mine);
  AgentEvent event = classify(call, s.code);
  switch (event) {
    case AgentEvent::kOk: return adopt_or_lose(mine);
    case AgentEvent::kLeaseLost: return lease_lost(when);
    case AgentEvent::kStoreReset: {
      std::string why = s.code == StoreCode::kStoreReset ? s.message : std::string("it ") + when;
      return store_reset("checking our lease: " + why);
    }
    default:  // transport trouble or a malformed value: look again (kOutage: before the watch)
      metrics_.store_errors++;
      FLOG_WARNING("Cannot check lease {} ({}): {}", lease_.key().str(), to_string(s.code),
                   s.message);
      return event;
  }
}

AgentEvent Agent::adopt_or_lose(const Lease& mine) {
  if (!(mine.attrs == lease_.attrs)) {
    return lease_lost("was taken over (it now announces " + mine.attrs.public_ip.str() + ")");
  }
  if (mine.revision != lease_.revision) {
    lease_.revision = mine.revision;
    lease_.expiration = mine.expiration;
    lease_updated();
  }
  return AgentEvent::kOk;
}

// The first input after an outage: the store may have been replaced in a way its answers cannot
// show (a wiped etcd that already wrote past our index). Our lease gone means exactly that; else
// the peers are listed again. Still down: a pause, then this again.
AgentEvent Agent::store_back(std::stop_token stop) {
  hold_.store_down = false;
  AgentEvent event =
      verify_own_lease(StoreCall::kCheckLeaseAfterOutage, "was gone when the store answered again");
  if (event == AgentEvent::kOk) {
    Status s = resync();
    event = classify(StoreCall::kListAfterOutage, s.code);
    if (event == AgentEvent::kStoreReset) {
      return store_reset("listing after an outage: " + s.message);
    }
  }
  if (event == AgentEvent::kOutage && !sleep_unless_stopped(stop, settings_.retry_pause)) {
    return AgentEvent::kStop;
  }
  return event;
}

// The re-registrations are in: forget the peers that never came back.
AgentEvent Agent::end_reset_grace() {
  hold_.reset_grace_until.reset();
  AgentEvent event = classify(StoreCall::kList, resync().code);
  return event == AgentEvent::kStoreReset ? store_reset("resyncing after a reset") : event;
}

milliseconds Agent::watch_wait() const {
  auto wait = settings_.max_watch_wait;
  for (const auto& deadline :
       {hold_.next_renew, hold_.next_lease_check, hold_.next_backend_check, hold_.next_sync_retry,
        hold_.reset_grace_until, hold_.next_iface_look}) {
    if (!deadline) continue;
    auto until = duration_cast<milliseconds>(*deadline - Clock::now());
    wait = std::clamp(until, milliseconds(1), wait);
  }
  if (auto retry = set_aside_.earliest())  // steady clock: rounded up, so it is due on waking
    wait = std::clamp(ceil<milliseconds>(*retry - Steady::now()), milliseconds(1), wait);
  return wait;
}

AgentEvent Agent::watch(std::stop_token stop) {
  // Cut short by interface_may_have_changed() as by a stop (a cancelled watch changes nothing).
  WatchResult w = store_.watch_leases(hold_.cursor, watch_wait(), waker_.arm(stop));
  const auto arrived = Steady::now();
  for (const auto& warning : w.warnings) {
    metrics_.malformed_entries++;
    FLOG_WARNING("Ignoring bad subnet event: {}", warning);
  }
  switch (classify(StoreCall::kWatch, w.status.code)) {
    case AgentEvent::kOk: return apply_watch(w, arrived);
    case AgentEvent::kRetry: return relist_behind_history();
    case AgentEvent::kStoreReset: return store_reset("watch: " + w.status.message);
    default: return watch_failed(w.status, stop);
  }
}

AgentEvent Agent::apply_watch(const WatchResult& w, Steady::time_point arrived) {
  if (w.status.code != StoreCode::kOk) {  // timed out (maybe with the store's progress), cancelled
    const bool progress = w.status.code == StoreCode::kTimeout && w.revision > hold_.cursor;
    if (progress) hold_.cursor = w.revision;
    return AgentEvent::kOk;
  }
  hold_.cursor = w.revision;
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
  return lost ? lease_lost("has been revoked or taken over") : AgentEvent::kOk;
}

AgentEvent Agent::relist_behind_history() {
  metrics_.watch_resyncs++;
  FLOG_WARNING("Watch fell behind the store's history (revision {}); resyncing", hold_.cursor);
  AgentEvent event = classify(StoreCall::kList, resync().code);
  if (event == AgentEvent::kStoreReset) return store_reset("listing after lost history");
  if (event != AgentEvent::kOk) return event;
  return verify_own_lease(StoreCall::kCheckLease, "disappeared while the watch was behind");
}

AgentEvent Agent::watch_failed(const Status& s, std::stop_token stop) {
  metrics_.store_errors++;
  FLOG_WARNING("Watch error ({}): {}; retrying in {} ms", to_string(s.code), s.message,
               settings_.retry_pause.count());
  sleep_unless_stopped(stop, settings_.retry_pause);
  return AgentEvent::kOutage;
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

AgentEvent Agent::lease_lost(const std::string& why) {
  metrics_.leases_lost++;
  FLOG_WARNING("Lease {} {}; re-acquiring", lease_.key().str(), why);
  return AgentEvent::kLeaseLost;
}

AgentEvent Agent::store_reset(const std::string& where) {
  metrics_.store_resets++;
  rereg_ = Reregistration{lease_.key(), Steady::now()};
  FLOG_WARNING(
      "Store {} was reset (it lost its data or was replaced; noticed while {}); "
      "re-registering",
      store_.describe(), where);
  return AgentEvent::kStoreReset;
}

void Agent::log_reset_handled() {
  auto ms = duration_cast<milliseconds>(Steady::now() - rereg_->started).count();
  auto grace = duration_cast<seconds>(settings_.reset_grace).count();
  if (lease_.key() == rereg_->old) {
    FLOG_INFO(
        "Store reset handled: lease {} re-registered (same subnet), {} peers resynced in {} ms "
        "(peers not re-registered yet stay programmed for {} s)",
        lease_.key().str(), peers_.size(), ms, grace);
  } else {
    FLOG_WARNING(
        "Store reset handled: subnet {} was taken, now holding {}; {} peers resynced in {} ms "
        "(peers not re-registered yet stay programmed for {} s)",
        rereg_->old.str(), lease_.key().str(), peers_.size(), ms, grace);
  }
  rereg_.reset();
}

}  // namespace flannel
