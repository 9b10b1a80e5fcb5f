// FlagSet: Go `flag` syntax, FLANNELD_* environment, precedence, errors with Go's wording.
#include "core/flags.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace flannel {
namespace {

using Args = std::vector<std::string>;
using Env = std::map<std::string, std::string>;

// A FlagSet with one flag of each type, as flanneld declares them.
struct Fixture {
  std::string prefix = "/coreos.com/network";
  std::string name;
  std::string password;
  bool masq = false;
  bool fwd = true;
  int port = 0;
  int margin = 60;
  std::vector<std::string> iface;
  FlagSet fs{"flanneld"};

  Fixture() {
    fs.add_string("etcd-prefix", &prefix, "etcd prefix");
    fs.add_string("public-ip", &name, "IP accessible by other nodes");
    fs.add_string("etcd-password", &password, "password");
    fs.mark_sensitive("etcd-password");
    fs.add_bool("ip-masq", &masq, "setup IP masquerade");
    fs.add_bool("iptables-forward-rules", &fwd, "add forward rules");
    fs.add_int("healthz-port", &port, "the port for healthz");
    fs.add_int("subnet-lease-renew-margin", &margin, "renew margin");
    fs.add_list("iface", &iface, "interface to use");
  }
};

std::string parse_error(Fixture& f, const Args& args) {
  try {
    f.fs.parse(args);
  } catch (const FlagError& e) { return e.what(); }
  return "(no error)";
}

std::string env_error(Fixture& f, const Env& env) {
  try {
    f.fs.apply_env(env, "FLANNELD");
  } catch (const FlagError& e) { return e.what(); }
  return "(no error)";
}

TEST(FlagsTest, DefaultsWhenNothingGiven) {
  Fixture f;
  auto r = f.fs.parse(Args{});
  EXPECT_FALSE(r.help);
  EXPECT_TRUE(r.args.empty());
  EXPECT_EQ(f.prefix, "/coreos.com/network");
  EXPECT_FALSE(f.masq);
  EXPECT_TRUE(f.fwd);
  EXPECT_EQ(f.port, 0);
  EXPECT_EQ(f.margin, 60);
  EXPECT_TRUE(f.iface.empty());
  EXPECT_FALSE(f.fs.is_set("etcd-prefix"));
  EXPECT_EQ(f.fs.source("etcd-prefix"), FlagSource::kDefault);
  EXPECT_TRUE(f.fs.settings().empty());
}

TEST(FlagsTest, OneAndTwoDashesWithEqualsOrSeparateValue) {
  for (const Args& args : {Args{"-etcd-prefix=/a"}, Args{"--etcd-prefix=/a"},
                           Args{"-etcd-prefix", "/a"}, Args{"--etcd-prefix", "/a"}}) {
    Fixture f;
    f.fs.parse(args);
    EXPECT_EQ(f.prefix, "/a") << args[0];
    EXPECT_EQ(f.fs.source("etcd-prefix"), FlagSource::kCommandLine);
  }
}

TEST(FlagsTest, ValueMayContainEqualsAndStartWithDash) {
  Fixture f;
  f.fs.parse(Args{"-etcd-prefix=/a=b", "-public-ip", "-x"});
  EXPECT_EQ(f.prefix, "/a=b");
  EXPECT_EQ(f.name, "-x");
}

TEST(FlagsTest, EmptyValueWithEquals) {
  Fixture f;
  f.fs.parse(Args{"-etcd-prefix="});
  EXPECT_EQ(f.prefix, "");
  EXPECT_TRUE(f.fs.is_set("etcd-prefix"));
}

TEST(FlagsTest, SeedCommandLine) {
  // From a packaged unit: ExecStart=... -etcd-endpoints=... -etcd-prefix=/jxdd/network --iface=eth0
  Fixture f;
  auto r = f.fs.parse(Args{"-etcd-prefix=/jxdd/network", "--iface=eth0", "--healthz-port=2401"});
  EXPECT_EQ(f.prefix, "/jxdd/network");
  EXPECT_EQ(f.iface, (std::vector<std::string>{"eth0"}));
  EXPECT_EQ(f.port, 2401);
  EXPECT_TRUE(r.args.empty());
}

TEST(FlagsTest, BareBoolSetsTrue) {
  Fixture f;
  f.fs.parse(Args{"-ip-masq"});
  EXPECT_TRUE(f.masq);
  Fixture g;
  g.fs.parse(Args{"--ip-masq"});
  EXPECT_TRUE(g.masq);
}

TEST(FlagsTest, BoolAcceptsExactlyGoValues) {
  for (std::string v : {"1", "t", "T", "true", "TRUE", "True"}) {
    Fixture f;
    f.fs.parse(Args{"-ip-masq=" + v});
    EXPECT_TRUE(f.masq) << v;
  }
  for (std::string v : {"0", "f", "F", "false", "FALSE", "False"}) {
    Fixture f;
    f.fs.parse(Args{"-iptables-forward-rules=" + v});
    EXPECT_FALSE(f.fwd) << v;
    EXPECT_TRUE(f.fs.is_set("iptables-forward-rules"));
  }
  for (std::string v : {"yes", "no", "tRUE", "", "2", " true"}) {
    Fixture f;
    EXPECT_EQ(parse_error(f, Args{"-ip-masq=" + v}),
              "invalid boolean value \"" + v + "\" for -ip-masq: parse error")
        << v;
  }
}

TEST(FlagsTest, BoolNeverConsumesNextArgument) {
  // "-ip-masq false": ip-masq becomes true and parsing stops at the positional "false".
  Fixture f;
  auto r = f.fs.parse(Args{"-ip-masq", "false", "-healthz-port=1"});
  EXPECT_TRUE(f.masq);
  EXPECT_EQ(r.args, (Args{"false", "-healthz-port=1"}));
  EXPECT_EQ(f.port, 0);
}

TEST(FlagsTest, IntBaseDetection) {
  struct Case {
    std::string text;
    int value;
  } cases[] = {{"8080", 8080},
               {"0x1F90", 8080},
               {"0X1f90", 8080},
               {"010", 8},
               {"0", 0},
               {"-5", -5},
               {"+7", 7},
               {"-0x10", -16},
               {"00", 0},
               {"2147483647", 2147483647},
               {"-2147483648", -2147483647 - 1}};
  for (const auto& c : cases) {
    Fixture f;
    f.fs.parse(Args{"-healthz-port=" + c.text});
    EXPECT_EQ(f.port, c.value) << c.text;
  }
}

TEST(FlagsTest, IntErrorsUseGoWording) {
  for (std::string v : {"x", "", "08", "0x", "1.5", "12a", " 1", "1_000", "0b1"}) {
    Fixture f;
    EXPECT_EQ(parse_error(f, Args{"-healthz-port=" + v}),
              "invalid value \"" + v + "\" for flag -healthz-port: parse error")
        << v;
  }
  Fixture f;
  EXPECT_EQ(parse_error(f, Args{"-healthz-port", "2147483648"}),
            "invalid value \"2147483648\" for flag -healthz-port: value out of range");
  Fixture g;
  EXPECT_EQ(parse_error(g, Args{"-healthz-port=99999999999999999999999"}),
            "invalid value \"99999999999999999999999\" for flag -healthz-port: value out of range");
}

TEST(FlagsTest, RepeatedListAppendsInOrder) {
  Fixture f;
  f.fs.parse(Args{"-iface=eth0", "--iface", "10.0.0.5", "-iface=eth1"});
  EXPECT_EQ(f.iface, (std::vector<std::string>{"eth0", "10.0.0.5", "eth1"}));
}

TEST(FlagsTest, RepeatedScalarLastWins) {
  Fixture f;
  f.fs.parse(Args{"-healthz-port=1", "-healthz-port=2"});
  EXPECT_EQ(f.port, 2);
}

TEST(FlagsTest, StopsAtFirstNonFlag) {
  Fixture f;
  auto r = f.fs.parse(Args{"-ip-masq", "extra", "-healthz-port=5"});
  EXPECT_EQ(r.args, (Args{"extra", "-healthz-port=5"}));
  EXPECT_EQ(f.port, 0);
}

TEST(FlagsTest, SingleDashIsPositionalAndKept) {
  Fixture f;
  auto r = f.fs.parse(Args{"-ip-masq", "-", "-healthz-port=5"});
  EXPECT_EQ(r.args, (Args{"-", "-healthz-port=5"}));
  EXPECT_EQ(f.port, 0);
}

TEST(FlagsTest, DoubleDashEndsFlagsAndIsDropped) {
  Fixture f;
  auto r = f.fs.parse(Args{"-ip-masq", "--", "-healthz-port=5"});
  EXPECT_EQ(r.args, (Args{"-healthz-port=5"}));
  EXPECT_EQ(f.port, 0);
  EXPECT_TRUE(f.masq);
}

TEST(FlagsTest, UnknownFlag) {
  Fixture f;
  EXPECT_EQ(parse_error(f, Args{"-foo"}), "flag provided but not defined: -foo");
  Fixture g;
  EXPECT_EQ(parse_error(g, Args{"--foo=bar"}), "flag provided but not defined: -foo");
  Fixture h;  // glog-only names are unknown to a FlagSet that does not declare them
  EXPECT_EQ(parse_error(h, Args{"--logtostderr=false"}),
            "flag provided but not defined: -logtostderr");
}

// Found by tests/fuzz/flags_fuzz.cc: a control character in an unknown or malformed argument
// is quoted, so the error stays one line.
TEST(FlagsTest, ControlCharactersInUnknownFlagsAreQuoted) {
  Fixture f;
  EXPECT_EQ(parse_error(f, Args{"-etcd-endpoint\n"}),
            "flag provided but not defined: -\"etcd-endpoint\\n\"");
  Fixture g;
  EXPECT_EQ(parse_error(g, Args{"-=\x01"}), "bad flag syntax: \"-=\\x01\"");
}

TEST(FlagsTest, MissingValue) {
  Fixture f;
  EXPECT_EQ(parse_error(f, Args{"-iface"}), "flag needs an argument: -iface");
  Fixture g;
  EXPECT_EQ(parse_error(g, Args{"-ip-masq", "--healthz-port"}),
            "flag needs an argument: -healthz-port");
}

TEST(FlagsTest, BadSyntax) {
  Fixture f;
  EXPECT_EQ(parse_error(f, Args{"---ip-masq"}), "bad flag syntax: ---ip-masq");
  Fixture g;
  EXPECT_EQ(parse_error(g, Args{"-=x"}), "bad flag syntax: -=x");
  Fixture h;
  EXPECT_EQ(parse_error(h, Args{"--=x"}), "bad flag syntax: --=x");
}

TEST(FlagsTest, HelpStopsParsing) {
  for (const Args& args : {Args{"-h"}, Args{"-help"}, Args{"--help"}, Args{"--h"},
                           Args{"-ip-masq", "-help", "-foo"}}) {
    Fixture f;
    auto r = f.fs.parse(args);
    EXPECT_TRUE(r.help) << args[0];
  }
}

TEST(FlagsTest, ValuesBeforeAnErrorStaySet) {
  Fixture f;
  EXPECT_EQ(parse_error(f, Args{"-healthz-port=7", "-nope"}),
            "flag provided but not defined: -nope");
  EXPECT_EQ(f.port, 7);
}

TEST(FlagsTest, EnvKeyNames) {
  EXPECT_EQ(FlagSet::env_key("FLANNELD", "etcd-endpoints"), "FLANNELD_ETCD_ENDPOINTS");
  EXPECT_EQ(FlagSet::env_key("FLANNELD", "ip-masq"), "FLANNELD_IP_MASQ");
  EXPECT_EQ(FlagSet::env_key("FLANNELD", "iface-regex"), "FLANNELD_IFACE_REGEX");
  EXPECT_EQ(FlagSet::env_key("FLANNELD", "log_backtrace_at"), "FLANNELD_LOG_BACKTRACE_AT");
  EXPECT_EQ(FlagSet::env_key("FLANNELD", "v"), "FLANNELD_V");
}

TEST(FlagsTest, EnvSetsUnsetFlags) {
  Fixture f;
  f.fs.parse(Args{});
  f.fs.apply_env(Env{{"FLANNELD_ETCD_PREFIX", "/kube-centos/network"},
                     {"FLANNELD_IP_MASQ", "true"},
                     {"FLANNELD_HEALTHZ_PORT", "0x1F90"},
                     {"FLANNELD_IFACE", "eth0,eth1"},
                     {"UNRELATED", "x"}},
                 "FLANNELD");
  EXPECT_EQ(f.prefix, "/kube-centos/network");
  EXPECT_TRUE(f.masq);
  EXPECT_EQ(f.port, 8080);
  // One value, commas not split.
  EXPECT_EQ(f.iface, (std::vector<std::string>{"eth0,eth1"}));
  EXPECT_EQ(f.fs.source("ip-masq"), FlagSource::kEnvironment);
  EXPECT_EQ(f.fs.source("public-ip"), FlagSource::kDefault);
}

TEST(FlagsTest, CommandLineWinsOverEnv) {
  Fixture f;
  f.fs.parse(Args{"-etcd-prefix=/cli", "-iface=eth9", "-ip-masq=false"});
  f.fs.apply_env(Env{{"FLANNELD_ETCD_PREFIX", "/env"},
                     {"FLANNELD_IFACE", "eth0"},
                     {"FLANNELD_IP_MASQ", "true"}},
                 "FLANNELD");
  EXPECT_EQ(f.prefix, "/cli");
  EXPECT_EQ(f.iface, (std::vector<std::string>{"eth9"}));
  EXPECT_FALSE(f.masq);
  EXPECT_EQ(f.fs.source("etcd-prefix"), FlagSource::kCommandLine);
}

TEST(FlagsTest, EmptyEnvIsIgnored) {
  Fixture f;
  f.fs.parse(Args{});
  f.fs.apply_env(Env{{"FLANNELD_ETCD_PREFIX", ""}, {"FLANNELD_IFACE", ""}}, "FLANNELD");
  EXPECT_EQ(f.prefix, "/coreos.com/network");
  EXPECT_TRUE(f.iface.empty());
  EXPECT_FALSE(f.fs.is_set("etcd-prefix"));
}

TEST(FlagsTest, EnvPrefixIsAParameter) {
  Fixture f;
  f.fs.apply_env(Env{{"FLANNELD_HEALTHZ_PORT", "1"}, {"OTHER_HEALTHZ_PORT", "2"}}, "OTHER");
  EXPECT_EQ(f.port, 2);
}

TEST(FlagsTest, InvalidEnvIsAnErrorNamingVariableAndValue) {
  Fixture f;
  EXPECT_EQ(env_error(f, Env{{"FLANNELD_HEALTHZ_PORT", "abc"}}),
            "invalid value \"abc\" for FLANNELD_HEALTHZ_PORT: parse error");
  Fixture g;
  EXPECT_EQ(env_error(g, Env{{"FLANNELD_IP_MASQ", "yes"}}),
            "invalid value \"yes\" for FLANNELD_IP_MASQ: parse error");
  // The same bad value is fine when the command line already set the flag.
  Fixture h;
  h.fs.parse(Args{"-ip-masq"});
  EXPECT_EQ(env_error(h, Env{{"FLANNELD_IP_MASQ", "yes"}}), "(no error)");
}

TEST(FlagsTest, NoEnvFlagIgnoresEnvironment) {
  Fixture f;
  f.fs.mark_no_env("ip-masq");
  f.fs.apply_env(Env{{"FLANNELD_IP_MASQ", "true"}}, "FLANNELD");
  EXPECT_FALSE(f.masq);
}

TEST(FlagsTest, SettingsRecordSourceAndRedactSecrets) {
  Fixture f;
  f.fs.parse(Args{"-iface=eth0", "-iface=eth1", "-etcd-password=hunter2"});
  f.fs.apply_env(Env{{"FLANNELD_HEALTHZ_PORT", "2401"}}, "FLANNELD");
  auto s = f.fs.settings();
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].name, "etcd-password");
  EXPECT_EQ(s[0].value, "<redacted>");
  EXPECT_EQ(s[0].source, FlagSource::kCommandLine);
  EXPECT_EQ(s[1].name, "healthz-port");
  EXPECT_EQ(s[1].value, "2401");
  EXPECT_EQ(s[1].source, FlagSource::kEnvironment);
  EXPECT_EQ(s[1].env_var, "FLANNELD_HEALTHZ_PORT");
  EXPECT_EQ(s[2].name, "iface");
  EXPECT_EQ(s[2].value, "eth0,eth1");
  EXPECT_EQ(to_string(FlagSource::kEnvironment), "environment");
}

TEST(FlagsTest, ValidatorRejectsWithGoWording) {
  std::string level = "ERROR";
  FlagSet fs("prog");
  fs.add_string("stderrthreshold", &level, "threshold", [](const std::string& v) {
    if (v != "INFO" && v != "ERROR") throw std::invalid_argument("unknown severity");
  });
  fs.parse(Args{"-stderrthreshold=INFO"});
  EXPECT_EQ(level, "INFO");
  try {
    fs.parse(Args{"-stderrthreshold=LOUD"});
    FAIL() << "no error";
  } catch (const FlagError& e) {
    EXPECT_STREQ(e.what(), "invalid value \"LOUD\" for flag -stderrthreshold: unknown severity");
  }
  EXPECT_EQ(level, "INFO");
}

TEST(FlagsTest, SetLikeGo) {
  Fixture f;
  f.fs.set("healthz-port", "9");
  EXPECT_EQ(f.port, 9);
  EXPECT_THROW(f.fs.set("nope", "1"), FlagError);
  EXPECT_THROW(f.fs.set("healthz-port", "x"), FlagError);
}

TEST(FlagsTest, DeclaringTwiceIsAProgrammingError) {
  Fixture f;
  int x = 0;
  EXPECT_THROW(f.fs.add_int("healthz-port", &x, "again"), std::logic_error);
}

TEST(FlagsTest, UsageFollowsGoLayout) {
  std::string prefix = "/coreos.com/network";
  std::string empty;
  bool masq = false;
  bool fwd = true;
  bool h = false;
  int port = 0;
  int margin = 60;
  std::vector<std::string> iface;
  FlagSet fs("/usr/bin/flanneld");
  fs.add_string("etcd-prefix", &prefix, "etcd prefix");
  fs.add_string("public-ip", &empty, "IP accessible by other nodes");
  fs.add_bool("ip-masq", &masq, "setup IP masquerade");
  fs.add_bool("iptables-forward-rules", &fwd, "add forward rules");
  fs.add_bool("x", &h, "one letter");
  fs.add_int("healthz-port", &port, "the port");
  fs.add_int("subnet-lease-renew-margin", &margin, "margin");
  fs.add_list("iface", &iface, "interface");
  EXPECT_EQ(fs.usage(),
            "Usage: /usr/bin/flanneld [OPTION]...\n"
            "  -etcd-prefix string\n    \tetcd prefix (default \"/coreos.com/network\")\n"
            "  -healthz-port int\n    \tthe port\n"
            "  -iface value\n    \tinterface\n"
            "  -ip-masq\n    \tsetup IP masquerade\n"
            "  -iptables-forward-rules\n    \tadd forward rules (default true)\n"
            "  -public-ip string\n    \tIP accessible by other nodes\n"
            "  -subnet-lease-renew-margin int\n    \tmargin (default 60)\n"
            "  -x\tone letter\n");
}

TEST(FlagsTest, ParseGoBoolAndInt) {
  EXPECT_TRUE(parse_go_bool("T"));
  EXPECT_FALSE(parse_go_bool("0"));
  EXPECT_THROW(parse_go_bool("on"), std::invalid_argument);
  EXPECT_EQ(parse_go_int("0x10"), 16);
  EXPECT_EQ(parse_go_int("017"), 15);
  EXPECT_THROW(parse_go_int("9x"), std::invalid_argument);
}

TEST(FlagsTest, EnvironmentMap) {
  const char* envp[] = {"A=1", "B=x=y", "EMPTY=", "NOEQUALS", "A=2", nullptr};
  auto env = environment_map(envp);
  EXPECT_EQ(env.at("A"), "1");
  EXPECT_EQ(env.at("B"), "x=y");
  EXPECT_EQ(env.at("EMPTY"), "");
  EXPECT_EQ(env.count("NOEQUALS"), 0u);
}

}  // namespace
}  // namespace flannel
