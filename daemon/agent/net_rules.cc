#include "daemon/agent/net_rules.h"

#include "daemon/common/logging.h"

namespace flannel {

NetRules::NetRules(NetRulesSettings settings, PreviousRun previous, RepairCounter count)
    : settings_(std::move(settings)), previous_(std::move(previous)), count_(std::move(count)) {
  if (!count_) count_ = [](bool, bool, uint64_t) {};
}

NetRules::~NetRules() {
  if (worker_.joinable()) worker_.join();
  blackhole_.stop();
  for (IptFamily* f : {&v4_, &v6_}) {
    if (f->masq) f->masq->stop();
    if (f->forward) f->forward->stop();
  }
  for (auto* k : {&nft4_, &nft6_})
    if (*k) (*k)->stop();
}

void NetRules::set_commands(std::vector<std::string> iptables, std::vector<std::string> ip6tables) {
  v4_.iptables = Iptables(std::move(iptables));
  v6_.iptables = Iptables(std::move(ip6tables));
  flavour_chosen_ = true;
  commands_fixed_ = true;
  v4_.nft_backed = v6_.nft_backed = false;  // the generation would be read in our namespace
}

const RuleKeeper* NetRules::keeper(const std::string& name) const {
  for (const IptFamily* f : {&v4_, &v6_}) {
    if (name == f->masq_name) return f->masq.get();
    if (name == f->forward_name) return f->forward.get();
  }
  return nullptr;
}

const NftKeeper* NetRules::nft_keeper(bool ipv6) const { return ipv6 ? nft6_.get() : nft4_.get(); }

void NetRules::apply(const RulesTarget& target) {
  if (worker_.joinable()) worker_.join();
  worker_ = std::thread([this, target] { work(target); });
}

void NetRules::wait() {
  if (worker_.joinable()) worker_.join();
}

void NetRules::work(const RulesTarget& t) {
  const bool nft = settings_.nftables || t.nftables;
  if (mode_nft_ != nft) {
    FLOG_INFO("Masquerade and forward rules: {} mode{}", nft ? "nftables" : "iptables",
              nft ? (settings_.nftables ? " (-enable-nftables)" : " (EnableNFTables)") : "");
  }
  const bool v6 = t.network6 && t.subnet6;
  if (nft) {
    // Without -ip-masq and forward rules the rules say "no table": the keeper deletes it.
    if (t.v4) {
      nft_apply(nft4_,
                nft_rules(t.network, t.subnet, settings_.ip_masq, settings_.forward_rules, false));
    }
    if (v6) {
      nft_apply(nft6_, nft_rules(*t.network6, *t.subnet6, settings_.ip_masq,
                                 settings_.forward_rules, false));
    }
    // then the other mode's rules go (ours from a previous run, or from this run before a switch)
    if (t.v4) ipt_clean(v4_, t.network, t.subnet, previous_.network, previous_.subnet);
    if (v6) ipt_clean(v6_, *t.network6, *t.subnet6, previous_.ipv6_network, previous_.ipv6_subnet);
  } else {
    if (t.v4) ipt_apply(v4_, t.network, t.subnet, previous_.network, previous_.subnet);
    if (v6) ipt_apply(v6_, *t.network6, *t.subnet6, previous_.ipv6_network, previous_.ipv6_subnet);
    nft_clean();
  }
  mode_nft_ = nft;
  if (settings_.blackhole_route) {
    std::optional<IP4Net> subnet;
    if (t.v4) subnet = t.subnet;
    blackhole_.set(subnet, v6 ? t.subnet6 : std::nullopt, settings_.resync);
  }
}

}  // namespace flannel
