#include "backends/rules/rule_keeper.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace flannel {
namespace {

bool contains(const std::vector<IptablesRule>& set, const IptablesRule& r) {
  return std::find(set.begin(), set.end(), r) != set.end();
}

// The chains of `table` that `rules` use, in order of first appearance.
std::vector<std::string> chains_of(const std::vector<IptablesRule>& rules,
                                   const std::string& table) {
  std::vector<std::string> chains;
  for (const auto& r : rules)
    if (r.table == table && std::find(chains.begin(), chains.end(), r.chain) == chains.end())
      chains.push_back(r.chain);
  return chains;
}

}  // namespace

// ---- RuleKeeper ------------------------------------------------------------------------------

RuleKeeper::RuleKeeper(Iptables iptables, std::string name, std::vector<IptablesRule> rules)
    : iptables_(std::move(iptables)), name_(std::move(name)), rules_(std::move(rules)) {}

RuleKeeper::~RuleKeeper() { stop(); }

std::vector<RuleKeeper::Inserted> RuleKeeper::ensure() {
  MutexLock lock(&ops_mu_);
  return ensure_locked();
}

std::vector<RuleKeeper::Inserted> RuleKeeper::ensure_locked() {
  std::vector<Inserted> inserted;
  std::vector<std::string> tables;  // in order of first appearance, one restore each
  for (const auto& r : rules_)
    if (std::find(tables.begin(), tables.end(), r.table) == tables.end()) tables.push_back(r.table);
  for (const auto& table : tables) {
    std::vector<IptablesRule> inserts;
    for (const auto& chain : chains_of(rules_, table)) {
      std::vector<IptablesRule> set;
      for (const auto& r : rules_)
        if (r.table == table && r.chain == chain) set.push_back(r);
      std::string listing = iptables_.list(table, chain);
      auto positions = listed_positions(listing, set);
      // The listing is the fast path; -C stays the truth for a rule it does not show, unless
      // every rule the chain holds was recognised as one of ours (an empty chain, typically):
      // then a rule not shown is not there.
      bool unknown = count_saved_rules(listing) >
                     std::count_if(positions.begin(), positions.end(),
                                   [](const std::optional<int>& p) { return p.has_value(); });
      std::vector<bool> present;
      bool all = true;
      for (size_t i = 0; i < set.size(); ++i) {
        present.push_back(positions[i].has_value() || (unknown && iptables_.exists(set[i])));
        all = all && present.back();
      }
      if (all) continue;
      for (const auto& step : plan_inserts(present, positions)) {
        inserts.push_back(set[step.rule]);
        inserted.push_back({set[step.rule], step.position});
      }
    }
    if (inserts.empty()) continue;
    std::vector<int> at;
    for (size_t i = inserted.size() - inserts.size(); i < inserted.size(); ++i)
      at.push_back(inserted[i].position);
    iptables_.restore(restore_inserts(table, inserts, at));
  }
  return inserted;
}

int RuleKeeper::remove() {
  stop();
  MutexLock lock(&ops_mu_);
  verified_.reset();
  int n = 0;
  for (const auto& r : rules_) n += iptables_.remove(r) ? 1 : 0;
  return n;
}

void RuleKeeper::set_rules(std::vector<IptablesRule> rules) {
  MutexLock lock(&ops_mu_);
  verified_.reset();  // other rules: the next pass checks them
  std::vector<IptablesRule> old = std::exchange(rules_, std::move(rules));
  ensure_locked();
  for (const auto& r : old)
    if (!contains(rules_, r)) iptables_.remove(r);
}

std::vector<IptablesRule> RuleKeeper::rules() const {
  MutexLock lock(&ops_mu_);
  return rules_;
}

RuleKeeperStats RuleKeeper::stats() const {
  ResyncThread::Stats r = resync_.stats();
  MutexLock lock(&ops_mu_);
  return {r.passes, rules_restored_, r.failures, skipped_, r.last_error};
}

void RuleKeeper::set_change_probe(std::function<std::optional<uint32_t>()> probe) {
  MutexLock lock(&ops_mu_);
  probe_ = std::move(probe);
}

void RuleKeeper::start(std::chrono::milliseconds period, Listener listener) {
  auto pass = [this] {
    std::vector<std::string> restored;
    MutexLock lock(&ops_mu_);
    // Read before the check: a change during it makes the next value differ.
    const std::optional<uint32_t> probed = probe_ ? probe_() : std::nullopt;
    if (probed && probed == verified_) {
      ++skipped_;
      return restored;
    }
    verified_.reset();
    for (const auto& i : ensure_locked()) {
      restored.push_back(name_ + ": restored missing iptables rule at position " +
                         std::to_string(i.position) + ": " + i.rule.str());
    }
    if (restored.empty()) verified_ = probed;  // after a repair: check again next time
    rules_restored_ += restored.size();
    return restored;
  };
  resync_.start(name_, name_ + ": cannot check iptables rules", period, pass, std::move(listener));
}

void RuleKeeper::stop() { resync_.stop(); }

}  // namespace flannel
