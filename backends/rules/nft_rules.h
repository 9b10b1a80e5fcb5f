// nft_rules: what the nftables mode of the masquerade/forward rules should look like, as nft text
// (pure: no I/O, no libnftables). backends/rules/nftables.h runs it.
//
// One table per address family, holding current flannel's chains (facts §1) with the rules of its
// iptables mode (facts §2), not its nft ones: the kube-proxy mark is matched with a mask like
// iptables' 0x4000/0x4000, and rule 4 is `saddr != C daddr P` (flannel's nft `saddr != P daddr C`
// makes rule 6 dead). C = cluster network, P = this host's lease subnet, both in network form.
//
//   table ip flannel-ipv4 {                         (ip6 flannel-ipv6: ip6, ff00::/8)
//     comment "flanneld: masquerade and forward rules"
//     chain postrtg {                               only with masq
//       type nat hook postrouting priority srcnat; policy accept;
//       meta mark & 0x00004000 == 0x00004000 return
//       ip saddr P ip daddr C return
//       ip saddr C ip daddr P return
//       ip saddr != C ip daddr P return
//       ip saddr C ip daddr != 224.0.0.0/4 masquerade fully-random   (fully-random optional)
//       ip saddr != C ip daddr C masquerade fully-random
//     }
//     chain forward {                               only with forward
//       type filter hook forward priority filter; policy accept;
//       ip saddr C accept
//       ip daddr C accept
//     }
//   }
//
// nft_table_text() renders that exactly as nft 1.0.6 lists it (`nft list table`, no handles),
// which is also valid nft input. Every script here is meant for ONE nft_run_cmd_from_buffer call,
// which libnftables sends as one netlink batch: the kernel applies it whole or not at all, so
// packets meet the old rules or the new ones, never an empty table.
//
// Thread safety: pure functions of their arguments; call them from any thread.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/ip.h"

namespace flannel {

struct NftRules {
  bool ipv6 = false;          // table ip6 flannel-ipv6 instead of ip flannel-ipv4
  std::string network;        // C, in network form ("10.5.0.0/16", "fc00::/48")
  std::string subnet;         // P, in network form, inside C; may be empty when !masq
  bool masq = false;          // chain postrtg
  bool forward = false;       // chain forward
  bool fully_random = false;  // "masquerade fully-random" instead of "masquerade"
  bool operator==(const NftRules&) const = default;
};

// The same from core/ types (written with str(), so always valid for nft_check_rules()).
NftRules nft_rules(const IP4Net& network, const IP4Net& subnet, bool masq, bool forward,
                   bool fully_random);
NftRules nft_rules(const IP6Net& network, const IP6Net& subnet, bool masq, bool forward,
                   bool fully_random);

// Throws std::invalid_argument naming the bad value when `network` (and, with masq, `subnet`) is
// not a CIDR of the family in the form nft prints (network form, canonical spelling), or the
// subnet is not inside the network. Called by every function below that takes NftRules.
void nft_check_rules(const NftRules& rules);

inline constexpr std::string_view kNftTable4 = "flannel-ipv4";
inline constexpr std::string_view kNftTable6 = "flannel-ipv6";
inline constexpr std::string_view kNftTableComment = "flanneld: masquerade and forward rules";

// "ip" / "ip6", and "ip flannel-ipv4" / "ip6 flannel-ipv6".
std::string nft_family(bool ipv6);
std::string nft_table_ref(bool ipv6);

// The wanted table as `nft list table` prints it (see above), "" when neither masq nor forward.
std::string nft_table_text(const NftRules& rules);

// The script that puts the table in exactly the wanted state whatever is there now (table
// absent, different, or right): `add table` + `delete table` + the table text. Without masq and
// forward it only deletes the table (a no-op when absent).
std::string nft_replace_script(const NftRules& rules);

// Deletes the table if present (add + delete: `delete` alone fails on an absent table).
std::string nft_delete_script(bool ipv6);

// A listing split into its parts: `head` holds every line outside a chain block (table line,
// comment, other objects, closing brace); `chains` maps a chain's name to its block, from its
// `\tchain NAME {` line to its `\t}` line, newlines included. Chains are keyed by name because
// nft lists them in creation order, which a repair of one chain changes.
struct NftListing {
  std::string head;
  std::map<std::string, std::string> chains;
  bool operator==(const NftListing&) const = default;
};
NftListing nft_parse_listing(std::string_view text);

// What ensure() must do to make `listed` (the table as read, nullopt if absent) what `rules`
// want. `accepted` is an extra listing to accept as correct, part by part: the table as read back
// right after our own last replace (a newer nft may print the same rules differently; then the
// first check costs one rewrite and every later one matches it).
struct NftPlan {
  enum class Drift {
    kNone,           // nothing to do (script empty)
    kTableMissing,   // rules wanted, no table: full replace
    kTableUnwanted,  // no rules wanted, table present: delete it
    kTableDiffers,   // comment, foreign objects or chains: full replace
    kChainsDiffer,   // only some of our chains differ or are missing: replace just those
  };
  Drift drift = Drift::kNone;
  std::string reason;  // e.g. "chain postrtg differs", "table missing"
  std::string script;  // one transaction; "" for kNone
};
NftPlan nft_plan(const NftRules& rules, const std::optional<std::string>& listed,
                 const std::optional<std::string>& accepted = std::nullopt);

}  // namespace flannel
