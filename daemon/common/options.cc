// GCC 12 with -fsanitize reports a false -Wmaybe-uninitialized inside libstdc++'s <regex>
// (std::function in the NFA compiler); it must be silenced before any header is read.
// (Clang has no such warning, and -Werror would reject the unknown name.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "daemon/common/options.h"

#include <algorithm>
#include <ostream>
#include <regex>
#include <stdexcept>

#include "core/ip.h"
#include "core/tx_checksum.h"

#ifndef FLANNEL_VERSION
#define FLANNEL_VERSION "unknown"
#endif

namespace flannel {

namespace {

constexpr char kEnvPrefix[] = "FLANNELD";

std::string program_basename(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return base.empty() ? "flanneld" : base;
}

}  // namespace

void declare_etcd_flags(FlagSet& fs, Options& o) {
  fs.add_string("etcd-endpoints", &o.etcd_endpoints, "a comma-delimited list of etcd endpoints");
  fs.add_string("etcd-prefix", &o.etcd_prefix, "etcd prefix");
  fs.add_string("etcd-keyfile", &o.etcd_keyfile, "SSL key file used to secure etcd communication");
  fs.add_string("etcd-certfile", &o.etcd_certfile,
                "SSL certification file used to secure etcd communication");
  fs.add_string("etcd-cafile", &o.etcd_cafile,
                "SSL Certificate Authority file used to secure etcd communication");
  fs.add_string("etcd-username", &o.etcd_username, "username for BasicAuth to etcd");
  fs.add_string("etcd-password", &o.etcd_password, "password for BasicAuth to etcd");
  fs.mark_sensitive("etcd-password");
  fs.add_int("etcd-max-response-mb", &o.etcd_max_response_mb,
             "the largest answer read from etcd, in MiB (a list of 100,000 leases is about 25)");
}

namespace {

// Declares every flag of flanneld, bound to the fields of `o`.
void declare_flags(FlagSet& fs, Options& o) {
  declare_etcd_flags(fs, o);
  fs.add_list("iface", &o.iface,
              "interface to use (IP or name) for inter-host communication. Can be specified "
              "multiple times to check each option in order. Returns the first match found.");
  fs.add_list("iface-regex", &o.iface_regex,
              "regex expression to match the first interface to use (IP or name) for inter-host "
              "communication. Can be specified multiple times to check each regex in order. "
              "Returns the first match found. Regexes are checked after specific interfaces "
              "specified by the iface option have already been checked.");
  fs.add_string(
      "iface-can-reach", &o.iface_can_reach,
      "detect the interface to use for inter-host communication as the one the kernel routes "
      "this IPv4 address through (`ip route get ADDRESS`); its source address becomes the "
      "interface address. Checked after -iface and -iface-regex.",
      [](const std::string& v) {
        if (!v.empty() && !IP4::try_parse(v))
          throw std::invalid_argument("not an IPv4 address (use a dotted quad such as 10.0.0.1)");
      });
  fs.add_string("subnet-file", &o.subnet_file,
                "filename where env variables (subnet, MTU, ... ) will be written to");
  fs.add_string("public-ip", &o.public_ip,
                "IP accessible by other nodes for inter-host communication");
  fs.add_string("public-ipv6", &o.public_ipv6,
                "IPv6 accessible by other nodes for inter-host communication");
  fs.add_int("subnet-lease-renew-margin", &o.subnet_lease_renew_margin,
             "subnet lease renewal margin, in minutes, ranging from 1 to 1439");
  fs.add_bool("ip-masq", &o.ip_masq,
              "setup IP masquerade rule for traffic destined outside of overlay network");
  fs.add_bool("kube-subnet-mgr", &o.kube_subnet_mgr,
              "contact the Kubernetes API for subnet assignment instead of etcd (not supported "
              "by this flanneld; only false is accepted)");
  fs.add_string("kube-api-url", &o.kube_api_url,
                "Kubernetes API server URL (accepted for compatibility, unused)");
  fs.add_string("kube-annotation-prefix", &o.kube_annotation_prefix,
                "Kubernetes annotation prefix (accepted for compatibility, unused)");
  fs.add_string("kubeconfig-file", &o.kubeconfig_file,
                "kubeconfig file location (accepted for compatibility, unused)");
  fs.add_bool("version", &o.version, "print version and exit");
  fs.mark_no_env("version");
  fs.add_string("healthz-ip", &o.healthz_ip, "the IP address for healthz server to listen");
  fs.add_int("healthz-port", &o.healthz_port,
             "the port for healthz server to listen(0 to disable)");
  fs.add_int("iptables-resync", &o.iptables_resync, "resync period for iptables rules, in seconds");
  fs.add_int("lease-check-interval", &o.lease_check_interval,
             "how often, in seconds, the agent reads its own lease back to make sure it is still "
             "in the store and still ours (0 to disable)");
  fs.add_bool("iptables-forward-rules", &o.iptables_forward_rules,
              "add default accept rules to FORWARD chain in iptables");
  fs.add_bool("enable-nftables", &o.enable_nftables,
              "put the masquerade and forward rules in nftables (tables flannel-ipv4 and "
              "flannel-ipv6) instead of iptables, as the network config's EnableNFTables does");
  fs.add_string("iptables-mode", &o.iptables_mode,
                "which iptables to use in iptables mode: \"auto\" (the one the host already "
                "holds rules in: iptables-legacy or iptables-nft), \"legacy\" or \"nft\"");
  fs.add_bool("ip-masq-fully-random-disable", &o.ip_masq_fully_random_disable,
              "do not use --random-fully (nftables: fully-random) on the masquerade rules");
  fs.add_bool("ip-blackhole-route", &o.ip_blackhole_route,
              "add a blackhole route for this host's pod subnet, kept every -iptables-resync "
              "seconds (for setups without the bridge CNI plugin)");
  fs.add_string("vxlan-tx-checksum", &o.vxlan_tx_checksum,
                "TX checksum offload (tx-checksum-ip-generic) of the vxlan devices: \"auto\" (off "
                "on kernels before 5.7, whose VXLAN checksums break behind NAT; else left as the "
                "kernel sets it), \"on\" or \"off\"",
                [](const std::string& v) {
                  if (!parse_tx_checksum(v))
                    throw std::invalid_argument(std::string(kTxChecksumValues));
                });
  fs.add_string("store", &o.store,
                "where the network config and leases live: \"etcd\" (the -etcd-* flags; the v2 or "
                "v3 API, whichever holds the config), \"etcdv2\" or \"etcdv3\" (that API only), "
                "or \"sqlite:PATH\" (one SQLite file shared by the agents of one host)");
  // glog
  fs.add_int("v", &o.log.v, "log level for V logs");
  fs.add_string("vmodule", &o.log.vmodule,
                "comma-separated list of pattern=N settings for file-filtered logging",
                validate_vmodule);
  fs.add_string("log_backtrace_at", &o.log.log_backtrace_at,
                "when logging hits line file:N, emit a stack trace", validate_backtrace_at);
  fs.add_bool("logtostderr", &o.log.logtostderr, "log to standard error instead of files");
  fs.add_bool("alsologtostderr", &o.log.alsologtostderr, "log to standard error as well as files");
  fs.add_string("log_dir", &o.log.log_dir, "If non-empty, write log files in this directory");
  fs.add_string("stderrthreshold", &o.log.stderrthreshold,
                "logs at or above this threshold go to stderr", validate_severity);
}

[[noreturn]] void fail(const Options& o, const std::string& flag, const std::string& value,
                       const std::string& why) {
  // Name the variable when the value came from the environment, so the user knows where to look.
  for (const auto& s : o.settings) {
    if (s.name == flag && s.source == FlagSource::kEnvironment) {
      throw FlagError("invalid value " + go_quote(value) + " for " + s.env_var + ": " + why);
    }
  }
  throw FlagError("invalid value " + go_quote(value) + " for flag -" + flag + ": " + why);
}

void validate_endpoint(const Options& o, const std::string& endpoint) {
  const std::string why_suffix =
      " (expected a comma-separated list of URLs such as http://127.0.0.1:2379)";
  if (endpoint.empty()) fail(o, "etcd-endpoints", o.etcd_endpoints, "empty endpoint" + why_suffix);
  std::string rest;
  if (endpoint.rfind("http://", 0) == 0) {
    rest = endpoint.substr(7);
  } else if (endpoint.rfind("https://", 0) == 0) {
    rest = endpoint.substr(8);
  } else {
    fail(
        o, "etcd-endpoints", o.etcd_endpoints,
        "endpoint " + go_quote(endpoint) + " does not start with http:// or https://" + why_suffix);
  }
  if (rest.empty() || rest[0] == '/' || rest[0] == ':') {
    fail(o, "etcd-endpoints", o.etcd_endpoints,
         "endpoint " + go_quote(endpoint) + " has no host" + why_suffix);
  }
  for (char c : endpoint) {
    if (c == ' ' || c == '\t' || c == '\n') {
      fail(o, "etcd-endpoints", o.etcd_endpoints,
           "endpoint " + go_quote(endpoint) + " contains whitespace" + why_suffix);
    }
  }
}

}  // namespace

std::vector<std::string> split_etcd_endpoints(const std::string& endpoints) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t comma = endpoints.find(',', start);
    if (comma == std::string::npos) {
      out.push_back(endpoints.substr(start));
      return out;
    }
    out.push_back(endpoints.substr(start, comma - start));
    start = comma + 1;
  }
}

EtcdOptions etcd_options(const Options& opts) {
  EtcdOptions e;
  e.endpoints = split_etcd_endpoints(opts.etcd_endpoints);
  e.prefix = opts.etcd_prefix;
  e.keyfile = opts.etcd_keyfile;
  e.certfile = opts.etcd_certfile;
  e.cafile = opts.etcd_cafile;
  e.username = opts.etcd_username;
  e.password = opts.etcd_password;
  e.max_response_bytes = static_cast<size_t>(opts.etcd_max_response_mb) << 20;
  return e;
}

void validate_options(const Options& o) {
  for (const auto& endpoint : split_etcd_endpoints(o.etcd_endpoints))
    validate_endpoint(o, endpoint);

  if (o.etcd_max_response_mb < 1 || o.etcd_max_response_mb > 4096) {
    fail(o, "etcd-max-response-mb", std::to_string(o.etcd_max_response_mb),
         "must be between 1 and 4096 (MiB); the default 64 holds 100,000 leases");
  }
  if (o.subnet_lease_renew_margin < 1 || o.subnet_lease_renew_margin > 1439) {
    fail(o, "subnet-lease-renew-margin", std::to_string(o.subnet_lease_renew_margin),
         "must be between 1 and 1439 minutes (leases last 24 hours)");
  }
  if (!o.public_ip.empty() && !IP4::try_parse(o.public_ip)) {
    fail(o, "public-ip", o.public_ip,
         "not an IPv4 address (use a dotted quad such as 10.0.0.5, or leave it unset to use the "
         "address of the chosen interface)");
  }
  if (!o.public_ipv6.empty()) {
    const auto ip6 = IP6::try_parse(o.public_ipv6);
    const std::string why =
        " (use e.g. 2001:db8::10, or leave it unset to use the IPv6 address of the chosen "
        "interface; it is used only when the network config has EnableIPv6 true)";
    if (!ip6) fail(o, "public-ipv6", o.public_ipv6, "not an IPv6 address" + why);
    // ::ffff:a.b.c.d is an IPv4 address in IPv6 clothing: no IPv6 peer can reach it, and its
    // mixed notation in the lease is rejected by current flannel's parser.
    const bool v4_mapped = std::all_of(ip6->bytes.begin(), ip6->bytes.begin() + 10,
                                       [](uint8_t b) { return b == 0; }) &&
                           ip6->bytes[10] == 0xff && ip6->bytes[11] == 0xff;
    if (v4_mapped)
      fail(o, "public-ipv6", o.public_ipv6, "an IPv4-mapped address, not an IPv6 one" + why);
  }
  if (!o.healthz_ip.empty() && !IP4::try_parse(o.healthz_ip) && !IP6::try_parse(o.healthz_ip)) {
    fail(o, "healthz-ip", o.healthz_ip,
         "not an IP address (use e.g. 0.0.0.0 for all interfaces, or 127.0.0.1)");
  }
  if (o.healthz_port < 0 || o.healthz_port > 65535) {
    fail(o, "healthz-port", std::to_string(o.healthz_port),
         "must be a TCP port 1..65535, or 0 to disable the healthz server");
  }
  if (o.iptables_resync < 1) {
    fail(o, "iptables-resync", std::to_string(o.iptables_resync), "must be at least 1 second");
  }
  if (o.iptables_mode != "auto" && o.iptables_mode != "legacy" && o.iptables_mode != "nft") {
    fail(o, "iptables-mode", o.iptables_mode,
         "must be \"auto\", \"legacy\" (iptables-legacy) or \"nft\" (iptables-nft)");
  }
  if (o.lease_check_interval < 0) {
    fail(o, "lease-check-interval", std::to_string(o.lease_check_interval),
         "must be a number of seconds, or 0 to disable the check");
  }
  if (o.subnet_file.empty()) {
    fail(o, "subnet-file", o.subnet_file, "must name a file (default /run/flannel/subnet.env)");
  }
  if (o.kube_subnet_mgr) {
    fail(o, "kube-subnet-mgr", "true",
         "the Kubernetes subnet manager is not supported by this flanneld; use -store=etcd (the "
         "default) or -store=sqlite:PATH");
  }
  for (const auto& re : o.iface_regex) {
    try {
      std::regex compiled(re, std::regex::ECMAScript);
      (void)compiled;
    } catch (const std::regex_error& e) {
      fail(o, "iface-regex", re, std::string("not a valid regular expression: ") + e.what());
    }
  }
  try {
    (void)parse_store_spec(o.store);
  } catch (const std::exception& e) { fail(o, "store", o.store, e.what()); }
  try {
    validate_vmodule(o.log.vmodule);
    validate_backtrace_at(o.log.log_backtrace_at);
    validate_severity(o.log.stderrthreshold);
  } catch (const std::invalid_argument& e) {
    throw FlagError(std::string("invalid logging flag: ") + e.what());
  }
}

Options parse_flanneld_options(int argc, const char* const* argv,
                               const std::map<std::string, std::string>& env) {
  Options o;
  const std::string argv0 = argc > 0 && argv[0] != nullptr ? argv[0] : "flanneld";
  o.log.program = program_basename(argv0);
  FlagSet fs(argv0);
  declare_flags(fs, o);
  o.usage = fs.usage();

  FlagSet::ParseResult parsed = fs.parse(argc, argv);
  if (parsed.help) {
    o.help = true;
    return o;
  }
  if (o.version) {  // v0.11 checks -version before reading the environment
    o.settings = fs.settings();
    return o;
  }
  if (!parsed.args.empty()) {
    std::string msg = "unexpected argument " + go_quote(parsed.args.front()) + " after the flags";
    // The classic trap: "-ip-masq false" sets ip-masq and then stops at "false".
    const std::string& arg = parsed.args.front();
    bool looks_bool = arg == "true" || arg == "false" || arg == "1" || arg == "0" ||
                      arg == "True" || arg == "False" || arg == "TRUE" || arg == "FALSE";
    if (looks_bool) {
      msg += " (a boolean flag takes its value with '=', e.g. -ip-masq=" + arg + ")";
    } else {
      msg +=
          " (flanneld takes no positional arguments; flag values need -name=value or "
          "-name value)";
    }
    throw FlagError(msg);
  }
  fs.apply_env(env, kEnvPrefix);
  o.settings = fs.settings();
  validate_options(o);
  return o;
}

std::optional<Options> parse_flanneld_command_line(int argc, const char* const* argv,
                                                   const std::map<std::string, std::string>& env,
                                                   std::ostream& err, int* exit_code) {
  const std::string program =
      program_basename(argc > 0 && argv[0] != nullptr ? argv[0] : "flanneld");
  try {
    Options o = parse_flanneld_options(argc, argv, env);
    if (o.help) {
      err << o.usage;
      *exit_code = 0;
      return std::nullopt;
    }
    if (o.version) {
      err << FLANNEL_VERSION << "\n";
      *exit_code = 0;
      return std::nullopt;
    }
    return o;
  } catch (const FlagError& e) {
    err << e.what() << "\n"
        << "Run '" << program << " -help' for the list of flags.\n";
    *exit_code = 2;
    return std::nullopt;
  }
}

}  // namespace flannel
