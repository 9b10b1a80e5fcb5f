#include "daemon/net_rules.h"

#include "daemon/logging.h"

namespace flannel {

NetRules::NetRules(NetRulesSettings settings, PreviousRun previous)
    : settings_(settings), previous_(std::move(previous)) {}

NetRules::~NetRules() {
  if (worker_.joinable()) worker_.join();
  if (masq_) masq_->stop();
  if (forward_) forward_->stop();
}

void NetRules::recycle(const IP4Net& network, const IP4Net& subnet) {
  if (recycled_) return;
  recycled_ = true;
  const auto& p = previous_;
  try {
    int n = 0;
    if (p.network && p.subnet) {
      if (settings_.ip_masq) {
        n += recycle_old_masq(iptables_, *p.network, *p.subnet, network, subnet, *random_fully_);
      } else if (p.ip_masq) {
        n += delete_old_masq(iptables_, *p.network, *p.subnet);
      }
    }
    if (settings_.forward_rules && p.network) n += recycle_old_forward(iptables_, *p.network, network);
    if (n > 0) FLOG_INFO("Removed {} iptables rules of the previous run ({} / {})", n,
                         p.network ? p.network->str() : "-", p.subnet ? p.subnet->str() : "-");
  } catch (const IptablesError& e) {
    FLOG_ERROR("iptables: cannot recycle the previous run's rules: {}", e.what());
  }
}

void NetRules::start_keeper(std::unique_ptr<RuleKeeper>& keeper, const char* name,
                            std::vector<IptablesRule> rules) {
  if (keeper) {
    keeper->set_rules(std::move(rules));  // adds the new rules before dropping the old ones
    return;
  }
  keeper = std::make_unique<RuleKeeper>(iptables_, name, std::move(rules));
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

void NetRules::apply(const IP4Net& network, const IP4Net& subnet) {
  if (worker_.joinable()) worker_.join();
  worker_ = std::thread([this, network, subnet] { apply_now(network, subnet); });
}

void NetRules::apply_now(const IP4Net& network, const IP4Net& subnet) {
  if (!settings_.ip_masq && !settings_.forward_rules && !previous_.ip_masq) return;
  if (settings_.ip_masq && !random_fully_) {
    try {
      auto rf = iptables_.random_fully_support();
      FLOG_V(1, "iptables --random-fully: {}", rf.reason);
      random_fully_ = rf.supported;
    } catch (const IptablesError& e) {
      FLOG_ERROR("iptables: {}", e.what());
      random_fully_ = false;
    }
  }
  if (!random_fully_) random_fully_ = false;
  recycle(network, subnet);
  if (settings_.ip_masq) start_keeper(masq_, "ip-masq", masq_rules(network, subnet, *random_fully_));
  if (settings_.forward_rules) start_keeper(forward_, "forward", forward_rules(network));
}

}  // namespace flannel
