// The flannel CNI plugin's pure logic: the network config it reads on stdin, the subnet.env it
// reads from flanneld, the delegate (bridge + host-local) config it derives from both, the result
// and error JSON it prints per cniVersion, and the 10-flannel.conflist `flannelctl cni-config`
// prints. No I/O: daemon/cni/plugin.{h,cc} reads the files, runs the delegate and prints.
//
// Behaviour follows the public flannel CNI plugin (flannel-io/cni-plugin, flannel.go and
// flannel_linux.go) and CNI SPEC 1.0.0; where it differs on purpose the comment says so and the
// README's "Kubernetes node" section lists it.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/ip.h"

namespace flannel::cni {

// CNI error codes (SPEC 1.0.0 "Error"). We use them for every cniVersion: 0.3.x/0.4.0 leave
// 3..99 undefined, and a runtime only tells zero from non-zero there.
enum Code : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,
  kInvalidEnvironment = 4,
  kIOFailure = 5,
  kDecodeFailure = 6,
  kInvalidConfig = 7,
  kTryAgainLater = 11,
  kInternal = 999,  // what libcni's skel reports for a plain error (delegate misbehaving)
};

// A CNI error: printed as error JSON on stdout, exit status 1. what() is the "msg".
class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& msg, std::string details = "")
      : std::runtime_error(msg), code_(code), details_(std::move(details)) {}
  int code() const { return code_; }
  const std::string& details() const { return details_; }

 private:
  int code_;
  std::string details_;
};

inline constexpr const char* kDefaultSubnetFile = "/run/flannel/subnet.env";
inline constexpr const char* kDefaultDataDir = "/var/lib/cni/flannel";

// The cniVersions we accept, oldest first: 0.3.0, 0.3.1, 0.4.0, 1.0.0.
const std::vector<std::string>& supported_versions();
bool version_supported(std::string_view v);
// True from 0.4.0 on (CHECK did not exist before).
bool version_has_check(std::string_view v);

// The plugin's own config (one entry of a conflist, with the "name" and "cniVersion" the runtime
// injects). Unknown keys are ignored, as every CNI plugin does.
struct NetConf {
  std::string cni_version;
  std::string name;
  std::string subnet_file = kDefaultSubnetFile;  // "subnetFile"
  std::string data_dir = kDefaultDataDir;  // "dataDir": saved delegate configs, one per container
  nlohmann::json delegate =
      nlohmann::json::object();   // "delegate", copied into the delegate config
  nlohmann::json ipam;            // "ipam" (object or null): base of the delegate's ipam
  nlohmann::json runtime_config;  // "runtimeConfig" (object or null): handed to the delegate
  nlohmann::json prev_result;     // "prevResult" (object or null): needed by CHECK
};

// Parses and validates the stdin config. Throws Error:
//   kDecodeFailure  not JSON, or not an object;
//   kIncompatibleVersion  cniVersion missing or not one of supported_versions();
//   kInvalidConfig  a key of the wrong type or value (the message names the key and the value),
//                   "name" missing, a relative subnetFile/dataDir, "delegate" holding "name" or
//                   "ipam" (flannel sets them), a delegate.type that is not a string or names a
//                   path ('/'), "ipam" holding "ranges" or "subnet" (flannel sets them from
//                   FLANNEL_SUBNET), bad ipam.routes.
// The first problem found throws. One exception is not a cni::Error: a number
// too large for a double makes nlohmann throw json::out_of_range (406), which escapes as is
// (run_cni_plugin then reports it as kInternal, not kDecodeFailure).
NetConf parse_netconf(std::string_view text);

// What flanneld wrote to subnet.env, in the form the plugin needs.
struct FlannelEnv {
  std::optional<IP4Net> network;      // FLANNEL_NETWORK
  std::optional<IP4Net> subnet;       // FLANNEL_SUBNET, host bits cleared (10.5.34.1/24 -> .0/24)
  std::optional<IP6Net> ip6_network;  // FLANNEL_IPV6_NETWORK (current flanneld's dual stack)
  std::optional<IP6Net> ip6_subnet;   // FLANNEL_IPV6_SUBNET
  int mtu = 0;                        // FLANNEL_MTU
  bool ipmasq = false;                // FLANNEL_IPMASQ
};

// Parses subnet.env text read from `path` (named in messages). Needs a network (v4 or v6), a
// subnet (v4 or v6), FLANNEL_MTU and FLANNEL_IPMASQ. Throws Error(kInvalidConfig) naming the
// path and every missing key, or the key and value that does not parse ("FLANNEL_MTU=abc").
FlannelEnv parse_flannel_env(std::string_view text, const std::string& path);

// The delegate config for ADD: conf.delegate plus, unless the user set them, "type" "bridge",
// "ipMasq" = !FLANNEL_IPMASQ, "mtu" = FLANNEL_MTU, "isGateway" true (bridge only); always "name",
// "cniVersion", "runtimeConfig" (when given) and "ipam" = conf.ipam with "type" defaulting to
// "host-local", "ranges" [[{"subnet": FLANNEL_SUBNET}]] (+ the v6 one), and "routes" = the
// user's ipam.routes followed by {"dst": FLANNEL_NETWORK} (+ the v6 one), with "gw" the bridge
// address (FLANNEL_SUBNET's first host) when the delegate is a gateway bridge.
nlohmann::json delegate_config(const NetConf& conf, const FlannelEnv& env);

// The config for a CHECK of the delegate: the config saved at ADD with the runtime's prevResult
// (and runtimeConfig, if the CHECK config carries one). Throws Error(kInvalidConfig) without a
// prevResult, Error(kDecodeFailure) if `saved` is not a JSON object.
nlohmann::json check_config(std::string_view saved, const NetConf& conf);

// A delegate's ADD result in the shape of cniVersion `version`: "cniVersion" set to it, and the
// "version" member of each "ips" entry present ("4"/"6", for 0.3.x and 0.4.0) or absent (1.0.0).
// Throws Error(kInternal) for something that is not a result (not an object, "ips" not an array
// of objects with a string "address").
nlohmann::json convert_result(const nlohmann::json& result, const std::string& version);

// {"cniVersion": version, "code": .., "msg": .., "details": ..} ("details" only when set).
// An unsupported or empty `version` prints as 1.0.0. Throws nlohmann::json::type_error (316)
// when e.what() or e.details() is not valid UTF-8 (json::dump is strict), e.g. a message that
// quotes a byte of CNI_COMMAND or of subnet.env.
std::string error_json(const Error& e, const std::string& version);

// The VERSION command's answer: {"cniVersion": .., "supportedVersions": [...]}.
std::string version_json(const std::string& requested);

// Container IDs become file names in dataDir: SPEC 1.0.0 allows [A-Za-z0-9][A-Za-z0-9_.-]*.
bool valid_container_id(std::string_view id);

// What `flannelctl cni-config` prints: a conflist of flannel (delegate hairpinMode and
// isDefaultGateway, as kube-flannel's) and portmap (capabilities portMappings). subnet_file and
// data_dir are written only when they differ from the defaults.
struct ConflistOptions {
  std::string name = "cbr0";
  std::string cni_version = "1.0.0";
  std::string subnet_file = kDefaultSubnetFile;
  std::string data_dir = kDefaultDataDir;
};
// Throws Error(kInvalidConfig) for an unsupported version, empty name or relative path.
std::string render_conflist(const ConflistOptions& o);

}  // namespace flannel::cni
