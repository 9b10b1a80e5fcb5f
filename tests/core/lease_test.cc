#include "core/lease.h"

#include <gtest/gtest.h>

namespace flannel {
namespace {

TEST(SubnetKey, FormatsNetworkDashPrefix) {
  EXPECT_EQ(subnet_key(IP4Net::parse("10.5.34.0/24")), "10.5.34.0-24");
  EXPECT_EQ(subnet_key(IP4Net::parse("0.0.0.0/0")), "0.0.0.0-0");
}

TEST(SubnetKey, ParsesAnywhereInKey) {
  EXPECT_EQ(parse_subnet_key("10.5.34.0-24"), IP4Net::parse("10.5.34.0/24"));
  EXPECT_EQ(parse_subnet_key("/coreos.com/network/subnets/10.5.34.0-24"),
            IP4Net::parse("10.5.34.0/24"));
  EXPECT_EQ(parse_subnet_key("/x/subnets/10.5.34.0-32"), (IP4Net{IP4::parse("10.5.34.0"), 32}));
  // Host bits are kept as written (flannel does not check them).
  EXPECT_EQ(parse_subnet_key("10.5.34.7-24"), (IP4Net{IP4::parse("10.5.34.7"), 24}));
  // Leftmost match, starting at the first digit of a run.
  EXPECT_EQ(parse_subnet_key("ab110.5.34.0-24x"), (IP4Net{IP4::parse("110.5.34.0"), 24}));
  EXPECT_EQ(parse_subnet_key("/1.2/10.0.0.0-8"), IP4Net::parse("10.0.0.0/8"));
  EXPECT_EQ(parse_subnet_key("10.5.34.0-024"), IP4Net::parse("10.5.34.0/24"));  // Go ParseUint
}

TEST(SubnetKey, RejectsNonSubnets) {
  EXPECT_EQ(parse_subnet_key(""), std::nullopt);
  EXPECT_EQ(parse_subnet_key("/coreos.com/network/config"), std::nullopt);
  EXPECT_EQ(parse_subnet_key("10.5.34.0-33"), std::nullopt);
  EXPECT_EQ(parse_subnet_key("10.5.34.0-100"), std::nullopt);
  EXPECT_EQ(parse_subnet_key("10.5.34.0-99999999999999999999"), std::nullopt);
  EXPECT_EQ(parse_subnet_key("10.5.256.0-24"), std::nullopt);
  EXPECT_EQ(parse_subnet_key("10.5.34-24"), std::nullopt);
  EXPECT_EQ(parse_subnet_key("10.5.34.0/24"), std::nullopt);
  EXPECT_EQ(parse_subnet_key("10.5.34.0-"), std::nullopt);
}

TEST(LeaseCodec, EncodesExactlyLikeFlannel) {
  LeaseAttrs vx{IP4::parse("10.37.7.195"), "vxlan", R"({"VtepMAC":"82:4b:b6:2f:54:4e"})", {}, ""};
  EXPECT_EQ(
      encode_lease_attrs(vx),
      R"({"PublicIP":"10.37.7.195","BackendType":"vxlan","BackendData":{"VtepMAC":"82:4b:b6:2f:54:4e"}})");
  EXPECT_EQ(encode_lease_attrs({IP4::parse("10.37.7.195"), "", "", {}, ""}),
            R"({"PublicIP":"10.37.7.195"})");
  EXPECT_EQ(encode_lease_attrs({IP4::parse("10.37.7.195"), "host-gw", "", {}, ""}),
            R"({"PublicIP":"10.37.7.195","BackendType":"host-gw"})");
  EXPECT_EQ(encode_lease_attrs({IP4{}, "", "", {}, ""}), R"({"PublicIP":"0.0.0.0"})");
}

TEST(LeaseCodec, EncodeCompactsAndEscapesLikeGo) {
  LeaseAttrs a{IP4::parse("1.2.3.4"), "a<b\"\n", "{ \"K\" : [1, 2],\n \"S\": \"x y<\" }", {}, ""};
  EXPECT_EQ(
      encode_lease_attrs(a),
      R"({"PublicIP":"1.2.3.4","BackendType":"a\u003cb\"\n","BackendData":{"K":[1,2],"S":"x y\u003c"}})");
  EXPECT_THROW(encode_lease_attrs({IP4{}, "", "{bad", {}, ""}), std::invalid_argument);
}

TEST(LeaseCodec, DecodesRoundTrip) {
  std::string vx =
      R"({"PublicIP":"10.37.7.195","BackendType":"vxlan","BackendData":{"VtepMAC":"82:4b:b6:2f:54:4e"}})";
  LeaseAttrs a = decode_lease_attrs(vx);
  EXPECT_EQ(a.public_ip, IP4::parse("10.37.7.195"));
  EXPECT_EQ(a.backend_type, "vxlan");
  EXPECT_EQ(a.backend_data, R"({"VtepMAC":"82:4b:b6:2f:54:4e"})");
  EXPECT_EQ(encode_lease_attrs(a), vx);
  LeaseAttrs u = decode_lease_attrs(R"({"PublicIP":"10.37.7.195"})");
  EXPECT_EQ(u, (LeaseAttrs{IP4::parse("10.37.7.195"), "", "", {}, ""}));
}

TEST(LeaseCodec, DecodeIsCaseInsensitiveAndTolerant) {
  LeaseAttrs a = decode_lease_attrs(
      " {\"publicip\" : \"1.2.3.4\", \"extra\": {\"x\":[1,{\"y\":\"}\"}]}, "
      "\"BACKENDTYPE\":\"vxlan\",\n"
      " \"backendData\" : { \"VtepMAC\" : \"aa:bb\" , \"n\": [ 1 , 2 ] } } ");
  EXPECT_EQ(a.public_ip, IP4::parse("1.2.3.4"));
  EXPECT_EQ(a.backend_type, "vxlan");
  EXPECT_EQ(a.backend_data, R"({"VtepMAC":"aa:bb","n":[1,2]})");
  // Last matching member wins, as in Go.
  EXPECT_EQ(decode_lease_attrs(R"({"PublicIP":"1.1.1.1","publicIP":"2.2.2.2"})").public_ip,
            IP4::parse("2.2.2.2"));
  EXPECT_EQ(decode_lease_attrs(R"({"PublicIP":"1.1.1.1","BackendData":null})").backend_data, "");
}

void expect_decode_error(std::string_view json, std::string_view needle) {
  try {
    decode_lease_attrs(json);
    ADD_FAILURE() << "no error for " << json;
  } catch (const ParseError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(LeaseCodec, DecodeErrorsNameTheProblem) {
  expect_decode_error("", "invalid lease JSON");
  expect_decode_error(R"({"PublicIP":"1.2.3.4")", "at byte");
  expect_decode_error("[1]", "expected an object");
  // nlohmann's out_of_range (not a parse_error) must still be a ParseError (as in config_fuzz).
  expect_decode_error(R"({"PublicIP":"1.2.3.4","BackendData":{"x":1e99999}})",
                      "invalid lease JSON: number overflow parsing '1e99999'");
  expect_decode_error("{}", "PublicIP is missing");
  expect_decode_error(R"({"PublicIP":"1.2.3"})", "PublicIP \"1.2.3\" is not an IPv4");
  expect_decode_error(R"({"PublicIP":null})", "PublicIP null");
  expect_decode_error(R"({"PublicIP":"fe80::1"})", "not an IPv4");
  expect_decode_error(R"({"PublicIP":"1.2.3.4","BackendType":5})", "BackendType 5 is not a string");
}

}  // namespace
}  // namespace flannel
