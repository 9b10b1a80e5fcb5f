// extension backend config, as current flannel's (pkg/backend/extension, facts-2 §3).
//
// Backend object keys (case-insensitive, the last match wins, null = absent), each a command line
// run without a shell (command.h):
//   PreStartupCommand, PostStartupCommand, SubnetAddCommand, SubnetRemoveCommand ("" = none).
// Ours, beyond current flannel (which ignores unknown keys, so mixed meshes are fine):
//   CommandTimeout (integer seconds, 1..3600, default 10): a command still running then is
//   killed (SIGKILL) and counts as failed. Current flannel waits forever.
// Pure, no I/O.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace flannel {

struct ExtensionConfig {
  static constexpr std::chrono::seconds kDefaultTimeout{10};
  std::string pre_startup;    // "" = none
  std::string post_startup;   // "" = none
  std::string subnet_add;     // "" = none
  std::string subnet_remove;  // "" = none
  std::chrono::seconds timeout = kDefaultTimeout;
  // What an operator should know but is not an error, one line each: a ShutdownCommand (flannel's
  // dist/ examples carry one; no flannel runs it), a command word with a quote character (no
  // shell removes it: the program gets it as it is, flannel's own docs example fails that way).
  std::vector<std::string> warnings;
  bool operator==(const ExtensionConfig&) const = default;
};

// Decodes the Backend object (compact raw JSON, "" = absent). Throws BackendError
// "error decoding backend config: ..." naming the field and the bad value (a command that is not
// a string, a CommandTimeout that is not an integer in range, a Backend that is not an object).
ExtensionConfig decode_extension_config(const std::string& backend_json);

}  // namespace flannel
