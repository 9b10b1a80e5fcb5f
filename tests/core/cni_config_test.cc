#include "core/cni_config.h"

#include <gtest/gtest.h>

namespace flannel::cni {
namespace {

using nlohmann::json;

const char* kEnv =
    "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/"
    "24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n";

FlannelEnv env(const std::string& text = kEnv) {
  return parse_flannel_env(text, "/run/flannel/subnet.env");
}

// The code of the Error `f` throws (0 if it does not throw); *msg gets what().
template <typename F>
int code_of(F f, std::string* msg = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (msg) *msg = e.what();
    return e.code();
  }
  return 0;
}

TEST(CniNetConf, Defaults) {
  NetConf c = parse_netconf(R"({"cniVersion":"1.0.0","name":"cbr0","type":"flannel"})");
  EXPECT_EQ(c.cni_version, "1.0.0");
  EXPECT_EQ(c.name, "cbr0");
  EXPECT_EQ(c.subnet_file, "/run/flannel/subnet.env");
  EXPECT_EQ(c.data_dir, "/var/lib/cni/flannel");
  EXPECT_EQ(c.delegate, json::object());
  EXPECT_TRUE(c.ipam.is_null());
  EXPECT_TRUE(c.runtime_config.is_null());
  EXPECT_TRUE(c.prev_result.is_null());
}

TEST(CniNetConf, Overrides) {
  NetConf c = parse_netconf(R"({"cniVersion":"0.3.1","name":"k8s","type":"flannel",
      "subnetFile":"/opt/flannel/subnet.env","dataDir":"/tmp/x","delegate":{"bridge":"mynet0"},
      "ipam":{"type":"host-local","dataDir":"/tmp/ipam"},"runtimeConfig":{"portMappings":[]},
      "prevResult":{"ips":[]},"unknownKey":1})");
  EXPECT_EQ(c.cni_version, "0.3.1");
  EXPECT_EQ(c.subnet_file, "/opt/flannel/subnet.env");
  EXPECT_EQ(c.data_dir, "/tmp/x");
  EXPECT_EQ(c.delegate, json({{"bridge", "mynet0"}}));
  EXPECT_EQ(c.ipam["dataDir"], "/tmp/ipam");
  EXPECT_EQ(c.runtime_config, json({{"portMappings", json::array()}}));
  EXPECT_EQ(c.prev_result, json({{"ips", json::array()}}));
}

TEST(CniNetConf, EveryVersionAcceptedAndOthersRefused) {
  for (const char* v : {"0.3.0", "0.3.1", "0.4.0", "1.0.0"})
    EXPECT_EQ(parse_netconf(std::string(R"({"cniVersion":")") + v + R"(","name":"n"})").cni_version,
              v);
  std::string msg;
  EXPECT_EQ(code_of([] { parse_netconf(R"({"cniVersion":"0.2.0","name":"n"})"); }, &msg),
            kIncompatibleVersion);
  EXPECT_NE(msg.find("\"0.2.0\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("0.3.1, 0.4.0, 1.0.0"), std::string::npos) << msg;
  EXPECT_EQ(code_of([] { parse_netconf(R"({"cniVersion":"1.1.0","name":"n"})"); }),
            kIncompatibleVersion);
  EXPECT_EQ(code_of([] { parse_netconf(R"({"name":"n"})"); }, &msg), kIncompatibleVersion);
  EXPECT_NE(msg.find("(missing)"), std::string::npos) << msg;
  EXPECT_EQ(code_of([] { parse_netconf(R"({"cniVersion":1,"name":"n"})"); }), kIncompatibleVersion);
}

TEST(CniNetConf, BadJsonIsDecodeFailure) {
  std::string msg;
  EXPECT_EQ(code_of([] { parse_netconf(R"({"cniVersion":"1.0.0",)"); }, &msg), kDecodeFailure);
  EXPECT_NE(msg.find("not JSON"), std::string::npos) << msg;
  EXPECT_NE(msg.find("byte"), std::string::npos) << msg;
  EXPECT_EQ(code_of([] { parse_netconf(""); }), kDecodeFailure);
  EXPECT_EQ(code_of([] { parse_netconf("[1,2]"); }, &msg), kDecodeFailure);
  EXPECT_NE(msg.find("an array"), std::string::npos) << msg;
}

TEST(CniNetConf, WrongTypesNameKeyAndValue) {
  struct Case {
    const char* json;
    const char* key;
    const char* value;
  } cases[] = {
      {R"({"cniVersion":"1.0.0","name":"n","subnetFile":5})", "\"subnetFile\"", "5"},
      {R"({"cniVersion":"1.0.0","name":"n","dataDir":true})", "\"dataDir\"", "true"},
      {R"({"cniVersion":"1.0.0","name":"n","subnetFile":"run/x"})", "\"subnetFile\"", "\"run/x\""},
      {R"({"cniVersion":"1.0.0","name":"n","dataDir":""})", "\"dataDir\"", "\"\""},
      {R"({"cniVersion":"1.0.0","name":"n","delegate":"bridge"})", "\"delegate\"", "\"bridge\""},
      {R"({"cniVersion":"1.0.0","name":"n","delegate":{"type":7}})", "\"delegate.type\"", "7"},
      {R"({"cniVersion":"1.0.0","name":"n","delegate":{"type":"../bin/sh"}})", "\"delegate.type\"",
       "../bin/sh"},
      {R"({"cniVersion":"1.0.0","name":"n","delegate":{"name":"x"}})", "\"name\"", "\"x\""},
      {R"({"cniVersion":"1.0.0","name":"n","delegate":{"ipam":{}}})", "\"ipam\"", "top-level"},
      {R"({"cniVersion":"1.0.0","name":"n","ipam":[]})", "\"ipam\"", "[]"},
      {R"({"cniVersion":"1.0.0","name":"n","ipam":{"type":1}})", "\"ipam.type\"", "1"},
      {R"({"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[]}})", "\"ipam.ranges\"", "[]"},
      {R"({"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.1.0.0/24"}})", "\"ipam.subnet\"",
       "10.1.0.0/24"},
      {R"({"cniVersion":"1.0.0","name":"n","ipam":{"routes":{}}})", "\"ipam.routes\"", "{}"},
      {R"({"cniVersion":"1.0.0","name":"n","ipam":{"routes":[{"gw":"1.2.3.4"}]}})",
       "\"ipam.routes\"", "gw"},
      {R"({"cniVersion":"1.0.0","name":"n","ipam":{"routes":[{"dst":"nope"}]}})",
       "\"ipam.routes[].dst\"", "\"nope\""},
      {R"({"cniVersion":"1.0.0","name":"n","runtimeConfig":3})", "\"runtimeConfig\"", "3"},
      {R"({"cniVersion":"1.0.0","name":"n","prevResult":"x"})", "\"prevResult\"", "\"x\""},
      {R"({"cniVersion":"1.0.0","name":5})", "\"name\"", "5"},
      {R"({"cniVersion":"1.0.0","name":"n","type":[]})", "\"type\"", "[]"},
      {R"({"cniVersion":"1.0.0"})", "\"name\"", "missing"},
  };
  for (const auto& c : cases) {
    std::string msg;
    EXPECT_EQ(code_of([&] { parse_netconf(c.json); }, &msg), kInvalidConfig) << c.json;
    EXPECT_NE(msg.find(c.key), std::string::npos) << c.json << " -> " << msg;
    EXPECT_NE(msg.find(c.value), std::string::npos) << c.json << " -> " << msg;
  }
}

TEST(CniFlannelEnv, ParsesWhatFlanneldWrites) {
  FlannelEnv e = env();
  EXPECT_EQ(e.network->str(), "10.5.0.0/16");
  EXPECT_EQ(e.subnet->str(), "10.5.34.0/24");  // host bits cleared, as Go's ParseCIDR
  EXPECT_EQ(e.mtu, 1450);
  EXPECT_FALSE(e.ipmasq);
  EXPECT_FALSE(e.ip6_network);
  EXPECT_TRUE(env("FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/"
                  "24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n")
                  .ipmasq);
  FlannelEnv d = env(
      "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/24\nFLANNEL_IPV6_NETWORK=fc00::/48\n"
      "FLANNEL_IPV6_SUBNET=fc00:0:0:22::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n");
  EXPECT_EQ(d.ip6_subnet->str(), "fc00:0:0:22::/64");
  EXPECT_EQ(d.ip6_network->str(), "fc00::/48");
}

TEST(CniFlannelEnv, MissingKeysAreNamed) {
  std::string msg;
  EXPECT_EQ(
      code_of([] { env("FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/24\n"); }, &msg),
      kInvalidConfig);
  EXPECT_NE(msg.find("/run/flannel/subnet.env is missing FLANNEL_MTU, FLANNEL_IPMASQ"),
            std::string::npos)
      << msg;
  EXPECT_EQ(code_of([] { env(""); }, &msg), kInvalidConfig);
  EXPECT_NE(msg.find("missing FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ"),
            std::string::npos)
      << msg;
  EXPECT_EQ(
      code_of([] { env("FLANNEL_SUBNET=10.5.34.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"); },
              &msg),
      kInvalidConfig);
  EXPECT_NE(msg.find("missing FLANNEL_NETWORK"), std::string::npos) << msg;
  EXPECT_EQ(code_of(
                [] {
                  env("FLANNEL_NETWORK=10.5.0.0/"
                      "16\nFLANNEL_SUBNET=\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n");
                },
                &msg),
            kInvalidConfig);
  EXPECT_NE(msg.find("missing FLANNEL_SUBNET"), std::string::npos) << msg;
}

TEST(CniFlannelEnv, BadValuesAreNamed) {
  struct Case {
    const char* replace;
    const char* with;
    const char* expect;
  } cases[] = {
      {"FLANNEL_MTU=1450", "FLANNEL_MTU=abc", "FLANNEL_MTU=abc is not an MTU"},
      {"FLANNEL_MTU=1450", "FLANNEL_MTU=1450x", "FLANNEL_MTU=1450x"},
      {"FLANNEL_MTU=1450", "FLANNEL_MTU=20", "FLANNEL_MTU=20"},
      {"FLANNEL_IPMASQ=false", "FLANNEL_IPMASQ=yes", "FLANNEL_IPMASQ=yes is not true or false"},
      {"FLANNEL_SUBNET=10.5.34.1/24", "FLANNEL_SUBNET=10.5.34.1",
       "FLANNEL_SUBNET=10.5.34.1 is not"},
      {"FLANNEL_NETWORK=10.5.0.0/16", "FLANNEL_NETWORK=fc00::/48", "FLANNEL_NETWORK=fc00::/48"},
      {"FLANNEL_MTU=1450", "FLANNEL_MTU=1450\nFLANNEL_IPV6_SUBNET=xyz", "FLANNEL_IPV6_SUBNET=xyz"},
      {"FLANNEL_MTU=1450", "FLANNEL_MTU=1450\nthis is not a line", "not a subnet.env file"},
  };
  for (const auto& c : cases) {
    std::string text = kEnv;
    text.replace(text.find(c.replace), std::string(c.replace).size(), c.with);
    std::string msg;
    EXPECT_EQ(code_of([&] { env(text); }, &msg), kInvalidConfig) << text;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
    EXPECT_NE(msg.find("/run/flannel/subnet.env"), std::string::npos) << msg;
  }
}

TEST(CniDelegate, EveryDefault) {
  NetConf c = parse_netconf(R"({"cniVersion":"1.0.0","name":"cbr0","type":"flannel"})");
  json d = delegate_config(c, env());
  EXPECT_EQ(d, json::parse(R"({
      "cniVersion":"1.0.0","name":"cbr0","type":"bridge","ipMasq":true,"mtu":1450,"isGateway":true,
      "ipam":{"type":"host-local","ranges":[[{"subnet":"10.5.34.0/24"}]],"routes":[{"dst":"10.5.0.0/16","gw":"10.5.34.1"}]}})"))
      << d.dump();
  // flanneld masquerading: the bridge must not.
  d = delegate_config(c, env("FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/"
                             "24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n"));
  EXPECT_EQ(d["ipMasq"], false);
  EXPECT_EQ(d["mtu"], 1500);
}

TEST(CniDelegate, EveryOverrideWins) {
  NetConf c = parse_netconf(R"({"cniVersion":"0.4.0","name":"k8s","type":"flannel",
      "delegate":{"ipMasq":false,"mtu":1400,"isGateway":false,"bridge":"mynet0","hairpinMode":true,
                  "isDefaultGateway":true},
      "ipam":{"type":"my-ipam","dataDir":"/tmp/ipam","routes":[{"dst":"192.168.0.0/16","gw":"10.5.34.254"}]},
      "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}})");
  json d = delegate_config(c, env());
  EXPECT_EQ(d["ipMasq"], false);
  EXPECT_EQ(d["mtu"], 1400);
  EXPECT_EQ(d["isGateway"], false);
  EXPECT_EQ(d["bridge"], "mynet0");
  EXPECT_EQ(d["hairpinMode"], true);
  EXPECT_EQ(d["isDefaultGateway"], true);
  EXPECT_EQ(d["cniVersion"], "0.4.0");
  EXPECT_EQ(d["name"], "k8s");
  EXPECT_EQ(d["type"], "bridge");
  EXPECT_EQ(d["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
  EXPECT_EQ(d["ipam"], json::parse(R"({"type":"my-ipam","dataDir":"/tmp/ipam",
      "ranges":[[{"subnet":"10.5.34.0/24"}]],
      "routes":[{"dst":"192.168.0.0/16","gw":"10.5.34.254"},{"dst":"10.5.0.0/16"}]})"))
      << d["ipam"].dump();
}

TEST(CniDelegate, OtherTypeGetsNoIsGatewayAndDualStackRanges) {
  NetConf c = parse_netconf(
      R"({"cniVersion":"1.0.0","name":"n","delegate":{"type":"ipvlan","master":"eth0"}})");
  json d = delegate_config(
      c, env("FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/"
             "24\nFLANNEL_IPV6_NETWORK=fc00::/48\n"
             "FLANNEL_IPV6_SUBNET=fc00:0:0:22::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"));
  EXPECT_EQ(d["type"], "ipvlan");
  EXPECT_FALSE(d.contains("isGateway"));
  EXPECT_EQ(d["master"], "eth0");
  EXPECT_EQ(d["ipam"]["ranges"],
            json::parse(R"([[{"subnet":"10.5.34.0/24"}],[{"subnet":"fc00:0:0:22::/64"}]])"));
  EXPECT_EQ(d["ipam"]["routes"], json::parse(R"([{"dst":"10.5.0.0/16"},{"dst":"fc00::/48"}])"));
}

TEST(CniDelegate, GatewayBridgeRoutesCarryTheBridgeAddressForBothFamilies) {
  NetConf c =
      parse_netconf(R"({"cniVersion":"1.0.0","name":"n","ipam":{"routes":[{"dst":"0.0.0.0/0"}]}})");
  json d = delegate_config(
      c, env("FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/"
             "24\nFLANNEL_IPV6_NETWORK=fc00::/48\n"
             "FLANNEL_IPV6_SUBNET=fc00:0:0:22::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"));
  EXPECT_EQ(d["ipam"]["routes"],
            json::parse(R"([{"dst":"0.0.0.0/0"},{"dst":"10.5.0.0/16","gw":"10.5.34.1"},
      {"dst":"fc00::/48","gw":"fc00:0:0:22::1"}])"))
      << d["ipam"].dump();
  EXPECT_EQ(d["ipMasq"], false);
}

TEST(CniDelegate, CheckConfigAddsPrevResult) {
  NetConf c = parse_netconf(
      R"({"cniVersion":"1.0.0","name":"n","prevResult":{"ips":[{"address":"10.5.34.2/24"}]}})");
  json saved = delegate_config(c, env());
  json d = check_config(saved.dump(), c);
  EXPECT_EQ(d["prevResult"]["ips"][0]["address"], "10.5.34.2/24");
  EXPECT_EQ(d["type"], "bridge");
  NetConf no_prev = parse_netconf(R"({"cniVersion":"1.0.0","name":"n"})");
  std::string msg;
  EXPECT_EQ(code_of([&] { check_config(saved.dump(), no_prev); }, &msg), kInvalidConfig);
  EXPECT_NE(msg.find("prevResult"), std::string::npos);
  EXPECT_EQ(code_of([&] { check_config("garbage", c); }), kDecodeFailure);
}

const char* kBridgeResult =
    R"({"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"aa:bb:cc:dd:ee:ff"},
    {"name":"eth0","mac":"aa:bb:cc:dd:ee:01","sandbox":"/var/run/netns/p"}],
    "ips":[{"address":"10.5.34.2/24","gateway":"10.5.34.1","interface":1},
           {"address":"fc00:0:0:22::2/64","interface":1}],
    "routes":[{"dst":"10.5.0.0/16"}],"dns":{}})";

TEST(CniResult, ShapePerVersion) {
  json in = json::parse(kBridgeResult);
  for (const char* v : {"0.3.0", "0.3.1", "0.4.0"}) {
    json r = convert_result(in, v);
    EXPECT_EQ(r["cniVersion"], v);
    EXPECT_EQ(r["ips"][0]["version"], "4") << v;
    EXPECT_EQ(r["ips"][1]["version"], "6") << v;
    EXPECT_EQ(r["ips"][0]["address"], "10.5.34.2/24");
    EXPECT_EQ(r["ips"][0]["interface"], 1);
    EXPECT_EQ(r["interfaces"], in["interfaces"]);
    EXPECT_EQ(r["routes"], in["routes"]);
  }
  json old = convert_result(in, "0.3.1");
  json r = convert_result(old, "1.0.0");  // and back: 1.0.0 has no "version"
  EXPECT_EQ(r["cniVersion"], "1.0.0");
  EXPECT_FALSE(r["ips"][0].contains("version"));
  EXPECT_FALSE(r["ips"][1].contains("version"));
  EXPECT_EQ(r, in);
}

TEST(CniResult, NotAResultIsAnError) {
  EXPECT_EQ(code_of([] { convert_result(json::array(), "1.0.0"); }), kInternal);
  EXPECT_EQ(code_of([] { convert_result(json::parse(R"({"ips":{}})"), "1.0.0"); }), kInternal);
  EXPECT_EQ(
      code_of([] { convert_result(json::parse(R"({"ips":[{"gateway":"1.2.3.4"}]})"), "1.0.0"); }),
      kInternal);
  EXPECT_EQ(convert_result(json::parse(R"({"cniVersion":"1.0.0"})"), "0.3.1"),
            json({{"cniVersion", "0.3.1"}}));
}

TEST(CniOutput, ErrorAndVersionJson) {
  EXPECT_EQ(json::parse(error_json(Error(kTryAgainLater, "no subnet.env"), "0.3.1")),
            json::parse(R"({"cniVersion":"0.3.1","code":11,"msg":"no subnet.env"})"));
  EXPECT_EQ(json::parse(error_json(Error(kInvalidConfig, "m", "d"), "")),
            json::parse(R"({"cniVersion":"1.0.0","code":7,"msg":"m","details":"d"})"));
  EXPECT_EQ(json::parse(error_json(Error(kIOFailure, "m"), "9.9.9"))["cniVersion"], "1.0.0");
  EXPECT_EQ(json::parse(version_json("0.4.0")),
            json::parse(
                R"({"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]})"));
  EXPECT_EQ(json::parse(version_json(""))["cniVersion"], "1.0.0");
}

TEST(CniOutput, ContainerIds) {
  EXPECT_TRUE(valid_container_id("3f9a0c1b2d"));
  EXPECT_TRUE(valid_container_id("pod_1.a-b"));
  EXPECT_FALSE(valid_container_id(""));
  EXPECT_FALSE(valid_container_id("../etc/passwd"));
  EXPECT_FALSE(valid_container_id(".hidden"));
  EXPECT_FALSE(valid_container_id("a/b"));
  EXPECT_FALSE(valid_container_id("a b"));
}

TEST(CniConflist, DefaultAndOptions) {
  json d = json::parse(render_conflist({}));
  EXPECT_EQ(d, json::parse(R"({"name":"cbr0","cniVersion":"1.0.0","plugins":[
      {"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}},
      {"type":"portmap","capabilities":{"portMappings":true}}]})"));
  ConflistOptions o;
  o.name = "k8s";
  o.cni_version = "0.3.1";
  o.subnet_file = "/opt/flannel/subnet.env";
  o.data_dir = "/var/lib/flannel-cni";
  json j = json::parse(render_conflist(o));
  EXPECT_EQ(j["name"], "k8s");
  EXPECT_EQ(j["cniVersion"], "0.3.1");
  EXPECT_EQ(j["plugins"][0]["subnetFile"], "/opt/flannel/subnet.env");
  EXPECT_EQ(j["plugins"][0]["dataDir"], "/var/lib/flannel-cni");
  // What the plugin makes of it, as a runtime hands it over (name and cniVersion injected).
  json plugin = j["plugins"][0];
  plugin["name"] = j["name"];
  plugin["cniVersion"] = j["cniVersion"];
  NetConf c = parse_netconf(plugin.dump());
  EXPECT_EQ(c.subnet_file, "/opt/flannel/subnet.env");
  EXPECT_EQ(delegate_config(c, env())["isDefaultGateway"], true);
  o.cni_version = "0.2.0";
  EXPECT_EQ(code_of([&] { render_conflist(o); }), kInvalidConfig);
  o = {};
  o.subnet_file = "subnet.env";
  EXPECT_EQ(code_of([&] { render_conflist(o); }), kInvalidConfig);
  o = {};
  o.name = "";
  EXPECT_EQ(code_of([&] { render_conflist(o); }), kInvalidConfig);
}

}  // namespace
}  // namespace flannel::cni
