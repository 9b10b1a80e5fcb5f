// Cheap questions to the kernel's nftables over netfilter netlink (one request each, no process,
// no libnftables context):
// - the ruleset generation: a number every change to any nftables table of the network namespace
//   bumps (NFT_MSG_GETGEN), iptables-nft's rules included, since they are nftables tables. An
//   unchanged generation means an unchanged ruleset, so the iptables-nft rules check can skip its
//   `iptables -S` processes while nothing changed;
// - the tables (NFT_MSG_GETTABLE dump): which exist, so the agent's start spawns no
//   iptables-nft-save and opens no libnftables context to look into tables that are not there.
//
// Thread safety: plain functions; each opens its own socket in the calling thread's namespace.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flannel {

// The current generation, or nullopt when it cannot be read (no nf_tables, no permission):
// callers then check as if it changed.
std::optional<uint32_t> nft_ruleset_generation();

struct NftTableName {
  int family = 0;  // NFPROTO_IPV4 (2, "ip"), NFPROTO_IPV6 (10, "ip6"), NFPROTO_INET (1), ...
  std::string name;
  bool operator==(const NftTableName&) const = default;
};

// Every nftables table of the namespace, or nullopt when they cannot be read (no nf_tables, no
// permission): callers then look the slow way.
std::optional<std::vector<NftTableName>> nft_tables();

}  // namespace flannel
