#include "core/config.h"

#include <gtest/gtest.h>
#include "tests/core/config_error.h"

namespace flannel {
namespace {

std::string range(const Config& c) {
  return std::to_string(c.subnet_len) + " " + c.subnet_min.str() + " " + c.subnet_max.str();
}

std::string cfg(const std::string& network, const std::string& extra = "") {
  return "{\"Network\":\"" + network + "\"" + extra + "}";
}

TEST(Config, DefaultsMatchV011Examples) {
  EXPECT_EQ(range(parse_config(cfg("10.5.0.0/16"))), "24 10.5.1.0 10.5.255.0");
  EXPECT_EQ(range(parse_config(cfg("10.5.0.0/22"))), "24 10.5.1.0 10.5.3.0");
  EXPECT_EQ(range(parse_config(cfg("10.5.0.0/23"))), "25 10.5.0.128 10.5.1.128");
  EXPECT_EQ(range(parse_config(cfg("10.5.0.0/26"))), "28 10.5.0.16 10.5.0.48");
  EXPECT_EQ(range(parse_config(cfg("10.5.0.0/28"))), "30 10.5.0.4 10.5.0.12");
  EXPECT_EQ(range(parse_config(cfg("10.5.0.0/16", ",\"SubnetLen\":30"))),
            "30 10.5.0.4 10.5.255.252");
  EXPECT_EQ(range(parse_config(cfg("0.0.0.0/0"))), "24 0.0.1.0 255.255.255.0");
  EXPECT_EQ(range(parse_config(cfg("10.5.0.0/16", ",\"SubnetLen\":0"))), "24 10.5.1.0 10.5.255.0");
  EXPECT_EQ(range(parse_config(cfg("10.5.0.0/16", ",\"SubnetLen\":null"))),
            "24 10.5.1.0 10.5.255.0");
}

TEST(Config, DecodesKeysCaseInsensitively) {
  Config c = parse_config(
      R"({"network":"10.5.1.7/16","SUBNETLEN":20,"subnetMin":"10.5.16.0","SubnetMAX":"10.5.32.0",)"
      R"("unknown":[1,2],"backend":{ "type" : "VXLAN", "VNI": 4 }})");
  EXPECT_EQ(c.network.str(), "10.5.0.0/16");  // host bits cleared
  EXPECT_EQ(range(c), "20 10.5.16.0 10.5.32.0");
  EXPECT_EQ(c.backend_type, "vxlan");
  EXPECT_EQ(c.backend_json, R"({"type":"VXLAN","VNI":4})");
  EXPECT_EQ(
      c.str(),
      "Network=10.5.0.0/16 SubnetLen=20 SubnetMin=10.5.16.0 SubnetMax=10.5.32.0 Backend=vxlan");
  EXPECT_EQ(subnet_count(c), 2u);  // 10.5.16.0 and 10.5.32.0
}

TEST(Config, BackendDefaultsToUdp) {
  Config c = parse_config(cfg("10.5.0.0/16"));
  EXPECT_EQ(c.backend_type, "udp");
  EXPECT_EQ(c.backend_json, "");
  EXPECT_EQ(subnet_count(c), 255u);
  EXPECT_EQ(parse_config(cfg("10.5.0.0/16", R"(,"Backend":{"Type":"host-gw"})")).backend_type,
            "host-gw");
}

TEST(Config, EnableNFTablesIsABoolDefaultingToFalse) {
  Config c = parse_config(cfg("10.5.0.0/16"));
  EXPECT_FALSE(c.enable_nftables);
  EXPECT_EQ(c.str().find("NFTables"), std::string::npos) << c.str();  // v0.11's log line
  c = parse_config(cfg("10.5.0.0/16", R"(,"enableNFTables":true)"));
  EXPECT_TRUE(c.enable_nftables);
  EXPECT_NE(c.str().find(" EnableNFTables=true"), std::string::npos) << c.str();
  EXPECT_FALSE(parse_config(cfg("10.5.0.0/16", R"(,"EnableNFTables":null)")).enable_nftables);
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"EnableNFTables":"yes")")),
            "EnableNFTables must be true or false, got \"yes\"");
}

TEST(Config, ExplicitMinAtNetworkAddressAllowed) {
  Config c = parse_config(cfg("10.5.0.0/16", R"(,"SubnetMin":"10.5.0.0")"));
  EXPECT_EQ(c.subnet_min.str(), "10.5.0.0");
  EXPECT_EQ(subnet_count(c), 256u);
  // Explicit 0.0.0.0 is taken literally, not as "unset" (v0.11 weakness).
  EXPECT_EQ(parse_config(cfg("0.0.0.0/8", R"(,"SubnetMin":"0.0.0.0")")).subnet_min.str(),
            "0.0.0.0");
  EXPECT_EQ(error_of(cfg("10.0.0.0/8", R"(,"SubnetMin":"0.0.0.0")")),
            "SubnetMin is not in the range of the Network (SubnetMin 0.0.0.0, Network 10.0.0.0/8)");
}

TEST(Config, V011ErrorTextsExtendedWithValues) {
  EXPECT_EQ(error_of(cfg("10.0.0.0/16", ",\"SubnetLen\":31")),
            "SubnetLen must be less than /31 (got SubnetLen 31 for Network 10.0.0.0/16)");
  EXPECT_EQ(error_of(cfg("10.0.0.0/16", ",\"SubnetLen\":99999999999")),
            "SubnetLen must be less than /31 (got SubnetLen 99999999999 for Network 10.0.0.0/16)");
  EXPECT_EQ(error_of(cfg("10.0.0.0/16", ",\"SubnetLen\":17")),
            "Network must be able to accommodate at least four subnets (SubnetLen 17 with Network "
            "10.0.0.0/16; SubnetLen must be at least 18)");
  EXPECT_EQ(error_of(cfg("10.0.0.0/16", ",\"SubnetLen\":8"))
                .rfind("Network must be able to accommodate", 0),
            0u);
  EXPECT_EQ(error_of(cfg("10.0.0.0/29")),
            "Network is too small. Minimum useful network prefix is /28 (got Network 10.0.0.0/29)");
  EXPECT_EQ(error_of(cfg("10.0.0.0/29", ",\"SubnetLen\":30"))
                .rfind("Network must be able to accommodate", 0),
            0u);
  EXPECT_EQ(
      error_of(cfg("10.5.0.0/16", R"(,"SubnetMin":"10.6.0.0")")),
      "SubnetMin is not in the range of the Network (SubnetMin 10.6.0.0, Network 10.5.0.0/16)");
  EXPECT_EQ(
      error_of(cfg("10.5.0.0/16", R"(,"SubnetMax":"10.4.255.0")")),
      "SubnetMax is not in the range of the Network (SubnetMax 10.4.255.0, Network 10.5.0.0/16)");
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"SubnetMin":"10.5.1.5")")),
            "SubnetMin is not on a SubnetLen boundary: 10.5.1.5 (SubnetLen 24; e.g. 10.5.1.0)");
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"SubnetLen":20,"SubnetMax":"10.5.17.0")")),
            "SubnetMax is not on a SubnetLen boundary: 10.5.17.0 (SubnetLen 20; e.g. 10.5.16.0)");
}

TEST(Config, RejectsWhatV011GotWrong) {
  EXPECT_EQ(error_of("{}"),
            "Network is missing from the config; expected e.g. {\"Network\":\"10.5.0.0/16\"}");
  EXPECT_EQ(error_of(R"({"Backend":{"Type":"vxlan"}})").rfind("Network is missing", 0), 0u);
  EXPECT_NE(error_of(cfg("fd00::/8")).find("IPv6"), std::string::npos);
  EXPECT_NE(error_of(cfg("10.5.0.0/16", R"(,"SubnetMin":"fd00::")"))
                .find("SubnetMin \"fd00::\" is an IPv6"),
            std::string::npos);
  EXPECT_NE(
      error_of(cfg("10.5.0.0/16", R"(,"SubnetMax":"::1")")).find("SubnetMax \"::1\" is an IPv6"),
      std::string::npos);
  EXPECT_EQ(
      error_of(cfg("10.5.0.0/16", R"(,"SubnetMin":"10.5.9.0","SubnetMax":"10.5.3.0")")),
      "SubnetMin 10.5.9.0 is greater than SubnetMax 10.5.3.0: no subnet could ever be allocated "
      "in Network 10.5.0.0/16");
}

TEST(Config, RejectsBadTypes) {
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"SubnetLen":"24")")),
            "SubnetLen must be a non-negative integer like 24, got \"24\"");
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"SubnetLen":24.5)")),
            "SubnetLen must be a non-negative integer like 24, got 24.5");
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"SubnetLen":24.0)")),
            "SubnetLen must be a non-negative integer like 24, got 24.0");
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"SubnetLen":-1)")),
            "SubnetLen must be a non-negative integer like 24, got -1");
  EXPECT_EQ(error_of(R"({"Network":null})"),
            "Network must be a CIDR string like \"10.5.0.0/16\", got null");
  EXPECT_EQ(error_of(R"({"Network":16})"),
            "Network must be a CIDR string like \"10.5.0.0/16\", got 16");
  EXPECT_EQ(error_of(cfg("10.5.0.0")),
            "invalid CIDR address for Network: \"10.5.0.0\" (expected e.g. \"10.5.0.0/16\")");
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"SubnetMin":null)"))
                .rfind("Invalid IP address format for SubnetMin: null", 0),
            0u);
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"SubnetMax":"10.5.3")"))
                .rfind("Invalid IP address format for SubnetMax: \"10.5.3\"", 0),
            0u);
}

TEST(Config, BackendErrors) {
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"Backend":"vxlan")")),
            "error decoding Backend property of config: expected an object like "
            "{\"Type\":\"vxlan\"}, got \"vxlan\"");
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"Backend":null)"))
                .rfind("error decoding Backend property of config", 0),
            0u);
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"Backend":{"Type":5})")),
            "error decoding Backend property of config: Type must be a string, got 5");
  EXPECT_EQ(error_of(cfg("10.5.0.0/16", R"(,"Backend":{})"))
                .rfind("Backend Type is missing or empty in {}", 0),
            0u);
}

TEST(Config, BadJsonReportsPosition) {
  std::string e = error_of(R"({"Network":"10.5.0.0/16",})");
  EXPECT_EQ(e.rfind("invalid network config JSON: ", 0), 0u) << e;
  EXPECT_NE(e.find("(at byte 26)"), std::string::npos) << e;
  EXPECT_NE(error_of("").find("invalid network config JSON"), std::string::npos);
  EXPECT_EQ(error_of("[1]"),
            "network config must be a JSON object like {\"Network\":\"10.5.0.0/16\"}, got array");
  EXPECT_THROW(parse_config("nope"), ParseError);  // ConfigError is a ParseError
  // A number too large for a double is nlohmann's out_of_range, not a parse_error: it must still
  // be a ConfigError (found by tests/fuzz/config_fuzz.cc; it escaped as another exception).
  EXPECT_EQ(error_of(R"({"Network":"10.0.0.0/8","SubnetLen":19e8285})"),
            "invalid network config JSON: number overflow parsing '19e8285'");
}

TEST(Config, SubnetCount) {
  Config c = parse_config(cfg("10.5.0.0/16", R"(,"SubnetLen":30)"));
  EXPECT_EQ(subnet_count(c), 16383u);
  c.subnet_min = IP4{c.subnet_max.value + 4};
  EXPECT_EQ(subnet_count(c), 0u);
  EXPECT_EQ(subnet_count(parse_config(cfg("0.0.0.0/0"))), 16777215u);
}

}  // namespace
}  // namespace flannel
