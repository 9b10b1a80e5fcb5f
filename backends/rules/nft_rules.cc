#include "backends/rules/nft_rules.h"

#include <stdexcept>

namespace flannel {

namespace {

// nft prints a full-length prefix as a bare address ("10.5.34.0/32" lists as "10.5.34.0").
std::string nft_addr(const std::string& cidr, bool ipv6) {
  const std::string full = ipv6 ? "/128" : "/32";
  if (cidr.size() > full.size() && cidr.ends_with(full)) {
    return cidr.substr(0, cidr.size() - full.size());
  }
  return cidr;
}

template <typename Net>
Net check_net(const std::string& what, const std::string& text, const char* family) {
  auto net = Net::try_parse(text);
  if (!net) {
    throw std::invalid_argument("nftables rules: " + what + " \"" + text + "\" is not an " +
                                family + " CIDR");
  }
  if (net->str() != text) {
    throw std::invalid_argument("nftables rules: " + what + " \"" + text +
                                "\" must be written in network form as " + net->str());
  }
  return *net;
}

template <typename Net>
void check_family(const NftRules& r, const char* family) {
  Net network = check_net<Net>("network", r.network, family);
  if (!r.masq && r.subnet.empty()) return;
  Net subnet = check_net<Net>("subnet", r.subnet, family);
  if (!network.contains(subnet)) {
    throw std::invalid_argument("nftables rules: subnet " + r.subnet + " is not inside network " +
                                r.network);
  }
}

std::string chain_postrtg(const NftRules& r) {
  const std::string ip = r.ipv6 ? "ip6" : "ip";
  const std::string c = nft_addr(r.network, r.ipv6), p = nft_addr(r.subnet, r.ipv6);
  const std::string multicast = r.ipv6 ? "ff00::/8" : "224.0.0.0/4";
  const std::string masquerade = r.fully_random ? "masquerade fully-random" : "masquerade";
  return "\tchain postrtg {\n"
         "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
         "\t\tmeta mark & 0x00004000 == 0x00004000 return\n"
         "\t\t" +
         ip + " saddr " + p + " " + ip + " daddr " + c +
         " return\n"
         "\t\t" +
         ip + " saddr " + c + " " + ip + " daddr " + p +
         " return\n"
         "\t\t" +
         ip + " saddr != " + c + " " + ip + " daddr " + p +
         " return\n"
         "\t\t" +
         ip + " saddr " + c + " " + ip + " daddr != " + multicast + " " + masquerade +
         "\n"
         "\t\t" +
         ip + " saddr != " + c + " " + ip + " daddr " + c + " " + masquerade +
         "\n"
         "\t}\n";
}

std::string chain_forward(const NftRules& r) {
  const std::string ip = r.ipv6 ? "ip6" : "ip";
  const std::string c = nft_addr(r.network, r.ipv6);
  return "\tchain forward {\n"
         "\t\ttype filter hook forward priority filter; policy accept;\n"
         "\t\t" +
         ip + " saddr " + c +
         " accept\n"
         "\t\t" +
         ip + " daddr " + c +
         " accept\n"
         "\t}\n";
}

}  // namespace

NftRules nft_rules(const IP4Net& network, const IP4Net& subnet, bool masq, bool forward,
                   bool fully_random) {
  return NftRules{false,       network.network().str(), subnet.network().str(), masq, forward,
                  fully_random};
}

NftRules nft_rules(const IP6Net& network, const IP6Net& subnet, bool masq, bool forward,
                   bool fully_random) {
  return NftRules{true,        network.network().str(), subnet.network().str(), masq, forward,
                  fully_random};
}

void nft_check_rules(const NftRules& rules) {
  if (rules.ipv6) {
    check_family<IP6Net>(rules, "IPv6");
  } else {
    check_family<IP4Net>(rules, "IPv4");
  }
}

std::string nft_family(bool ipv6) { return ipv6 ? "ip6" : "ip"; }

std::string nft_table_ref(bool ipv6) {
  return nft_family(ipv6) + " " + std::string(ipv6 ? kNftTable6 : kNftTable4);
}

std::string nft_table_text(const NftRules& rules) {
  nft_check_rules(rules);
  if (!rules.masq && !rules.forward) return "";
  std::string text = "table " + nft_table_ref(rules.ipv6) + " {\n\tcomment \"" +
                     std::string(kNftTableComment) + "\"\n";
  if (rules.masq) text += chain_postrtg(rules);
  if (rules.masq && rules.forward) text += "\n";
  if (rules.forward) text += chain_forward(rules);
  return text + "}\n";
}

std::string nft_delete_script(bool ipv6) {
  const std::string t = nft_table_ref(ipv6);
  return "add table " + t + "\ndelete table " + t + "\n";
}

std::string nft_replace_script(const NftRules& rules) {
  std::string text = nft_table_text(rules);
  return nft_delete_script(rules.ipv6) + text;
}

NftListing nft_parse_listing(std::string_view text) {
  NftListing out;
  std::string chain;  // name of the chain block being read, "" outside one
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    end = end == std::string_view::npos ? text.size() : end + 1;
    std::string_view line = text.substr(pos, end - pos);
    pos = end;
    if (chain.empty() && line.starts_with("\tchain ") && line.find(" {") != line.npos) {
      chain = std::string(line.substr(7, line.find(" {") - 7));
      out.chains[chain] = std::string(line);
      continue;
    }
    if (!chain.empty()) {
      out.chains[chain] += line;
      if (line == "\t}\n" || line == "\t}") chain.clear();
      continue;
    }
    if (line == "\n") continue;  // the blank line nft prints between chains
    out.head += line;
  }
  return out;
}

NftPlan nft_plan(const NftRules& rules, const std::optional<std::string>& listed,
                 const std::optional<std::string>& accepted) {
  using Drift = NftPlan::Drift;
  nft_check_rules(rules);
  const bool wanted = rules.masq || rules.forward;
  if (!wanted) {
    if (!listed) return {};
    return {Drift::kTableUnwanted, "table present but no rules wanted",
            nft_delete_script(rules.ipv6)};
  }
  const std::string full = nft_replace_script(rules);
  if (!listed) return {Drift::kTableMissing, "table missing", full};

  const NftListing want = nft_parse_listing(nft_table_text(rules));
  const NftListing have = nft_parse_listing(*listed);
  const std::optional<NftListing> also =
      accepted ? std::optional(nft_parse_listing(*accepted)) : std::nullopt;
  if (have.head != want.head && (!also || have.head != also->head)) {
    return {Drift::kTableDiffers, "table differs (comment or objects other than chains)", full};
  }
  for (const auto& [name, block] : have.chains) {
    if (!want.chains.contains(name)) {
      return {Drift::kTableDiffers, "table has a chain " + name + " it should not have", full};
    }
  }
  NftPlan plan{Drift::kChainsDiffer, "", ""};
  const std::string table = nft_table_ref(rules.ipv6);
  for (const auto& [name, block] : want.chains) {
    auto it = have.chains.find(name);
    if (it != have.chains.end()) {
      if (it->second == block) continue;
      if (also && also->chains.contains(name) && also->chains.at(name) == it->second) continue;
    }
    plan.reason += (plan.reason.empty() ? "chain " : ", chain ") + name +
                   (it == have.chains.end() ? " missing" : " differs");
    // add + delete + create: works whether or not the chain exists, in the same transaction.
    plan.script += "add chain " + table + " " + name + "\ndelete chain " + table + " " + name +
                   "\ntable " + table + " {\n" + block + "}\n";
  }
  if (plan.script.empty()) return {};
  return plan;
}

}  // namespace flannel
