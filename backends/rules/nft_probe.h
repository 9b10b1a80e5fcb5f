// The kernel's nftables ruleset generation: a number every change to any nftables table of the
// network namespace bumps (NFT_MSG_GETGEN over netfilter netlink), iptables-nft's rules
// included, since they are nftables tables. An unchanged generation means an unchanged ruleset,
// so the iptables-nft rules check can skip its `iptables -S` processes while nothing changed.
//
// Thread safety: a plain function; it opens its own socket in the calling thread's namespace.
#pragma once

#include <cstdint>
#include <optional>

namespace flannel {

// The current generation, or nullopt when it cannot be read (no nf_tables, no permission):
// callers then check as if it changed.
std::optional<uint32_t> nft_ruleset_generation();

}  // namespace flannel
