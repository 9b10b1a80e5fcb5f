// RuleKeeper: keeps one iptables rule set (e.g. the masq rules) installed, in order, at the top
// of its chain(s), with a resync thread that puts back what someone removed.
//
// The check is cheap when nothing changed: one `iptables -S CHAIN` per chain of the set, compared
// in-process (listed_positions()); -C runs only for a rule the listing does not show while the
// chain holds rules we did not recognise (so a listing we fail to parse can never make us add a
// duplicate; an empty chain needs no -C). The missing rules of a table go
// in with one `iptables-restore --noflush` (one commit per table). Present rules are never
// deleted or moved, so a rule that exists stays in force throughout (no gap, facts §7.17).
//
// Thread safety: RuleKeeper serialises its own operations with a mutex; its public methods may
// be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backends/rules/iptables.h"
#include "backends/rules/resync.h"
#include "core/thread_annotations.h"

namespace flannel {

struct RuleKeeperStats {
  uint64_t passes = 0;          // resync passes run by the thread
  uint64_t rules_restored = 0;  // rules the thread had to insert again
  uint64_t failures = 0;        // passes that threw
  uint64_t skipped = 0;         // passes that ran no iptables: the change probe said unchanged
  std::string last_error;       // "" once a pass succeeds
};

// Keeps one rule set (e.g. the masq rules) installed, in order, at the top of its chain(s).
class RuleKeeper {
 public:
  using Listener = std::function<void(const ResyncEvent&)>;

  // `name` labels messages ("ip-masq", "forward"). Runs nothing yet.
  RuleKeeper(Iptables iptables, std::string name, std::vector<IptablesRule> rules);
  // Stops the thread. Leaves the rules installed (pods keep working while the agent restarts).
  ~RuleKeeper();
  RuleKeeper(const RuleKeeper&) = delete;
  RuleKeeper& operator=(const RuleKeeper&) = delete;

  struct Inserted {
    IptablesRule rule;
    int position = 0;
  };
  // Checks every rule (one listing per chain, -C for a rule it lacks when the chain holds rules
  // not recognised as ours); inserts only the missing
  // ones, each right after the earlier rules of the set (at the top of the chain when none is
  // present). Rules present are never deleted or moved, so a rule that exists stays in force
  // throughout. Idempotent: a second call inserts nothing. Returns what it inserted. Throws
  // IptablesError; rules inserted before the failure stay (the next call completes the set).
  std::vector<Inserted> ensure() EXCLUDES(ops_mu_);

  // Stops the resync thread (it would put them back; start() may run it again), then deletes
  // every rule of the set that is present (one copy each). Returns how many. Throws
  // IptablesError; the rules deleted before the failure stay deleted.
  int remove() EXCLUDES(ops_mu_);

  // Switches to another rule set without a gap: ensures the new rules first, then deletes those
  // of the old set that are not in the new one (e.g. after a lease re-acquired with another
  // subnet). Throws IptablesError; on failure the keeper holds the new set, which may be partly
  // installed, and the old rules not yet deleted stay.
  void set_rules(std::vector<IptablesRule> rules) EXCLUDES(ops_mu_);
  std::vector<IptablesRule> rules() const EXCLUDES(ops_mu_);

  // Before start(): a cheap probe of whether the rules can have changed (the nftables ruleset
  // generation, for iptables-nft: nft_probe.h), called on the resync thread. A pass that
  // finds the same value as after its last check that found everything in place runs no
  // iptables at all. nullopt from the probe means "unknown": the pass checks.
  void set_change_probe(std::function<std::optional<uint32_t>()> probe) EXCLUDES(ops_mu_);

  // Starts the resync thread: every `period` it runs ensure(), reporting restored rules, failures
  // and recoveries to `listener` (called on that thread; must not call back into this keeper;
  // kept until stop(), so what it captures must live that long).
  // The first pass runs one period after start: call ensure() yourself first. Throws
  // std::invalid_argument if period < 1 s, std::logic_error if already started.
  void start(std::chrono::milliseconds period, Listener listener);
  // Stops and joins the thread; returns as soon as a running iptables command finishes (at once
  // when the thread is waiting). Idempotent.
  void stop();

  RuleKeeperStats stats() const EXCLUDES(ops_mu_);

 private:
  std::vector<Inserted> ensure_locked() REQUIRES(ops_mu_);

  const Iptables iptables_;
  const std::string name_;

  mutable Mutex ops_mu_;  // also serialises the iptables commands of ensure/remove/set_rules
  std::vector<IptablesRule> rules_ GUARDED_BY(ops_mu_);
  uint64_t rules_restored_ GUARDED_BY(ops_mu_) = 0;
  uint64_t skipped_ GUARDED_BY(ops_mu_) = 0;
  std::function<std::optional<uint32_t>()> probe_ GUARDED_BY(ops_mu_);
  // The probe's value read before the last pass that found every rule in place.
  std::optional<uint32_t> verified_ GUARDED_BY(ops_mu_);

  ResyncThread resync_;  // last: stopped (by the destructor) before the rest goes
};

}  // namespace flannel
