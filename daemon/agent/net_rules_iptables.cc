// NetRules, iptables mode: the flavour, recycling the previous run's rules, the keepers, and
// cleaning our iptables rules away when nftables mode takes over.
#include "backends/rules/iptables_flavour.h"
#include "backends/rules/nft_probe.h"
#include "daemon/agent/net_rules.h"
#include "daemon/common/logging.h"

namespace flannel {
namespace {

// `iptables --version` (its first line), or "" when it cannot be run (logged).
std::string read_version(const Iptables& ipt) {
  try {
    return ipt.version();
  } catch (const IptablesError& e) {
    FLOG_ERROR("iptables: {}", e.what());
    return "";
  }
}

}  // namespace

void NetRules::choose_flavour() {
  if (flavour_chosen_) return;
  flavour_chosen_ = true;
  IptablesFlavour f = choose_iptables_flavour(settings_.iptables_mode);
  FLOG_INFO("iptables: using {} and {}: {}", f.iptables, f.ip6tables, f.reason);
  v4_.iptables = Iptables({f.iptables});
  v6_.iptables = Iptables({f.ip6tables});
}

template <typename Net>
void NetRules::ipt_recycle(IptFamily& f, const Net& network, const Net& subnet,
                           const std::optional<Net>& prev_network,
                           const std::optional<Net>& prev_subnet) {
  if (f.recycled) return;
  f.recycled = true;
  try {
    int n = 0;
    if (prev_network && prev_subnet) {
      if (settings_.ip_masq) {
        n += recycle_old_masq(f.iptables, *prev_network, *prev_subnet, network, subnet,
                              *f.random_fully);
      } else if (previous_.ip_masq) {
        n += delete_old_masq(f.iptables, *prev_network, *prev_subnet);
      }
    }
    if (settings_.forward_rules && prev_network)
      n += recycle_old_forward(f.iptables, *prev_network, network);
    if (n > 0)
      FLOG_INFO("Removed {} {} rules of the previous run ({} / {})", n, f.iptables.command_str(),
                prev_network ? prev_network->str() : "-", prev_subnet ? prev_subnet->str() : "-");
  } catch (const IptablesError& e) {
    FLOG_ERROR("{}: cannot recycle the previous run's rules: {}", f.iptables.command_str(),
               e.what());
  }
}

void NetRules::ipt_start(IptFamily& f, std::unique_ptr<RuleKeeper>& keeper, const char* name,
                         std::vector<IptablesRule> rules) {
  if (keeper) {
    try {
      keeper->set_rules(std::move(rules));  // adds the new rules before dropping the old ones
    } catch (const IptablesError& e) {      // the keeper's resync puts them in place later
      FLOG_ERROR("iptables: cannot move the {} rules to the new lease (will retry every {}s): {}",
                 name, settings_.resync.count(), e.what());
    }
    return;
  }
  keeper = std::make_unique<RuleKeeper>(f.iptables, name, std::move(rules));
  if (f.nft_backed) keeper->set_change_probe(nft_ruleset_generation);
  try {
    keeper->ensure();
  } catch (const IptablesError& e) {
    FLOG_ERROR("iptables: cannot install the {} rules (will retry every {}s): {}", name,
               settings_.resync.count(), e.what());
  }
  keeper->start(settings_.resync, [this, name, ipv6 = f.ipv6](const ResyncEvent& ev) {
    switch (ev.kind) {
      case ResyncEvent::Kind::kRestored:
        count_(false, ipv6, 1);  // one event per rule put back
        FLOG_WARNING("iptables {}: {}", name, ev.message);
        break;
      case ResyncEvent::Kind::kFailed: FLOG_ERROR("iptables {}: {}", name, ev.message); break;
      case ResyncEvent::Kind::kRecovered: FLOG_INFO("iptables {}: {}", name, ev.message); break;
    }
  });
}

template <typename Net>
void NetRules::ipt_apply(IptFamily& f, const Net& network, const Net& subnet,
                         const std::optional<Net>& prev_network,
                         const std::optional<Net>& prev_subnet) {
  if (!settings_.ip_masq && !settings_.forward_rules && !previous_.ip_masq) return;
  choose_flavour();
  if (!f.version) f.version = read_version(f.iptables);  // once, for both decisions below
  if (settings_.ip_masq && !f.random_fully) {
    if (settings_.fully_random_disable || f.version->empty()) {
      f.random_fully = false;
    } else {
      try {
        auto rf = f.iptables.random_fully_support(*f.version);
        FLOG_V(1, "{} --random-fully: {}", f.iptables.command_str(), rf.reason);
        f.random_fully = rf.supported;
      } catch (const IptablesError& e) {
        FLOG_ERROR("iptables: {}", e.what());
        f.random_fully = false;
      }
    }
  }
  if (!f.random_fully) f.random_fully = false;
  // iptables-nft keeps its rules in nftables tables, so the ruleset generation tells whether
  // they can have changed. Not with a test's command wrapper ("ip netns exec NS iptables"): the
  // generation would be read in our own namespace, not the one the rules are in (net_rules.cc).
  if (!f.nft_backed) f.nft_backed = f.version->find("nf_tables") != std::string::npos;
  ipt_recycle(f, network, subnet, prev_network, prev_subnet);
  if (settings_.ip_masq)
    ipt_start(f, f.masq, f.masq_name, masq_rules(network, subnet, *f.random_fully));
  if (settings_.forward_rules) ipt_start(f, f.forward, f.forward_name, forward_rules(network));
}

namespace {

// Deletes every rule of ours from one iptables world (flavour + family): the masq and forward
// rules for the current and the previous network and subnet, and current flannel's chains with
// their jump rules. Returns how many rules and chains went. Throws IptablesError.
template <typename Net>
int clean_world(const Iptables& ipt, const Net& network, const Net& subnet,
                const std::optional<Net>& prev_network, const std::optional<Net>& prev_subnet) {
  int n = delete_old_masq(ipt, network, subnet) + delete_old_forward(ipt, network);
  if (prev_network && prev_subnet) n += delete_old_masq(ipt, *prev_network, *prev_subnet);
  if (prev_network && !(*prev_network == network)) n += delete_old_forward(ipt, *prev_network);
  // current flannel's chains, if it ran here before us (its nftables mode leaves them)
  for (auto [table, chain] : {std::pair{"nat", "FLANNEL-POSTRTG"}, {"filter", "FLANNEL-FWD"}}) {
    std::string input = restore_remove_chain(table, ipt.save(table), chain);
    if (input.empty()) continue;
    ipt.restore(input);
    FLOG_INFO("nftables mode: removed current flannel's {} chain {} and its jump rules",
              ipt.command_str(), chain);
    ++n;
  }
  return n;
}

}  // namespace

template <typename Net>
void NetRules::ipt_clean(IptFamily& f, const Net& network, const Net& subnet,
                         const std::optional<Net>& prev_network,
                         const std::optional<Net>& prev_subnet) {
  int n = 0;
  try {
    for (auto* k : {&f.masq, &f.forward}) {  // this run's, before a switch of mode
      if (*k) n += (*k)->remove();
      k->reset();
    }
  } catch (const IptablesError& e) {
    FLOG_ERROR("{}: cannot remove this run's rules (nftables mode): {}", f.iptables.command_str(),
               e.what());
  }
  if (n > 0) FLOG_INFO("nftables mode: removed {} {} rules", n, f.iptables.command_str());
  if (f.recycled) return;  // the other worlds were cleaned when this run began
  f.recycled = true;
  // Ours may be in either flavour (another -iptables-mode, or a host that changed its own):
  // every world that holds rules at all is cleaned; one with none is not touched (running
  // iptables-legacy there would load the legacy tables for nothing).
  std::vector<Iptables> worlds = {f.iptables};
  if (!commands_fixed_) {
    const std::string program = f.ipv6 ? "ip6tables" : "iptables";
    worlds = {Iptables({program + "-legacy"}), Iptables({program + "-nft"})};
  }
  for (const Iptables& ipt : worlds) {
    try {
      if (count_saved_rules(ipt.save()) == 0) continue;
      if (int m = clean_world(ipt, network, subnet, prev_network, prev_subnet); m > 0)
        FLOG_INFO("nftables mode: removed {} of our {} rules", m, ipt.command_str());
    } catch (const IptablesError& e) {
      if (e.kind() == IptablesError::Kind::kNotInstalled) {
        FLOG_V(1, "{}: not installed, so no iptables rules of ours there", ipt.command_str());
      } else {
        FLOG_ERROR("{}: cannot remove our iptables rules (nftables mode): {}", ipt.command_str(),
                   e.what());
      }
    }
  }
}

template void NetRules::ipt_apply(IptFamily&, const IP4Net&, const IP4Net&,
                                  const std::optional<IP4Net>&, const std::optional<IP4Net>&);
template void NetRules::ipt_apply(IptFamily&, const IP6Net&, const IP6Net&,
                                  const std::optional<IP6Net>&, const std::optional<IP6Net>&);
template void NetRules::ipt_clean(IptFamily&, const IP4Net&, const IP4Net&,
                                  const std::optional<IP4Net>&, const std::optional<IP4Net>&);
template void NetRules::ipt_clean(IptFamily&, const IP6Net&, const IP6Net&,
                                  const std::optional<IP6Net>&, const std::optional<IP6Net>&);

}  // namespace flannel
