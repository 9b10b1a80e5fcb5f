// What the agent reads before it can hold a lease: the network config from the store (the step
// of kWaitingForConfig: one read, then a pause until it is present and valid) and what the
// previous run left in the subnet file.
#include "core/admission.h"
#include "core/subnet_env.h"
#include "daemon/agent/agent.h"
#include "daemon/common/logging.h"
#include "daemon/common/subnet_file.h"

namespace flannel {

AgentEvent Agent::read_config(std::stop_token stop) {
  std::string json;
  Status s = store_.get_config(&json);
  switch (classify(StoreCall::kGetConfig, s.code)) {
    case AgentEvent::kOk: break;
    case AgentEvent::kStoreReset: return AgentEvent::kStoreReset;  // re-based: read again at once
    case AgentEvent::kRetry:
      return config_problem("Network config not found at " + settings_.config_key +
                                "; waiting for it (write it with: flannelctl config set "
                                "'{\"Network\":\"10.5.0.0/16\"}')",
                            AgentEvent::kRetry, stop);
    default:
      metrics_.store_errors++;
      return config_problem(
          "Cannot read network config from " + store_.describe() + ": " + s.message,
          AgentEvent::kOutage, stop);
  }
  Config config;
  try {
    config = parse_config(json);
  } catch (const ConfigError& e) {
    return config_problem("Network config at " + settings_.config_key + " is invalid: " + e.what(),
                          AgentEvent::kRetry, stop);
  }
  if (auto why = check_network_for_host(config, iface_.ext_addr, iface_.ext_v6_addr)) {
    return config_problem("Network config at " + settings_.config_key + " is refused: " + *why,
                          AgentEvent::kRetry, stop);
  }
  config_problem_.clear();  // the next wait (after a store reset) logs its problems afresh
  return rereg_ ? reread(std::move(config)) : start_with(std::move(config));
}

AgentEvent Agent::config_problem(const std::string& problem, AgentEvent event,
                                 std::stop_token stop) {
  // Each distinct problem once at warning level, repeats only at -v 1.
  if (problem != config_problem_) {
    FLOG_WARNING("{}", problem);
    config_problem_ = problem;
  } else {
    FLOG_V(1, "{}", problem);
  }
  return sleep_unless_stopped(stop, settings_.retry_pause) ? event : AgentEvent::kStop;
}

AgentEvent Agent::reread(Config config) {
  if (config.backend_type != config_->backend_type) {
    FLOG_WARNING(
        "The re-read config names backend {} but this agent runs {}; restart flanneld to "
        "switch backends",
        config.backend_type, config_->backend_type);
  }
  config_ = std::move(config);
  set_admission_rules();
  auto grace = std::chrono::duration_cast<Clock::duration>(settings_.reset_grace);
  hold_.reset_grace_until = Clock::now() + grace;
  return AgentEvent::kOk;
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
    if (!warning.empty())
      FLOG_WARNING("Ignoring previous subnet in {}: {}", settings_.subnet_file, warning);
    prev.network = cidr_from_env(env, "FLANNEL_NETWORK");
    prev.ip_masq = env.count("FLANNEL_IPMASQ") && env.at("FLANNEL_IPMASQ") == "true";
    prev.ipv6_network = cidr6_from_env(env, "FLANNEL_IPV6_NETWORK");
    prev.ipv6_subnet = cidr6_from_env(env, "FLANNEL_IPV6_SUBNET");
    if (previous_key_)
      FLOG_INFO("Found previous subnet {} in {}", previous_key_->str(), settings_.subnet_file);
  } catch (const std::exception& e) {
    FLOG_WARNING("Ignoring unreadable subnet file {}: {}", settings_.subnet_file, e.what());
  }
  return prev;
}

}  // namespace flannel
