// The agent's iptables duties (flannel's -ip-masq and -iptables-forward-rules): recycle the
// rules a previous run left for another network or subnet, install ours before the subnet file
// is written, keep them in place every -iptables-resync seconds, and follow a lease that moves.
// A missing or failing iptables is logged and retried by the keepers, never fatal.
//
// The iptables work (a few fork/execs of the iptables binary, tens of milliseconds) runs on a
// background thread, as v0.11 runs it in goroutines, so it does not delay the subnet file and
// READY; the masquerade rules are normally in place long before docker starts a container.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <thread>

#include "backends/iptables.h"
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
};

class NetRules {
 public:
  NetRules(NetRulesSettings settings, PreviousRun previous);
  ~NetRules();  // stops the keepers; rules stay (a restart keeps pods working)

  // Installs (or moves to) the rules for `network` and our lease `subnet`, in the background.
  // Idempotent; a second call waits for the first to finish.
  void apply(const IP4Net& network, const IP4Net& subnet);

 private:
  void apply_now(const IP4Net& network, const IP4Net& subnet);
  void recycle(const IP4Net& network, const IP4Net& subnet);
  void start_keeper(std::unique_ptr<RuleKeeper>& keeper, const char* name,
                    std::vector<IptablesRule> rules);

  NetRulesSettings settings_;
  PreviousRun previous_;
  Iptables iptables_;
  std::optional<bool> random_fully_;
  bool recycled_ = false;
  std::unique_ptr<RuleKeeper> masq_;
  std::unique_ptr<RuleKeeper> forward_;
  std::thread worker_;
};

}  // namespace flannel
