// flanneld options: v0.11 names and defaults, FLANNELD_* environment, validation messages, and
// the front-door behaviour (help, version, exit codes).
#include "daemon/common/options.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace flannel {
namespace {

using Env = std::map<std::string, std::string>;

Options parse(std::vector<std::string> args, const Env& env = {}) {
  args.insert(args.begin(), "flanneld");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return parse_flanneld_options(static_cast<int>(args.size()), argv.data(), env);
}

std::string error_of(std::vector<std::string> args, const Env& env = {}) {
  try {
    parse(std::move(args), env);
  } catch (const FlagError& e) { return e.what(); }
  return "(no error)";
}

struct FrontResult {
  std::optional<Options> opts;
  int exit_code = -1;
  std::string err;
};

FrontResult front(std::vector<std::string> args, const Env& env = {}) {
  args.insert(args.begin(), "/usr/bin/flanneld");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  FrontResult r;
  std::ostringstream err;
  r.opts = parse_flanneld_command_line(static_cast<int>(args.size()), argv.data(), env, err,
                                       &r.exit_code);
  r.err = err.str();
  return r;
}

TEST(OptionsTest, V011Defaults) {
  Options o = parse({});
  EXPECT_EQ(o.etcd_endpoints, "http://127.0.0.1:4001,http://127.0.0.1:2379");
  EXPECT_EQ(o.etcd_prefix, "/coreos.com/network");
  EXPECT_EQ(o.etcd_keyfile, "");
  EXPECT_EQ(o.etcd_certfile, "");
  EXPECT_EQ(o.etcd_cafile, "");
  EXPECT_EQ(o.etcd_username, "");
  EXPECT_EQ(o.etcd_password, "");
  EXPECT_TRUE(o.iface.empty());
  EXPECT_TRUE(o.iface_regex.empty());
  EXPECT_EQ(o.subnet_file, "/run/flannel/subnet.env");
  EXPECT_EQ(o.public_ip, "");
  EXPECT_EQ(o.subnet_lease_renew_margin, 60);
  EXPECT_FALSE(o.ip_masq);
  EXPECT_FALSE(o.kube_subnet_mgr);
  EXPECT_EQ(o.kube_api_url, "");
  EXPECT_EQ(o.kubeconfig_file, "");
  EXPECT_EQ(o.kube_annotation_prefix, "flannel.alpha.coreos.com");
  EXPECT_FALSE(o.version);
  EXPECT_EQ(o.healthz_ip, "0.0.0.0");
  EXPECT_EQ(o.healthz_port, 0);
  EXPECT_EQ(o.iptables_resync, 5);
  EXPECT_TRUE(o.iptables_forward_rules);
  EXPECT_FALSE(o.enable_nftables);
  EXPECT_EQ(o.iptables_mode, "auto");
  EXPECT_FALSE(o.ip_masq_fully_random_disable);
  EXPECT_FALSE(o.ip_blackhole_route);
  EXPECT_EQ(o.store, "etcd");
  EXPECT_EQ(o.log.v, 0);
  EXPECT_EQ(o.log.vmodule, "");
  EXPECT_EQ(o.log.log_backtrace_at, "");
  EXPECT_TRUE(o.log.logtostderr);
  EXPECT_FALSE(o.log.alsologtostderr);
  EXPECT_EQ(o.log.log_dir, "");
  EXPECT_EQ(o.log.stderrthreshold, "ERROR");
  EXPECT_EQ(o.log.program, "flanneld");
  EXPECT_FALSE(o.help);
  EXPECT_TRUE(o.settings.empty());
}

TEST(OptionsTest, SeedPackagedCommandLine) {
  // /usr/bin/flanneld -etcd-endpoints=... -etcd-prefix=/jxdd/network --logtostderr=false
  //   --log_dir=/var/log/flannel/ --iface=eth0
  Options o = parse(
      {"-etcd-endpoints=http://192.168.6.15:2379,http://192.168.6.2:2379,http://192.168.6.5:2379",
       "-etcd-prefix=/jxdd/network", "--logtostderr=false", "--log_dir=/var/log/flannel/",
       "--iface=eth0"});
  EXPECT_EQ(o.etcd_prefix, "/jxdd/network");
  EXPECT_FALSE(o.log.logtostderr);
  EXPECT_EQ(o.log.log_dir, "/var/log/flannel/");
  EXPECT_EQ(o.iface, (std::vector<std::string>{"eth0"}));
  EtcdOptions e = etcd_options(o);
  EXPECT_EQ(e.endpoints,
            (std::vector<std::string>{"http://192.168.6.15:2379", "http://192.168.6.2:2379",
                                      "http://192.168.6.5:2379"}));
  EXPECT_EQ(e.prefix, "/jxdd/network");
}

TEST(OptionsTest, SeedSupervisorScript) {
  Options o = parse({"--public-ip=10.3.153.221",
                     "--etcd-endpoints=https://10.3.153.212:2379,https://10.3.153.221:2379",
                     "--etcd-keyfile=./cert/client-key.pem", "--etcd-certfile=./cert/client.pem",
                     "--etcd-cafile=./cert/ca.pem", "--iface=ens33", "--subnet-file=./subnet.env",
                     "--healthz-port=2401"});
  EXPECT_EQ(o.public_ip, "10.3.153.221");
  EXPECT_EQ(o.healthz_port, 2401);
  EXPECT_EQ(o.subnet_file, "./subnet.env");
  EtcdOptions e = etcd_options(o);
  EXPECT_EQ(e.keyfile, "./cert/client-key.pem");
  EXPECT_EQ(e.certfile, "./cert/client.pem");
  EXPECT_EQ(e.cafile, "./cert/ca.pem");
  EXPECT_EQ(e.endpoints.size(), 2u);
}

TEST(OptionsTest, EveryFlagIsDeclared) {
  Options o =
      parse({"-etcd-username=u", "-etcd-password=p", "-iface-regex=^eth",
             "-iface-regex=10\\.0\\..*", "-subnet-lease-renew-margin=30", "-ip-masq",
             "-kube-api-url=https://k", "-kubeconfig-file=/k", "-kube-annotation-prefix=x",
             "-healthz-ip=127.0.0.1", "-iptables-resync=10", "-iptables-forward-rules=false",
             "-store=etcd", "-v=3", "-vmodule=iface=4,lease*=2", "-log_backtrace_at=main.cc:12",
             "-alsologtostderr", "-stderrthreshold=WARNING"});
  EXPECT_EQ(o.etcd_username, "u");
  EXPECT_EQ(o.etcd_password, "p");
  EXPECT_EQ(o.iface_regex.size(), 2u);
  EXPECT_EQ(o.subnet_lease_renew_margin, 30);
  EXPECT_TRUE(o.ip_masq);
  EXPECT_EQ(o.kube_api_url, "https://k");
  EXPECT_EQ(o.kubeconfig_file, "/k");
  EXPECT_EQ(o.kube_annotation_prefix, "x");
  EXPECT_EQ(o.healthz_ip, "127.0.0.1");
  EXPECT_EQ(o.iptables_resync, 10);
  EXPECT_FALSE(o.iptables_forward_rules);
  EXPECT_EQ(o.log.v, 3);
  EXPECT_EQ(o.log.vmodule, "iface=4,lease*=2");
  EXPECT_EQ(o.log.log_backtrace_at, "main.cc:12");
  EXPECT_TRUE(o.log.alsologtostderr);
  EXPECT_EQ(o.log.stderrthreshold, "WARNING");
  for (const auto& s : o.settings) {
    if (s.name == "etcd-password") { EXPECT_EQ(s.value, "<redacted>"); }
  }
  EtcdOptions e = etcd_options(o);
  EXPECT_EQ(e.username, "u");
  EXPECT_EQ(e.password, "p");
}

TEST(OptionsTest, EnvironmentLikeV011) {
  Options o = parse({"-iface=eth2"}, Env{{"FLANNELD_ETCD_ENDPOINTS", "http://172.17.8.101:2379"},
                                         {"FLANNELD_ETCD_PREFIX", "/kube-centos/network"},
                                         {"FLANNELD_IFACE", "eth0"},
                                         {"FLANNELD_IFACE_REGEX", "^en"},
                                         {"FLANNELD_IP_MASQ", "true"},
                                         {"FLANNELD_V", "2"},
                                         {"FLANNELD_LOGTOSTDERR", "false"},
                                         {"FLANNELD_PUBLIC_IP", ""},
                                         // Not FLANNELD_*: the sysconfig names are for the
                                         // wrapper script, not for flanneld itself.
                                         {"FLANNEL_ETCD_PREFIX", "/ignored"}});
  EXPECT_EQ(o.etcd_endpoints, "http://172.17.8.101:2379");
  EXPECT_EQ(o.etcd_prefix, "/kube-centos/network");
  EXPECT_EQ(o.iface, (std::vector<std::string>{"eth2"}));  // command line wins
  EXPECT_EQ(o.iface_regex, (std::vector<std::string>{"^en"}));
  EXPECT_TRUE(o.ip_masq);
  EXPECT_EQ(o.log.v, 2);
  EXPECT_FALSE(o.log.logtostderr);
  EXPECT_EQ(o.public_ip, "");
  bool found = false;
  for (const auto& s : o.settings) {
    if (s.name == "etcd-prefix") {
      found = true;
      EXPECT_EQ(s.source, FlagSource::kEnvironment);
      EXPECT_EQ(s.env_var, "FLANNELD_ETCD_PREFIX");
    }
    if (s.name == "iface") { EXPECT_EQ(s.source, FlagSource::kCommandLine); }
  }
  EXPECT_TRUE(found);
}

TEST(OptionsTest, InvalidEnvValueIsAnError) {
  EXPECT_EQ(error_of({}, Env{{"FLANNELD_HEALTHZ_PORT", "eighty"}}),
            "invalid value \"eighty\" for FLANNELD_HEALTHZ_PORT: parse error");
  EXPECT_EQ(error_of({}, Env{{"FLANNELD_IP_MASQ", "yes"}}),
            "invalid value \"yes\" for FLANNELD_IP_MASQ: parse error");
  // A validation failure of an env-supplied value names the variable.
  EXPECT_EQ(error_of({}, Env{{"FLANNELD_SUBNET_LEASE_RENEW_MARGIN", "0"}}),
            "invalid value \"0\" for FLANNELD_SUBNET_LEASE_RENEW_MARGIN: must be between 1 and "
            "1439 minutes (leases last 24 hours)");
}

TEST(OptionsTest, VersionEnvHasNoEffectAndVersionSkipsEnv) {
  Options o = parse({}, Env{{"FLANNELD_VERSION", "true"}});
  EXPECT_FALSE(o.version);
  // -version is handled before the environment is read: a bad variable does not block it.
  Options v = parse({"-version"}, Env{{"FLANNELD_HEALTHZ_PORT", "junk"}});
  EXPECT_TRUE(v.version);
}

TEST(OptionsTest, RenewMarginRange) {
  EXPECT_EQ(parse({"-subnet-lease-renew-margin=1"}).subnet_lease_renew_margin, 1);
  EXPECT_EQ(parse({"-subnet-lease-renew-margin=1439"}).subnet_lease_renew_margin, 1439);
  EXPECT_EQ(error_of({"-subnet-lease-renew-margin=0"}),
            "invalid value \"0\" for flag -subnet-lease-renew-margin: must be between 1 and 1439 "
            "minutes (leases last 24 hours)");
  EXPECT_EQ(error_of({"-subnet-lease-renew-margin=1440"}),
            "invalid value \"1440\" for flag -subnet-lease-renew-margin: must be between 1 and "
            "1439 minutes (leases last 24 hours)");
}

TEST(OptionsTest, PublicIpMustBeIPv4) {
  EXPECT_EQ(parse({"-public-ip=10.0.0.5"}).public_ip, "10.0.0.5");
  const std::string why =
      ": not an IPv4 address (use a dotted quad such as 10.0.0.5, or leave it unset to use the "
      "address of the chosen interface)";
  EXPECT_EQ(error_of({"-public-ip=fe80::1"}),
            "invalid value \"fe80::1\" for flag -public-ip" + why);
  EXPECT_EQ(error_of({"-public-ip=10.0.0"}), "invalid value \"10.0.0\" for flag -public-ip" + why);
  EXPECT_EQ(error_of({"-public-ip=host.example"}),
            "invalid value \"host.example\" for flag -public-ip" + why);
}

TEST(OptionsTest, PublicIpv6MustBeIPv6) {
  EXPECT_EQ(parse({"-public-ipv6=2001:db8::10"}).public_ipv6, "2001:db8::10");
  EXPECT_EQ(parse({"--public-ipv6", "fd00:250::1"}).public_ipv6, "fd00:250::1");
  EXPECT_EQ(parse({"-public-ipv6=FE80::1"}).public_ipv6, "FE80::1");  // link-local, any case
  EXPECT_EQ(parse({}, Env{{"FLANNELD_PUBLIC_IPV6", "fd00::5"}}).public_ipv6, "fd00::5");
  EXPECT_EQ(parse({}).public_ipv6, "");  // unset: the interface's IPv6 address
  const std::string why =
      ": not an IPv6 address (use e.g. 2001:db8::10, or leave it unset to use the IPv6 address of "
      "the chosen interface; it is used only when the network config has EnableIPv6 true)";
  // An IPv4 address (which -public-ip takes), an IPv4-mapped one, garbage, a CIDR, a zone.
  for (const char* bad :
       {"10.0.0.5", "host.example", "2001:db8::10/64", "2001:db8:::10", "2001:db8::1::2",
        "1:2:3:4:5:6:7:8:9", "fe80::1%eth0", "[2001:db8::10]", "2001:db8::g"}) {
    EXPECT_EQ(error_of({std::string("-public-ipv6=") + bad}),
              "invalid value \"" + std::string(bad) + "\" for flag -public-ipv6" + why)
        << bad;
  }
  // An IPv4-mapped address is IPv4 (no IPv6 peer reaches it; current flannel cannot parse its
  // mixed notation in a lease).
  for (const char* mapped : {"::ffff:10.0.0.5", "::FFFF:a00:5", "0:0:0:0:0:ffff:10.0.0.5"}) {
    EXPECT_EQ(error_of({std::string("-public-ipv6=") + mapped}),
              "invalid value \"" + std::string(mapped) +
                  "\" for flag -public-ipv6: an IPv4-mapped address, not an IPv6 one" +
                  why.substr(why.find(" (")))
        << mapped;
  }
  EXPECT_EQ(parse({"-public-ipv6=64:ff9b::10.0.0.5"}).public_ipv6, "64:ff9b::10.0.0.5");  // NAT64
  EXPECT_EQ(error_of({}, Env{{"FLANNELD_PUBLIC_IPV6", "10.0.0.5"}}),
            "invalid value \"10.0.0.5\" for FLANNELD_PUBLIC_IPV6" + why);
}

TEST(OptionsTest, HealthzValidation) {
  EXPECT_EQ(parse({"-healthz-ip=::1", "-healthz-port=0x1F90"}).healthz_port, 8080);
  EXPECT_EQ(error_of({"-healthz-port=70000"}),
            "invalid value \"70000\" for flag -healthz-port: must be a TCP port 1..65535, or 0 to "
            "disable the healthz server");
  EXPECT_EQ(error_of({"-healthz-port=x"}),
            "invalid value \"x\" for flag -healthz-port: parse error");
  EXPECT_EQ(error_of({"-healthz-ip=localhost"}),
            "invalid value \"localhost\" for flag -healthz-ip: not an IP address (use e.g. 0.0.0.0 "
            "for all interfaces, or 127.0.0.1)");
}

TEST(OptionsTest, IptablesResyncMustBePositive) {
  EXPECT_EQ(error_of({"-iptables-resync=0"}),
            "invalid value \"0\" for flag -iptables-resync: must be at least 1 second");
}

TEST(OptionsTest, RulesFlagsAndTheirEnvironment) {
  Options o = parse({"-enable-nftables", "-iptables-mode=legacy", "-ip-blackhole-route"},
                    {{"FLANNELD_IP_MASQ_FULLY_RANDOM_DISABLE", "true"}});
  EXPECT_TRUE(o.enable_nftables);
  EXPECT_EQ(o.iptables_mode, "legacy");
  EXPECT_TRUE(o.ip_blackhole_route);
  EXPECT_TRUE(o.ip_masq_fully_random_disable);
  EXPECT_EQ(parse({}, {{"FLANNELD_IPTABLES_MODE", "nft"}}).iptables_mode, "nft");
  EXPECT_TRUE(parse({}, {{"FLANNELD_ENABLE_NFTABLES", "1"}}).enable_nftables);
  EXPECT_EQ(error_of({"-iptables-mode=nftables"}),
            "invalid value \"nftables\" for flag -iptables-mode: must be \"auto\", \"legacy\" "
            "(iptables-legacy) or \"nft\" (iptables-nft)");
  EXPECT_EQ(error_of({}, {{"FLANNELD_IPTABLES_MODE", "x"}}),
            "invalid value \"x\" for FLANNELD_IPTABLES_MODE: must be \"auto\", \"legacy\" "
            "(iptables-legacy) or \"nft\" (iptables-nft)");
}

TEST(OptionsTest, EtcdEndpointsValidation) {
  EXPECT_EQ(error_of({"-etcd-endpoints=10.0.0.1:2379"}),
            "invalid value \"10.0.0.1:2379\" for flag -etcd-endpoints: endpoint \"10.0.0.1:2379\" "
            "does not start with http:// or https:// (expected a comma-separated list of URLs such "
            "as http://127.0.0.1:2379)");
  EXPECT_EQ(error_of({"-etcd-endpoints=http://a:2379,"}),
            "invalid value \"http://a:2379,\" for flag -etcd-endpoints: empty endpoint (expected a "
            "comma-separated list of URLs such as http://127.0.0.1:2379)");
  EXPECT_EQ(
      error_of({"-etcd-endpoints=http://:2379"}),
      "invalid value \"http://:2379\" for flag -etcd-endpoints: endpoint \"http://:2379\" has "
      "no host (expected a comma-separated list of URLs such as http://127.0.0.1:2379)");
}

TEST(OptionsTest, SplitEndpoints) {
  EXPECT_EQ(split_etcd_endpoints("http://a:1,https://b:2"),
            (std::vector<std::string>{"http://a:1", "https://b:2"}));
  EXPECT_EQ(split_etcd_endpoints("http://a:1"), (std::vector<std::string>{"http://a:1"}));
  EXPECT_EQ(split_etcd_endpoints(""), (std::vector<std::string>{""}));
  EXPECT_EQ(split_etcd_endpoints("a,,b"), (std::vector<std::string>{"a", "", "b"}));
  Options defaults = parse({});
  EXPECT_EQ(etcd_options(defaults).endpoints,
            (std::vector<std::string>{"http://127.0.0.1:4001", "http://127.0.0.1:2379"}));
}

TEST(OptionsTest, KubeSubnetMgrIsRejected) {
  EXPECT_EQ(parse({"-kube-subnet-mgr=false"}).kube_subnet_mgr, false);
  std::string err = error_of({"-kube-subnet-mgr"});
  EXPECT_EQ(err.rfind("invalid value \"true\" for flag -kube-subnet-mgr: the Kubernetes subnet "
                      "manager is not supported",
                      0),
            0u)
      << err;
}

TEST(OptionsTest, IfaceRegexMustCompile) {
  std::string err = error_of({"-iface-regex=eth(0"});
  EXPECT_EQ(
      err.rfind("invalid value \"eth(0\" for flag -iface-regex: not a valid regular expression", 0),
      0u)
      << err;
}

TEST(OptionsTest, StoreFlag) {
  EXPECT_EQ(parse({"-store=sqlite:/tmp/lab.db"}).store, "sqlite:/tmp/lab.db");
  EXPECT_EQ(parse({"-store=etcdv2"}).store, "etcdv2");
  EXPECT_EQ(parse({"-store=etcdv3"}).store, "etcdv3");
  std::string err = error_of({"-store=redis"});
  EXPECT_EQ(err.rfind("invalid value \"redis\" for flag -store: ", 0), 0u) << err;
}

TEST(OptionsTest, GlogFlagValidation) {
  EXPECT_EQ(error_of({"-vmodule=foo"}),
            "invalid value \"foo\" for flag -vmodule: syntax error: expect comma-separated list of "
            "filename=N");
  EXPECT_EQ(error_of({"-log_backtrace_at=main"}),
            "invalid value \"main\" for flag -log_backtrace_at: syntax error: expect file.cc:234");
  std::string err = error_of({"-stderrthreshold=LOUD"});
  EXPECT_EQ(err.rfind("invalid value \"LOUD\" for flag -stderrthreshold: unknown severity", 0), 0u)
      << err;
  EXPECT_EQ(parse({"-stderrthreshold=info"}).log.stderrthreshold, "info");
  EXPECT_EQ(parse({"-stderrthreshold=1"}).log.stderrthreshold, "1");
  EXPECT_EQ(parse({"-vmodule="}).log.vmodule, "");
}

TEST(OptionsTest, LeftoverArgumentsAreErrors) {
  EXPECT_EQ(error_of({"-ip-masq", "false"}),
            "unexpected argument \"false\" after the flags (a boolean flag takes its value with "
            "'=', e.g. -ip-masq=false)");
  EXPECT_EQ(error_of({"eth0"}),
            "unexpected argument \"eth0\" after the flags (flanneld takes no positional "
            "arguments; flag values need -name=value or -name value)");
  EXPECT_EQ(error_of({"--", "x"}),
            "unexpected argument \"x\" after the flags (flanneld takes no positional "
            "arguments; flag values need -name=value or -name value)");
  EXPECT_EQ(error_of({"-ip-masq", "--"}), "(no error)");
  // Control characters are escaped: the error stays one line (found by tests/fuzz/flags_fuzz.cc).
  EXPECT_EQ(error_of({"eth0\n"}).rfind("unexpected argument \"eth0\\n\" after the flags", 0), 0u);
}

TEST(OptionsTest, GoErrorsPassThrough) {
  EXPECT_EQ(error_of({"-foo"}), "flag provided but not defined: -foo");
  EXPECT_EQ(error_of({"-iface"}), "flag needs an argument: -iface");
  EXPECT_EQ(error_of({"-ip-masq=maybe"}),
            "invalid boolean value \"maybe\" for -ip-masq: parse error");
}

TEST(OptionsTest, FrontDoorHelp) {
  for (const char* h : {"-h", "-help", "--help"}) {
    FrontResult r = front({h});
    EXPECT_FALSE(r.opts.has_value());
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.err.rfind("Usage: /usr/bin/flanneld [OPTION]...\n", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("  -etcd-endpoints string\n    \ta comma-delimited list of etcd endpoints "
                         "(default \"http://127.0.0.1:4001,http://127.0.0.1:2379\")\n"),
              std::string::npos);
    EXPECT_NE(r.err.find("  -iptables-forward-rules\n    \tadd default accept rules to FORWARD "
                         "chain in iptables (default true)\n"),
              std::string::npos);
    EXPECT_NE(r.err.find("  -logtostderr\n    \tlog to standard error instead of files (default "
                         "true)\n"),
              std::string::npos);
  }
}

TEST(OptionsTest, FrontDoorVersion) {
  FrontResult r = front({"-version"});
  EXPECT_FALSE(r.opts.has_value());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err, std::string(FLANNEL_VERSION) + "\n");
}

TEST(OptionsTest, FrontDoorErrorExitsTwoWithHint) {
  FrontResult r = front({"-foo"});
  EXPECT_FALSE(r.opts.has_value());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "flag provided but not defined: -foo\n"
            "Run 'flanneld -help' for the list of flags.\n");
}

TEST(OptionsTest, FrontDoorRuns) {
  FrontResult r = front({"-iface=eth0"});
  ASSERT_TRUE(r.opts.has_value());
  EXPECT_EQ(r.exit_code, -1);  // untouched
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.opts->iface, (std::vector<std::string>{"eth0"}));
}

TEST(OptionsTest, ValidateHandBuiltOptions) {
  Options o;
  EXPECT_NO_THROW(validate_options(o));
  o.log.vmodule = std::string("x");  // assigning "x" trips GCC 12's -O3 -Wrestrict false positive
  EXPECT_THROW(validate_options(o), FlagError);
}

TEST(OptionsTest, VxlanTxChecksumFlagAndItsEnvironment) {
  EXPECT_EQ(parse({}).vxlan_tx_checksum, "auto");
  EXPECT_EQ(parse({"-vxlan-tx-checksum=off"}).vxlan_tx_checksum, "off");
  EXPECT_EQ(parse({"--vxlan-tx-checksum", "on"}).vxlan_tx_checksum, "on");
  EXPECT_EQ(parse({}, {{"FLANNELD_VXLAN_TX_CHECKSUM", "off"}}).vxlan_tx_checksum, "off");
  EXPECT_EQ(
      parse({"-vxlan-tx-checksum=on"}, {{"FLANNELD_VXLAN_TX_CHECKSUM", "off"}}).vxlan_tx_checksum,
      "on");  // the command line wins
  const std::string why =
      ": must be \"auto\" (off on kernels before 5.7, else left as the kernel sets it), \"on\" "
      "or \"off\"";
  EXPECT_EQ(error_of({"-vxlan-tx-checksum=false"}),
            "invalid value \"false\" for flag -vxlan-tx-checksum" + why);
  EXPECT_EQ(error_of({"-vxlan-tx-checksum="}),
            "invalid value \"\" for flag -vxlan-tx-checksum" + why);
  EXPECT_EQ(error_of({}, {{"FLANNELD_VXLAN_TX_CHECKSUM", "Off"}}),
            "invalid value \"Off\" for FLANNELD_VXLAN_TX_CHECKSUM" + why);
}

TEST(OptionsTest, IfaceCanReachMustBeIPv4) {
  EXPECT_EQ(parse({}).iface_can_reach, "");
  EXPECT_EQ(parse({"-iface-can-reach=10.251.0.2"}).iface_can_reach, "10.251.0.2");
  EXPECT_EQ(parse({}, {{"FLANNELD_IFACE_CAN_REACH", "8.8.8.8"}}).iface_can_reach, "8.8.8.8");
  const std::string why = ": not an IPv4 address (use a dotted quad such as 10.0.0.1)";
  EXPECT_EQ(error_of({"-iface-can-reach=eth0"}),
            "invalid value \"eth0\" for flag -iface-can-reach" + why);
  EXPECT_EQ(error_of({}, {{"FLANNELD_IFACE_CAN_REACH", "fd00::1"}}),
            "invalid value \"fd00::1\" for FLANNELD_IFACE_CAN_REACH" + why);
}

}  // namespace
}  // namespace flannel
