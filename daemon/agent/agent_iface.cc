// Agent: following the external interface while the lease is held (agent.h, "Following the
// external interface"). The kernel's link and address notifications (and route notifications
// when the flags' choice depends on routes) wake the agent (IfaceWatch, Waker); it looks the
// interface up again with the flags it started with:
//  - gone, down, without carrier or without address: not ready; the lease and the routes to
//    other hosts stay (nothing better can be done), and the next notification looks again;
//  - back, or another address, index or MTU: the backend is rebuilt on it (a new instance, as at
//    start: its device re-pointed or recreated), the lease republished with CAS if what it
//    announces changed, subnet.env rewritten if a field in it changed, every peer programmed
//    again, ready. No restart, no new subnet.
#include <algorithm>
#include <chrono>

#include "daemon/agent/agent.h"
#include "daemon/agent/agent_clock.h"
#include "daemon/common/logging.h"

namespace flannel {
namespace {

bool same_interface(const ExternalInterface& a, const ExternalInterface& b) {
  return a.name == b.name && a.index == b.index && a.mtu == b.mtu && a.iface_addr == b.iface_addr &&
         a.ext_addr == b.ext_addr && a.iface_v6_addr == b.iface_v6_addr &&
         a.ext_v6_addr == b.ext_v6_addr;
}

// "10.0.0.1" or "10.0.0.1 and fd00::1": what the interface advertises.
std::string addresses(const ExternalInterface& e) {
  std::string s = e.ext_addr.str();
  if (e.ext_v6_addr) s += " and " + e.ext_v6_addr->str();
  return s;
}

}  // namespace

void Agent::start_following() {
  if (!settings_.watch_iface || iface_watch_) return;
  try {
    iface_watch_ = std::make_unique<IfaceWatch>(
        iface_.index, [this] { waker_.wake(); }, settings_.iface_routes);
  } catch (const std::exception& e) {
    FLOG_WARNING("{}; address and link changes of {} are not followed (restart to pick them up)",
                 e.what(), iface_.name);
    return;
  }
  waker_.wake();  // a change between the choice at start and the subscription
}

std::optional<ExternalInterface> Agent::look_again(std::string* why_not) const {
  ExternalInterface now;
  try {
    now = settings_.find_iface();
  } catch (const std::exception& e) {
    *why_not = e.what();
    return std::nullopt;
  }
  now.ext_v6_addr = public_v6_;
  if (auto problem = complete_interface(now, false)) {
    *why_not = *problem;
    return std::nullopt;
  }
  return now;
}

AgentEvent Agent::follow_interface() {
  hold_.next_iface_look.reset();
  if (!settings_.find_iface) return AgentEvent::kOk;
  std::string why_not;
  std::optional<ExternalInterface> found = look_again(&why_not);
  if (!found) {
    interface_down(why_not);
    return AgentEvent::kOk;
  }
  ExternalInterface& now = *found;
  if (iface_watch_) iface_watch_->follow(now.index);
  if (!hold_.iface_down && backend_ && same_interface(now, iface_)) {
    auto gone = backend_->device_gone();
    if (!gone) return AgentEvent::kOk;
    FLOG_WARNING("Backend {}: {}; setting it up again", backend_->type(), *gone);
  }
  const ExternalInterface old = iface_;
  iface_ = std::move(now);
  return reattach(old);
}

void Agent::interface_down(const std::string& why) {
  if (iface_watch_) iface_watch_->follow(0);  // whatever comes may bring it back
  if (hold_.iface_down != why) {
    FLOG_WARNING(
        "External interface {} cannot carry the overlay: {}; not ready, keeping lease {} and "
        "the routes to other hosts until it is back",
        iface_.name, why, lease_.key().str());
  }
  hold_.iface_down = why;
  set_state(AgentState::kHolding);  // not ready
}

AgentEvent Agent::reattach(const ExternalInterface& old) {
  const auto started = std::chrono::steady_clock::now();
  backend_.reset();  // the old devices' names are taken again by the new instance
  if (!ensure_backend()) return rebuild_failed();
  try {
    backend_->lease_acquired(lease_);
  } catch (const std::exception& e) {
    FLOG_ERROR("Backend {} cannot take lease {} again: {}", backend_->type(), lease_.key().str(),
               e.what());
    backend_.reset();
    return rebuild_failed();
  }
  hold_.iface_retry = std::chrono::milliseconds(0);
  hold_.next_backend_check = every(backend_->check_interval());
  set_admission_rules();
  // What the lease announces (PublicIP, a VTEP MAC derived from the address): a renewal (CAS)
  // writes it; a failed one is retried as renewals are, or re-acquires the subnet if it is lost.
  const bool republish = !(setup_.attrs == lease_.attrs);
  AgentEvent event = AgentEvent::kOk;
  if (republish) {
    lease_.attrs = setup_.attrs;
    event = renew();
  }
  write_subnet_file(true);
  sync_backend();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  FLOG_INFO(
      "External interface {} (index {}, {}) is now {} (index {}, {}); lease {} {}, {} peers "
      "programmed again in {} ms",
      old.name, old.index, addresses(old), iface_.name, iface_.index, addresses(iface_),
      lease_.key().str(), republish ? "republished" : "unchanged", peers_.size(), ms);
  hold_.iface_down.reset();
  if (event == AgentEvent::kOk) set_state(AgentState::kHolding);  // ready
  return event;
}

AgentEvent Agent::rebuild_failed() {
  // Looked at again at the next notification, or after a pause that doubles up to 30 s.
  using std::chrono::milliseconds;
  hold_.iface_retry = hold_.iface_retry.count() == 0
                          ? settings_.retry_pause
                          : std::min<milliseconds>(hold_.iface_retry * 2, std::chrono::seconds(30));
  hold_.next_iface_look = every(hold_.iface_retry);
  interface_down("its backend could not be set up on it (tried again in " +
                 std::to_string(hold_.iface_retry.count()) + " ms at the latest)");
  return AgentEvent::kOk;
}

bool Agent::ensure_backend() {
  if (backend_) return true;
  std::string why_not;  // not found: start_backend() says what is wrong with iface_
  if (settings_.find_iface)
    if (auto now = look_again(&why_not)) iface_ = std::move(*now);
  return start_backend();
}

}  // namespace flannel
