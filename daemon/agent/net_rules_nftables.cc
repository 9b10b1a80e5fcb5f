// NetRules, nftables mode: one NftKeeper per family (tables flannel-ipv4 / flannel-ipv6), and
// deleting those tables when iptables mode takes over.
#include <linux/netfilter.h>

#include <algorithm>
#include <string_view>

#include "backends/rules/nft_probe.h"
#include "daemon/agent/net_rules.h"
#include "daemon/common/logging.h"

namespace flannel {

void NetRules::nft_apply(std::unique_ptr<NftKeeper>& keeper, NftRules rules) {
  const char* family = rules.ipv6 ? "ip6" : "ip";
  try {
    if (rules.masq && !nft_fully_random_) {
      nft_fully_random_ = !settings_.fully_random_disable && Nftables().fully_random_supported();
      FLOG_V(1, "nftables masquerade fully-random: {}",
             settings_.fully_random_disable ? "off (-ip-masq-fully-random-disable)"
             : *nft_fully_random_           ? "supported"
                                            : "not supported by this kernel");
    }
    rules.fully_random = rules.masq && nft_fully_random_.value_or(false);
    NftRepair done;
    if (keeper) {
      done = keeper->set_rules(std::move(rules));
    } else {
      keeper = std::make_unique<NftKeeper>(Nftables(), std::move(rules));
      done = keeper->ensure();
      keeper->start(settings_.resync, [this, ipv6 = keeper->rules().ipv6](const ResyncEvent& ev) {
        switch (ev.kind) {
          case ResyncEvent::Kind::kRestored:
            count_(true, ipv6, 1);  // one event per table repaired
            FLOG_WARNING("{}", ev.message);
            break;
          case ResyncEvent::Kind::kFailed: FLOG_ERROR("{}", ev.message); break;
          case ResyncEvent::Kind::kRecovered: FLOG_INFO("{}", ev.message); break;
        }
      });
    }
    if (done.repaired) FLOG_INFO("nftables {}: table written ({})", family, done.reason);
  } catch (const std::exception& e) {  // NftablesError, or a context libnftables cannot make
    FLOG_ERROR("nftables {}: cannot install the rules (will retry every {}s): {}", family,
               settings_.resync.count(), e.what());
  }
}

void NetRules::nft_clean() {
  try {
    for (auto* k : {&nft4_, &nft6_}) {  // this run's, before a switch of mode
      if (*k) (*k)->remove();
      k->reset();
    }
    // Most starts in iptables mode find no table of ours: the kernel's table list says so
    // without a libnftables context.
    if (auto tables = nft_tables()) {
      auto has = [&](int family, std::string_view name) {
        return std::find(tables->begin(), tables->end(), NftTableName{family, std::string(name)}) !=
               tables->end();
      };
      if (!has(NFPROTO_IPV4, kNftTable4) && !has(NFPROTO_IPV6, kNftTable6)) return;
    }
    Nftables nft;
    for (bool ipv6 : {false, true}) {
      if (nft.list_table(ipv6)) {
        nft.delete_table(ipv6);
        FLOG_INFO("iptables mode: deleted the nftables table {}", nft_table_ref(ipv6));
      }
    }
  } catch (const std::exception& e) {
    FLOG_V(1, "nftables: cannot look for our tables (iptables mode): {}", e.what());
  }
}

}  // namespace flannel
