// The flannel CNI plugin's I/O half (the pure half is core/cni_config.h): reads the CNI_*
// environment, subnet.env and the saved delegate configs, runs the delegate plugin found in
// CNI_PATH, and prints the result or the CNI error JSON. daemon/cni/main.cc is a thin
// main() around run_cni_plugin(), so tests can run every command in-process.
//
//   ADD     subnet.env -> delegate config -> saved as <dataDir>/<CNI_CONTAINERID> (0600, atomic)
//           -> delegate ADD (same env, config on stdin) -> its result, in the config's cniVersion
//   DEL     saved config -> delegate DEL -> saved config removed; nothing saved: success, no-op
//   CHECK   saved config + the runtime's prevResult -> delegate CHECK (cniVersion >= 0.4.0)
//   VERSION the supported versions
#pragma once

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace flannel::cni {

// Runs one CNI command as a plugin process would: `env` is the process environment (CNI_COMMAND,
// CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH, and whatever else is passed on to
// the delegate), `stdin_data` the network config. Writes the result (ADD, VERSION) or the error
// JSON to `out` and diagnostics to `err`. Returns the exit status: 0 on success, 1 on error.
// Every error becomes error JSON (anything but a cni::Error as kInternal), with one exception:
// an error message that is not valid UTF-8 (e.g. one quoting a CNI_COMMAND of such bytes) makes
// error_json() throw nlohmann::json::type_error out of this function (core/cni_config.h).
// Ignores SIGPIPE for the process (a delegate may exit without reading stdin).
int run_cni_plugin(const std::map<std::string, std::string>& env, std::string_view stdin_data,
                   std::ostream& out, std::ostream& err);

// The first `<dir>/<type>` that is an executable regular file, for dir in the ':'-separated
// `cni_path`; nullopt if none.
std::optional<std::string> find_in_path(const std::string& type, const std::string& cni_path);

}  // namespace flannel::cni
