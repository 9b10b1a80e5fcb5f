// Which iptables to run: iptables-legacy or iptables-nft (-iptables-mode=auto|legacy|nft).
//
// Rules put in the other world than the host's other software uses are evaluated apart from
// theirs (a DROP in one and an ACCEPT in the other, NAT in neither), so in "auto" mode we use the
// flavour the host already holds rules in, as kube-proxy's iptables wrapper decides: count the
// rules each flavour's -save shows (IPv4 and IPv6 together) and take the one with more; on a tie
// (typically a fresh host, no rules anywhere) the host's own `iptables` (Debian's alternatives
// choose). "legacy" and "nft" force one.
//
// Thread safety: plain functions; choose_iptables_flavour() runs child processes.
#pragma once

#include <string>
#include <vector>

namespace flannel {

struct IptablesFlavour {
  std::string iptables = "iptables";    // program names: "iptables-legacy", "iptables-nft"
  std::string ip6tables = "ip6tables";  // or the plain names (the host's alternative)
  std::string reason;                   // one line for the log
};

// Pure: the choice for `mode` ("auto", "legacy", "nft") given the rule counts each flavour's
// -save showed (-1: that flavour's tools are not installed). Throws std::invalid_argument for
// another mode.
IptablesFlavour pick_iptables_flavour(const std::string& mode, int legacy_rules, int nft_rules);

// Counts the rules (iptables-legacy-save + ip6tables-legacy-save, iptables-nft-save +
// ip6tables-nft-save) when mode is "auto", then picks. Without a wrapper, a flavour with no
// table at all in this namespace (no x_tables table listed in /proc/net; no nftables table of
// the ip/ip6 families named filter, nat, mangle, raw or security) counts 0 without running its
// tools. `wrapper` is put before each program
// (tests: {"ip", "netns", "exec", NS}); the returned program names do not include it. A tool
// that cannot run counts as not installed; never throws for that.
IptablesFlavour choose_iptables_flavour(const std::string& mode,
                                        const std::vector<std::string>& wrapper = {});

}  // namespace flannel
