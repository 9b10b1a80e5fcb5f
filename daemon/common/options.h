// flanneld's command line: every flag of flannel v0.11 with the same name, type and default, the
// glog flags that flanneld users pass, and our `-store` flag; parsed with Go flag syntax and the
// FLANNELD_* environment (core/flags.h), then validated.
//
// Differences from v0.11, all deliberate (see reference fact sheet §7.19):
//   - a bad flag, a bad FLANNELD_* value, a leftover positional argument (e.g. "-ip-masq false")
//     and every validation failure throw FlagError; main prints it and exits 2 (v0.11: exit 0, or
//     silently ignored for env values);
//   - the glog file flags (-logtostderr, -alsologtostderr, -log_dir, -stderrthreshold) are
//     accepted and honoured (v0.11 rejected them though older packaged flanneld took them);
//   - -kube-subnet-mgr=true is rejected: the Kubernetes subnet manager is not implemented, and
//     running against etcd instead would be a silent surprise.
#pragma once

#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/flags.h"
#include "daemon/common/logging.h"
#include "stores/open_store.h"

namespace flannel {

struct Options {
  // etcd (v0.11 names and defaults)
  std::string etcd_endpoints = "http://127.0.0.1:4001,http://127.0.0.1:2379";
  std::string etcd_prefix = "/coreos.com/network";
  std::string etcd_keyfile;
  std::string etcd_certfile;
  std::string etcd_cafile;
  std::string etcd_username;
  std::string etcd_password;
  int etcd_max_response_mb = 64;  // the largest answer read from etcd, 1..4096 MiB
  // interface choice
  std::vector<std::string> iface;        // names or IPv4 addresses, tried in order
  std::vector<std::string> iface_regex;  // tried after every iface value
  std::string public_ip;                 // "" = the chosen interface's address
  std::string public_ipv6;               // "" = the chosen interface's IPv6 address (EnableIPv6)
  std::string iface_can_reach;           // "" = unset; an IPv4 address: the interface routing to it
  // lease and subnet file
  std::string subnet_file = "/run/flannel/subnet.env";
  int subnet_lease_renew_margin = 60;  // minutes, 1..1439
  // data plane
  bool ip_masq = false;
  int iptables_resync = 5;        // seconds, >= 1
  int lease_check_interval = 60;  // seconds between reads of our own lease, 0 = off
  bool iptables_forward_rules = true;
  bool enable_nftables = false;               // or the config's EnableNFTables
  std::string iptables_mode = "auto";         // "auto" | "legacy" | "nft"
  bool ip_masq_fully_random_disable = false;  // current flannel's flag
  bool ip_blackhole_route = false;            // current flannel's flag
  std::string vxlan_tx_checksum = "auto";     // "auto" | "on" | "off" (core/tx_checksum.h)
  // Kubernetes subnet manager: accepted for compatibility; only false is supported
  bool kube_subnet_mgr = false;
  std::string kube_api_url;
  std::string kubeconfig_file;
  std::string kube_annotation_prefix = "flannel.alpha.coreos.com";
  // health endpoint
  std::string healthz_ip = "0.0.0.0";
  int healthz_port = 0;  // 0 = disabled
  // ours: "etcd" (the -etcd-* flags) or "sqlite:PATH"
  std::string store = "etcd";
  // glog flags
  LogOptions log;

  // -version was given on the command line: print FLANNEL_VERSION + "\n" to stderr, exit 0.
  // When set, the environment is not read and nothing is validated (v0.11 order).
  bool version = false;
  // -h / -help was given: print `usage` to stderr, exit 0. Nothing else is filled in.
  bool help = false;
  std::string usage;  // the full usage text (always filled in)

  // Every flag that was set, with where it came from (for the startup log). -etcd-password is
  // redacted.
  std::vector<FlagSetting> settings;
};

// Parses argv (argv[0] is the program name) and the FLANNELD_* variables in `env`, then validates.
// Throws FlagError with a one-line message naming the bad flag or variable, the bad value, and
// what is valid, e.g.
//   invalid value "0" for flag -subnet-lease-renew-margin: must be between 1 and 1439 minutes
//     (leases last 24 hours)
//   invalid value "fe80::1" for flag -public-ip: not an IPv4 address (use a dotted quad such as
//     10.0.0.5, ...)
//   unexpected argument "false" after the flags (a boolean flag takes its value with '=',
//     e.g. -ip-masq=false)
Options parse_flanneld_options(int argc, const char* const* argv,
                               const std::map<std::string, std::string>& env);

// Checks the values of a parsed Options (called by parse_flanneld_options; exposed for callers
// that build Options by hand). Throws FlagError as above.
void validate_options(const Options& opts);

// The whole front door of flanneld's main(): parse, then handle -help (usage on `err`, exit 0),
// -version (version + "\n" on `err`, exit 0) and errors (message and a hint on `err`, exit 2).
// Returns the options when the daemon should run; otherwise nullopt with *exit_code set.
std::optional<Options> parse_flanneld_command_line(int argc, const char* const* argv,
                                                   const std::map<std::string, std::string>& env,
                                                   std::ostream& err, int* exit_code);

// Splits -etcd-endpoints on ',' exactly as Go's strings.Split (no trimming; "" gives one empty
// item). validate_options rejects empty items and URLs without http:// or https://.
std::vector<std::string> split_etcd_endpoints(const std::string& endpoints);

// The etcd view of the options: endpoints split, prefix, TLS files, basic auth.
EtcdOptions etcd_options(const Options& opts);
// Declares the -etcd-* flags (flanneld's names, help and defaults) on `fs`, bound to the fields
// of `o`; flanneld and flannelctl share them. `o` must outlive `fs`'s parse().
void declare_etcd_flags(FlagSet& fs, Options& o);

}  // namespace flannel
