#include "daemon/agent/net_rules.h"

#include "daemon/common/logging.h"

namespace flannel {

NetRules::NetRules(NetRulesSettings settings, PreviousRun previous)
    : settings_(settings), previous_(std::move(previous)) {}

NetRules::~NetRules() {
  if (worker_.joinable()) worker_.join();
  for (Family* f : {&v4_, &v6_}) {
    if (f->masq) f->masq->stop();
    if (f->forward) f->forward->stop();
  }
}

void NetRules::set_commands(std::vector<std::string> iptables, std::vector<std::string> ip6tables) {
  v4_.iptables = Iptables(std::move(iptables));
  v6_.iptables = Iptables(std::move(ip6tables));
}

const RuleKeeper* NetRules::keeper(const std::string& name) const {
  for (const Family* f : {&v4_, &v6_}) {
    if (name == f->masq_name) return f->masq.get();
    if (name == f->forward_name) return f->forward.get();
  }
  return nullptr;
}

template <typename Net>
void NetRules::recycle(Family& f, const Net& network, const Net& subnet,
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

void NetRules::start_keeper(Family& f, std::unique_ptr<RuleKeeper>& keeper, const char* name,
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
  try {
    keeper->ensure();
  } catch (const IptablesError& e) {
    FLOG_ERROR("iptables: cannot install the {} rules (will retry every {}s): {}", name,
               settings_.resync.count(), e.what());
  }
  keeper->start(settings_.resync, [name](const ResyncEvent& ev) {
    switch (ev.kind) {
      case ResyncEvent::Kind::kRestored: FLOG_WARNING("iptables {}: {}", name, ev.message); break;
      case ResyncEvent::Kind::kFailed: FLOG_ERROR("iptables {}: {}", name, ev.message); break;
      case ResyncEvent::Kind::kRecovered: FLOG_INFO("iptables {}: {}", name, ev.message); break;
    }
  });
}

void NetRules::apply(const IP4Net& network, const IP4Net& subnet,
                     const std::optional<IP6Net>& network6, const std::optional<IP6Net>& subnet6,
                     bool v4) {
  if (worker_.joinable()) worker_.join();
  worker_ = std::thread([this, network, subnet, network6, subnet6, v4] {
    if (v4) apply_family(v4_, network, subnet, previous_.network, previous_.subnet);
    if (network6 && subnet6)
      apply_family(v6_, *network6, *subnet6, previous_.ipv6_network, previous_.ipv6_subnet);
  });
}

void NetRules::wait() {
  if (worker_.joinable()) worker_.join();
}

template <typename Net>
void NetRules::apply_family(Family& f, const Net& network, const Net& subnet,
                            const std::optional<Net>& prev_network,
                            const std::optional<Net>& prev_subnet) {
  if (!settings_.ip_masq && !settings_.forward_rules && !previous_.ip_masq) return;
  if (settings_.ip_masq && !f.random_fully) {
    try {
      auto rf = f.iptables.random_fully_support();
      FLOG_V(1, "{} --random-fully: {}", f.iptables.command_str(), rf.reason);
      f.random_fully = rf.supported;
    } catch (const IptablesError& e) {
      FLOG_ERROR("iptables: {}", e.what());
      f.random_fully = false;
    }
  }
  if (!f.random_fully) f.random_fully = false;
  recycle(f, network, subnet, prev_network, prev_subnet);
  if (settings_.ip_masq)
    start_keeper(f, f.masq, f.masq_name, masq_rules(network, subnet, *f.random_fully));
  if (settings_.forward_rules) start_keeper(f, f.forward, f.forward_name, forward_rules(network));
}

}  // namespace flannel
