// The agent's masquerade and forward rules (flannel's -ip-masq and -iptables-forward-rules), in
// one of two modes:
//   iptables  (default): v0.11's rules in nat POSTROUTING and filter FORWARD, through the
//             iptables flavour the host uses (-iptables-mode, backends/rules/iptables_flavour.h),
//             kept by RuleKeepers (one read per chain per check, missing rules re-inserted in
//             place with one iptables-restore --noflush);
//   nftables  (the config's EnableNFTables or -enable-nftables): tables flannel-ipv4 /
//             flannel-ipv6 through libnftables in-process, every change one transaction, kept
//             by NftKeepers (backends/rules/nftables.h). No iptables binary is needed.
// Installing a mode first puts its rules in place, then removes the other mode's (previous run's
// or this run's): there is never a moment without masquerade rules.
//
// Duties, in both modes: recycle the rules a previous run left for another network or subnet
// (read back from subnet.env), install ours before the subnet file is written, check them every
// -iptables-resync seconds (repairs are logged and counted in /metrics), follow a lease that
// moves; and with -ip-blackhole-route, keep a blackhole route for our own subnet(s). A failing
// tool is logged and retried by the keepers, never fatal.
//
// The work (tens of milliseconds) runs on a worker thread; the agent waits for it (wait()) before
// it writes the subnet file and sends READY=1.
//
// Thread safety: apply(), wait(), keeper() and set_commands() are for one owner thread (the
// agent's); the background work runs on the worker thread, and each keeper's check on its own.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends/rules/nftables.h"
#include "backends/rules/rule_keeper.h"
#include "core/ip.h"
#include "daemon/agent/blackhole_keeper.h"

namespace flannel {

struct NetRulesSettings {
  bool ip_masq = false;
  bool forward_rules = true;
  std::chrono::seconds resync{5};
  bool nftables = false;               // -enable-nftables (apply() also takes the config's key)
  std::string iptables_mode = "auto";  // -iptables-mode
  bool fully_random_disable = false;   // -ip-masq-fully-random-disable
  bool blackhole_route = false;        // -ip-blackhole-route
};

// What the previous run wrote in subnet.env (each part optional).
struct PreviousRun {
  std::optional<IP4Net> network;
  std::optional<IP4Net> subnet;
  bool ip_masq = false;
  std::optional<IP6Net> ipv6_network;
  std::optional<IP6Net> ipv6_subnet;
};

// What the rules are for: the cluster network(s) and our lease's subnet(s).
struct RulesTarget {
  IP4Net network{}, subnet{};
  std::optional<IP6Net> network6{}, subnet6{};
  bool v4 = true;         // EnableIPv4 (an IPv6-only lease's v4 part is a placeholder)
  bool nftables = false;  // the config's EnableNFTables
};

// Called from the keepers' threads for each repair: nftables mode?, IPv6?, how many.
using RepairCounter = std::function<void(bool nftables, bool ipv6, uint64_t n)>;

class NetRules {
 public:
  NetRules(NetRulesSettings settings, PreviousRun previous, RepairCounter count = nullptr);
  ~NetRules();  // stops the keepers; rules stay (a restart keeps pods working)

  // Installs (or moves to) the rules for `target`, in the background. Idempotent; a second call
  // waits for the first to finish. A change of mode between calls installs the new mode's rules,
  // then removes the old mode's.
  void apply(const RulesTarget& target);
  // Waits for the background work of apply().
  void wait();

  // The iptables keepers ("ip-masq", "forward"; "ip6-masq", "forward6") and the nftables ones
  // ("nft4", "nft6"); null when not installed. For tests. Call wait() first.
  const RuleKeeper* keeper(const std::string& name) const;
  const NftKeeper* nft_keeper(bool ipv6) const;

  // Test hook: the command lines used instead of "iptables" / "ip6tables" (before apply()); the
  // flavour is then not detected, and switching to nftables cleans only these.
  void set_commands(std::vector<std::string> iptables, std::vector<std::string> ip6tables);

 private:
  // One address family's iptables state.
  struct IptFamily {
    Iptables iptables;
    bool ipv6;
    const char* masq_name;
    const char* forward_name;
    std::optional<std::string> version;  // `iptables --version`, read once ("" if it failed)
    std::optional<bool> random_fully;
    std::optional<bool> nft_backed;  // iptables-nft: its keepers skip checks while the
                                     // nftables generation stays the same
    bool recycled = false;
    std::unique_ptr<RuleKeeper> masq;
    std::unique_ptr<RuleKeeper> forward;
  };
  void work(const RulesTarget& t);
  // iptables mode (net_rules_iptables.cc)
  void choose_flavour();
  template <typename Net>
  void ipt_apply(IptFamily& f, const Net& network, const Net& subnet,
                 const std::optional<Net>& prev_network, const std::optional<Net>& prev_subnet);
  template <typename Net>
  void ipt_recycle(IptFamily& f, const Net& network, const Net& subnet,
                   const std::optional<Net>& prev_network, const std::optional<Net>& prev_subnet);
  void ipt_start(IptFamily& f, std::unique_ptr<RuleKeeper>& keeper, const char* name,
                 std::vector<IptablesRule> rules);
  template <typename Net>
  void ipt_clean(IptFamily& f, const Net& network, const Net& subnet,
                 const std::optional<Net>& prev_network, const std::optional<Net>& prev_subnet);
  // nftables mode (net_rules_nftables.cc)
  void nft_apply(std::unique_ptr<NftKeeper>& keeper, NftRules rules);
  void nft_clean();
  std::optional<bool> nft_fully_random_;

  NetRulesSettings settings_;
  PreviousRun previous_;
  RepairCounter count_;
  bool flavour_chosen_ = false;
  bool commands_fixed_ = false;  // set_commands(): no flavour detection, no other worlds
  IptFamily v4_{
      Iptables({"iptables"}), false, "ip-masq", "forward", {}, {}, {}, false, nullptr, nullptr};
  IptFamily v6_{
      Iptables({"ip6tables"}), true, "ip6-masq", "forward6", {}, {}, {}, false, nullptr, nullptr};
  std::unique_ptr<NftKeeper> nft4_, nft6_;
  std::optional<bool> mode_nft_;  // the mode installed last
  BlackholeKeeper blackhole_;
  std::thread worker_;
};

}  // namespace flannel
