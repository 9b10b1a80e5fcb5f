#include "backends/rules/iptables_flavour.h"

#include <linux/netfilter.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "backends/rules/iptables.h"
#include "backends/rules/nft_probe.h"

namespace flannel {
namespace {

IptablesFlavour named(const std::string& suffix, std::string reason) {
  return {"iptables-" + suffix, "ip6tables-" + suffix, std::move(reason)};
}

// Rules of one flavour, IPv4 and IPv6 together; -1 when neither tool runs.
int count_flavour(const std::vector<std::string>& wrapper, const std::string& suffix) {
  int total = -1;
  for (const char* program : {"iptables-", "ip6tables-"}) {
    std::vector<std::string> command = wrapper;
    command.push_back(program + suffix);
    try {
      int n = count_saved_rules(Iptables(command, std::chrono::seconds(30)).save());
      total = (total < 0 ? 0 : total) + n;
    } catch (const IptablesError&) {
      // not installed, or this kernel lacks the family: counts nothing
    }
  }
  return total;
}

// Whether iptables-legacy can hold a rule in this namespace: its rules live in x_tables tables,
// each listed in /proc/net/ip_tables_names or ip6_tables_names once created (the files exist
// once the modules are loaded). Unknown (no /proc/net) counts as yes.
bool legacy_may_have_rules() {
  if (!std::filesystem::exists("/proc/net")) return true;
  for (const char* path : {"/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"}) {
    std::ifstream in(path);
    std::string name;
    if (in >> name) return true;
  }
  return false;
}

// Whether iptables-nft can hold a rule here: its rules live in nftables tables of the ip and ip6
// families named after the iptables tables. Unknown (the tables cannot be listed) counts as yes.
bool nft_may_have_rules() {
  auto tables = nft_tables();
  if (!tables) return true;
  return std::any_of(tables->begin(), tables->end(), [](const NftTableName& t) {
    static const char* const kNames[] = {"filter", "nat", "mangle", "raw", "security"};
    return (t.family == NFPROTO_IPV4 || t.family == NFPROTO_IPV6) &&
           std::find(std::begin(kNames), std::end(kNames), t.name) != std::end(kNames);
  });
}

}  // namespace

IptablesFlavour pick_iptables_flavour(const std::string& mode, int legacy_rules, int nft_rules) {
  if (mode == "legacy") return named("legacy", "iptables-legacy (-iptables-mode=legacy)");
  if (mode == "nft") return named("nft", "iptables-nft (-iptables-mode=nft)");
  if (mode != "auto")
    throw std::invalid_argument("iptables mode \"" + mode +
                                "\": expected \"auto\", \"legacy\" or \"nft\"");
  std::string counts = "host rules: " + std::to_string(legacy_rules < 0 ? 0 : legacy_rules) +
                       " in iptables-legacy, " + std::to_string(nft_rules < 0 ? 0 : nft_rules) +
                       " in iptables-nft";
  if (legacy_rules > nft_rules && legacy_rules > 0)
    return named("legacy", "iptables-legacy (" + counts + ")");
  if (nft_rules > legacy_rules && nft_rules > 0)
    return named("nft", "iptables-nft (" + counts + ")");
  return {"iptables", "ip6tables", "the host's iptables (" + counts + ": a tie)"};
}

IptablesFlavour choose_iptables_flavour(const std::string& mode,
                                        const std::vector<std::string>& wrapper) {
  if (mode != "auto") return pick_iptables_flavour(mode, 0, 0);
  // Without a wrapper the tools would look at our own namespace, where the kernel tells at once
  // whether a flavour has anywhere to hold a rule: a fresh host (or lab host) runs no -save.
  bool here = wrapper.empty();
  int legacy = here && !legacy_may_have_rules() ? 0 : count_flavour(wrapper, "legacy");
  int nft = here && !nft_may_have_rules() ? 0 : count_flavour(wrapper, "nft");
  return pick_iptables_flavour(mode, legacy, nft);
}

}  // namespace flannel
