// The agent's state machine as data: its states, the events that move it from one to the next,
// the one function that turns a store's answer into such an event, and the table of transitions
// (state, event -> next state, what is done).
//
// The table is the machine, not a picture of it: Agent::run() takes every transition through
// transition(), which looks the pair up in the table, so the code cannot take a transition the
// table does not show. render_agent_states() prints the table as the Markdown shown in README.md
// ("## The agent's states") and in agent.h's header comment; a unit test checks both copies.
//
// Thread-safety: pure functions over constants; safe from any thread.
#pragma once

#include <span>
#include <string>

#include "stores/store.h"

namespace flannel {

enum class AgentState { kWaitingForConfig, kAcquiring, kHolding, kLost, kStopping };
const char* to_string(AgentState state);

// What moves the agent: the classified answer of a store call, or one of the agent's own.
enum class AgentEvent {
  kOk,          // done as hoped: config valid, lease held, events applied, renewal, check
  kRetry,       // not done, nothing lost: done again later (config missing, renewal, ...)
  kOutage,      // the store did not answer (a watch, a read-back of our lease)
  kLeaseLost,   // our lease is gone or is another host's now
  kStoreReset,  // the store lost its data or was replaced (see stores/store.h)
  kFailed,      // a local step failed (backend, rules, subnet file): tried again
  kFatal,       // this host cannot run the network as configured: exit 1
  kStop,        // the stop token fired
};
const char* to_string(AgentEvent event);

// The store calls whose answers the agent tells apart; the same code means different things
// to different calls (kNotFound: config not written yet, or our lease gone).
enum class StoreCall {
  kGetConfig,
  kRenew,                  // CAS renewal of our lease
  kCheckLease,             // our lease read back (periodic check, after lost history)
  kCheckLeaseAfterOutage,  // the same, when the store answers again after an outage
  kList,                   // the leases listed again (lost history, end of the reset grace)
  kListAfterOutage,
  kWatch,
};

// The one mapping from a store's answer to what it means for the agent. kOk and kStoreReset
// mean the same to every call. Our lease missing after an outage is a store reset: a wiped etcd
// that already wrote past our index cannot show it otherwise. A watch that fell behind the
// store's history is kRetry (list again); kTimeout and kCancelled are kOk (nothing happened).
AgentEvent classify(StoreCall call, StoreCode code);

struct AgentTransition {
  AgentState state;
  AgentEvent event;
  AgentState next;
  const char* action;  // what is done, in a few words
};

// Every transition, grouped by state in the order of AgentState.
std::span<const AgentTransition> agent_transitions();

// The next state for `event` in `state`, from the table. A pair missing from the table is a
// bug in the agent: it is logged and the process aborts (the unit tests drive every pair).
AgentState transition(AgentState state, AgentEvent event);

// The table as Markdown: a header line, a separator line and one line per transition, each
// ending in '\n'; the state is written on the first of its lines only.
std::string render_agent_states();

}  // namespace flannel
