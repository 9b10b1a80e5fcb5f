#include "daemon/agent/agent_states.h"

#include <cstdlib>

#include "daemon/common/logging.h"

namespace flannel {
namespace {

using S = AgentState;
using E = AgentEvent;

// The machine. Keep each line short: render_agent_states() must stay within 97 columns, so
// that agent.h's "// " copy fits in 100 and a comment formatter leaves it alone.
constexpr AgentTransition kTransitions[] = {
    {S::kWaitingForConfig, E::kOk, S::kAcquiring,
     "at start: backend, rules; after a reset: grace starts"},
    {S::kWaitingForConfig, E::kRetry, S::kWaitingForConfig,
     "missing or invalid: logged once, read again after a pause"},
    {S::kWaitingForConfig, E::kOutage, S::kWaitingForConfig,
     "counted, logged, read again after a pause"},
    {S::kWaitingForConfig, E::kStoreReset, S::kWaitingForConfig, "read again at once"},
    {S::kWaitingForConfig, E::kFatal, S::kStopping,
     "at start: interface or backend unusable: exit 1"},
    {S::kWaitingForConfig, E::kStop, S::kStopping, "exit 0"},
    {S::kAcquiring, E::kOk, S::kHolding, "lease written (CAS), backend, rules, `subnet.env`"},
    {S::kAcquiring, E::kFailed, S::kLost, "after a store reset: a local error, tried again"},
    {S::kAcquiring, E::kFatal, S::kStopping, "at start: a local error: exit 1"},
    {S::kAcquiring, E::kStop, S::kStopping, "exit 0"},
    {S::kHolding, E::kOk, S::kHolding, "one input handled"},
    {S::kHolding, E::kRetry, S::kHolding, "renewal sooner; lease read back at the next check"},
    {S::kHolding, E::kOutage, S::kHolding, "`store_down`: lease read back, peers listed again"},
    {S::kHolding, E::kLeaseLost, S::kLost, "counted, logged"},
    {S::kHolding, E::kStoreReset, S::kWaitingForConfig,
     "counted, logged; our subnet re-registered if still free"},
    {S::kHolding, E::kStop, S::kStopping, "exit 0; lease, `subnet.env`, devices stay"},
    {S::kLost, E::kOk, S::kHolding, "re-acquired: the same subnet if still free"},
    {S::kLost, E::kFailed, S::kLost, "tried again after a pause"},
    {S::kLost, E::kStop, S::kStopping, "exit 0"},
};

constexpr const AgentTransition* find(AgentState state, AgentEvent event) {
  for (const auto& t : kTransitions)
    if (t.state == state && t.event == event) return &t;
  return nullptr;
}

// Grouped by state in enum order, each pair once, and every state but kStopping stops.
constexpr bool well_formed() {
  for (size_t i = 1; i < std::size(kTransitions); ++i)
    if (kTransitions[i].state < kTransitions[i - 1].state) return false;
  for (const auto& t : kTransitions)
    if (find(t.state, t.event) != &t || t.state == S::kStopping) return false;
  for (auto s : {S::kWaitingForConfig, S::kAcquiring, S::kHolding, S::kLost})
    if (!find(s, E::kStop) || find(s, E::kStop)->next != S::kStopping) return false;
  return true;
}
static_assert(well_formed(), "kTransitions: grouped by state, one line per pair, a stop for each");

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

const char* to_string(AgentEvent event) {
  switch (event) {
    case AgentEvent::kOk: return "ok";
    case AgentEvent::kRetry: return "retry";
    case AgentEvent::kOutage: return "outage";
    case AgentEvent::kLeaseLost: return "lease lost";
    case AgentEvent::kStoreReset: return "store reset";
    case AgentEvent::kFailed: return "failed";
    case AgentEvent::kFatal: return "fatal";
    case AgentEvent::kStop: return "stop";
  }
  return "unknown";
}

AgentEvent classify(StoreCall call, StoreCode code) {
  using C = StoreCode;
  if (code == C::kOk) return E::kOk;
  if (code == C::kStoreReset) return E::kStoreReset;
  switch (call) {
    case StoreCall::kGetConfig:
      return code == C::kNotFound ? E::kRetry : E::kOutage;  // not written yet: wait for it
    case StoreCall::kRenew:
      return code == C::kNotFound || code == C::kConflict ? E::kLeaseLost : E::kRetry;
    case StoreCall::kCheckLease:
      if (code == C::kNotFound) return E::kLeaseLost;
      return code == C::kUnavailable ? E::kOutage : E::kRetry;
    case StoreCall::kCheckLeaseAfterOutage:
      if (code == C::kNotFound) return E::kStoreReset;
      return code == C::kUnavailable ? E::kOutage : E::kRetry;
    case StoreCall::kList: return E::kRetry;
    case StoreCall::kListAfterOutage: return code == C::kUnavailable ? E::kOutage : E::kRetry;
    case StoreCall::kWatch:
      if (code == C::kTimeout || code == C::kCancelled) return E::kOk;
      return code == C::kHistoryGone ? E::kRetry : E::kOutage;
  }
  return E::kRetry;
}

std::span<const AgentTransition> agent_transitions() { return kTransitions; }

AgentState transition(AgentState state, AgentEvent event) {
  if (const AgentTransition* t = find(state, event)) return t->next;
  FLOG_ERROR("Bug: the agent's table has no transition for event '{}' in state '{}'",
             to_string(event), to_string(state));
  std::abort();
}

std::string render_agent_states() {
  std::string out = "| state | on | next | what is done |\n|---|---|---|---|\n";
  const AgentTransition* prev = nullptr;
  for (const auto& t : kTransitions) {
    const bool first = !prev || prev->state != t.state;
    out += std::string("| ") + (first ? to_string(t.state) : "") + " | " + to_string(t.event) +
           " | " + to_string(t.next) + " | " + t.action + " |\n";
    prev = &t;
  }
  return out;
}

}  // namespace flannel
