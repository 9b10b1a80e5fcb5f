// What the agent reads before it can hold a lease: the network config from the store (waiting
// until it is present and valid) and what the previous run left in the subnet file.
#include "core/subnet_env.h"
#include "daemon/agent/agent.h"
#include "daemon/common/logging.h"
#include "daemon/common/subnet_file.h"

namespace flannel {

std::optional<Config> Agent::wait_for_config(std::stop_token stop) {
  std::string last_problem;
  while (!stop.stop_requested()) {
    std::string json;
    Status s = store_.get_config(&json);
    std::string problem;
    if (s.ok()) {
      try {
        return parse_config(json);
      } catch (const ConfigError& e) {
        problem = "Network config at " + settings_.config_key + " is invalid: " + e.what();
      }
    } else if (s.code == StoreCode::kNotFound) {
      problem = "Network config not found at " + settings_.config_key +
                "; waiting for it (write it with: flannelctl config set '{\"Network\":\"10.5.0.0/16\"}')";
    } else if (s.code == StoreCode::kStoreReset) {
      continue;  // the store re-based on the new data: read again at once
    } else {
      metrics_.store_errors++;
      problem = "Cannot read network config from " + store_.describe() + ": " + s.message;
    }
    // Log each distinct problem once at warning level, repeats only at -v 1.
    if (problem != last_problem) {
      FLOG_WARNING("{}", problem);
      last_problem = problem;
    } else {
      FLOG_V(1, "{}", problem);
    }
    if (!sleep_unless_stopped(stop, settings_.retry_pause)) break;
  }
  return std::nullopt;
}

PreviousRun Agent::read_previous_run() {
  PreviousRun prev;
  try {
    auto text = read_file_if_exists(settings_.subnet_file);
    if (!text) return prev;
    auto env = parse_env_file(*text);
    std::string warning;
    prev.subnet = previous_subnet_from_env(env);
    previous_key_ = previous_key_from_env(env, *config_, &warning);
    if (!warning.empty()) FLOG_WARNING("Ignoring previous subnet in {}: {}", settings_.subnet_file, warning);
    prev.network = cidr_from_env(env, "FLANNEL_NETWORK");
    prev.ip_masq = env.count("FLANNEL_IPMASQ") && env.at("FLANNEL_IPMASQ") == "true";
    prev.ipv6_network = cidr6_from_env(env, "FLANNEL_IPV6_NETWORK");
    prev.ipv6_subnet = cidr6_from_env(env, "FLANNEL_IPV6_SUBNET");
    if (previous_key_) FLOG_INFO("Found previous subnet {} in {}", previous_key_->str(), settings_.subnet_file);
  } catch (const std::exception& e) {
    FLOG_WARNING("Ignoring unreadable subnet file {}: {}", settings_.subnet_file, e.what());
  }
  return prev;
}

}  // namespace flannel
