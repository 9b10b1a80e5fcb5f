#include "backends/rules/iptables_flavour.h"

#include <stdexcept>

#include "backends/rules/iptables.h"

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
  return pick_iptables_flavour(mode, count_flavour(wrapper, "legacy"),
                               count_flavour(wrapper, "nft"));
}

}  // namespace flannel
