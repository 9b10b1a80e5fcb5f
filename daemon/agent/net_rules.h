// The agent's iptables duties (flannel's -ip-masq and -iptables-forward-rules): recycle the
// rules a previous run left for another network or subnet, install ours before the subnet file
// is written, keep them in place every -iptables-resync seconds, and follow a lease that moves.
// A missing or failing iptables is logged and retried by the keepers, never fatal.
//
// Dual stack: with an IPv6 network and subnet the same duties run for ip6tables (the same rule
// shapes with ff00::/8, backends/rules/iptables.h), each family with its own keepers and its own
// --random-fully probe; the previous run's FLANNEL_IPV6_NETWORK / FLANNEL_IPV6_SUBNET are
// recycled like the IPv4 ones.
//
// The iptables work (a few runs of the iptables binary, tens of milliseconds) runs on a worker
// thread; the agent waits for it (wait()) before it writes the subnet file and sends READY=1, so
// the masquerade and forward rules are in place (or their failure logged and left to the
// keepers' retries) before docker or the CNI plugin can start a container.
//
// Thread safety: apply(), wait(), keeper() and set_commands() are for one owner thread (the
// agent's); the background work runs on the worker thread, and each keeper's resync on its own.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends/rules/iptables.h"
#include "core/ip.h"

namespace flannel {

struct NetRulesSettings {
  bool ip_masq = false;
  bool forward_rules = true;
  std::chrono::seconds resync{5};
};

// What the previous run wrote in subnet.env (each part optional).
struct PreviousRun {
  std::optional<IP4Net> network;
  std::optional<IP4Net> subnet;
  bool ip_masq = false;
  std::optional<IP6Net> ipv6_network;
  std::optional<IP6Net> ipv6_subnet;
};

class NetRules {
 public:
  NetRules(NetRulesSettings settings, PreviousRun previous);
  ~NetRules();  // stops the keepers; rules stay (a restart keeps pods working)

  // Installs (or moves to) the rules for `network` and our lease `subnet`, in the background;
  // with network6 and subnet6 also the ip6tables rules. Idempotent; a second call waits for the
  // first to finish. `v4` false (EnableIPv4 off) skips the iptables rules.
  void apply(const IP4Net& network, const IP4Net& subnet,
             const std::optional<IP6Net>& network6 = std::nullopt,
             const std::optional<IP6Net>& subnet6 = std::nullopt, bool v4 = true);
  // Waits for the background work of apply() (tests).
  void wait();

  // The keepers of one family ("ip-masq", "forward"; "ip6-masq", "forward6"); null before
  // apply() installed them. For tests and metrics. The worker thread creates them: call wait()
  // first. The pointer is valid as long as this NetRules.
  const RuleKeeper* keeper(const std::string& name) const;

  // Test hook: the command lines used instead of "iptables" / "ip6tables" (before apply()).
  void set_commands(std::vector<std::string> iptables, std::vector<std::string> ip6tables);

 private:
  // One address family's state.
  struct Family {
    Iptables iptables;
    const char* masq_name;
    const char* forward_name;
    std::optional<bool> random_fully;
    bool recycled = false;
    std::unique_ptr<RuleKeeper> masq;
    std::unique_ptr<RuleKeeper> forward;
  };
  template <typename Net>
  void apply_family(Family& f, const Net& network, const Net& subnet,
                    const std::optional<Net>& prev_network, const std::optional<Net>& prev_subnet);
  template <typename Net>
  void recycle(Family& f, const Net& network, const Net& subnet,
               const std::optional<Net>& prev_network, const std::optional<Net>& prev_subnet);
  void start_keeper(Family& f, std::unique_ptr<RuleKeeper>& keeper, const char* name,
                    std::vector<IptablesRule> rules);

  NetRulesSettings settings_;
  PreviousRun previous_;
  Family v4_{Iptables({"iptables"}), "ip-masq", "forward", {}, false, nullptr, nullptr};
  Family v6_{Iptables({"ip6tables"}), "ip6-masq", "forward6", {}, false, nullptr, nullptr};
  std::thread worker_;
};

}  // namespace flannel
