#include "core/subnet_env.h"

#include <gtest/gtest.h>

namespace flannel {
namespace {

TEST(SubnetEnv, RendersExactly) {
  SubnetEnv e =
      make_subnet_env(IP4Net::parse("10.5.0.0/16"), IP4Net::parse("10.5.34.0/24"), 1450, false);
  EXPECT_EQ(e.subnet.str(), "10.5.34.1/24");
  EXPECT_EQ(render_subnet_env(e),
            "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/"
            "24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n");
  e = make_subnet_env(IP4Net::parse("172.33.0.0/16"), IP4Net::parse("172.33.68.0/24"), 1500, true);
  EXPECT_EQ(render_subnet_env(e),
            "FLANNEL_NETWORK=172.33.0.0/16\nFLANNEL_SUBNET=172.33.68.1/"
            "24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n");
  e = make_subnet_env(IP4Net::parse("10.5.0.0/28"), IP4Net::parse("10.5.0.4/30"), 1472, false);
  EXPECT_EQ(e.subnet.str(), "10.5.0.5/30");
}

TEST(SubnetEnv, ParsesWhatWeWriteAndRoundTrips) {
  SubnetEnv e =
      make_subnet_env(IP4Net::parse("10.5.0.0/16"), IP4Net::parse("10.5.34.0/24"), 1450, true);
  auto env = parse_env_file(render_subnet_env(e));
  EXPECT_EQ(env.size(), 4u);
  EXPECT_EQ(env["FLANNEL_NETWORK"], "10.5.0.0/16");
  EXPECT_EQ(env["FLANNEL_SUBNET"], "10.5.34.1/24");
  EXPECT_EQ(env["FLANNEL_MTU"], "1450");
  EXPECT_EQ(env["FLANNEL_IPMASQ"], "true");
  EXPECT_EQ(previous_subnet_from_env(env), IP4Net::parse("10.5.34.0/24"));
}

TEST(EnvFile, GodotenvForms) {
  auto env = parse_env_file(
      "# a comment\n"
      "\n"
      "   \n"
      "export FLANNEL_NETWORK=172.7.0.0/16\r\n"
      "FLANNEL_SUBNET=172.7.21.1/24 #The subnet of each node is different\n"
      "  A = spaced value  \n"
      "B='single # not a comment \\n'\n"
      "C=\"double \\\"q\\\" \\\\ a\\nb # kept\" # dropped\n"
      "D=\n"
      "E=x#y\n"
      "export\tF=tab\n"
      "G=first\n"
      "G=second\n");
  EXPECT_EQ(env["FLANNEL_NETWORK"], "172.7.0.0/16");
  EXPECT_EQ(env["FLANNEL_SUBNET"], "172.7.21.1/24");
  EXPECT_EQ(env["A"], "spaced value");
  EXPECT_EQ(env["B"], "single # not a comment \\n");
  EXPECT_EQ(env["C"], "double \"q\" \\ a\nb # kept");
  EXPECT_EQ(env["D"], "");
  EXPECT_EQ(env["E"], "x#y");
  EXPECT_EQ(env["F"], "tab");
  EXPECT_EQ(env["G"], "second");
  EXPECT_EQ(env.size(), 9u);
  EXPECT_TRUE(parse_env_file("").empty());
  EXPECT_EQ(parse_env_file("X=1")["X"], "1");  // no final newline
}

TEST(EnvFile, ErrorsNameTheLine) {
  try {
    parse_env_file("A=1\nnot a pair\n");
    FAIL();
  } catch (const ParseError& e) {
    EXPECT_STREQ(e.what(), "env file line 2: no '=': \"not a pair\" (expected KEY=VALUE)");
  }
  EXPECT_THROW(parse_env_file("=1\n"), ParseError);
  EXPECT_THROW(parse_env_file("export =1\n"), ParseError);
  try {
    parse_env_file("A=\"open\n");
    FAIL();
  } catch (const ParseError& e) {
    EXPECT_NE(std::string(e.what()).find("line 1: unterminated double quote"), std::string::npos)
        << e.what();
  }
}

TEST(EnvFile, PreviousSubnet) {
  EXPECT_EQ(previous_subnet_from_env({{"FLANNEL_SUBNET", "10.5.34.1/24"}}),
            IP4Net::parse("10.5.34.0/24"));
  EXPECT_EQ(previous_subnet_from_env({}), std::nullopt);
  EXPECT_EQ(previous_subnet_from_env({{"FLANNEL_SUBNET", ""}}), std::nullopt);
  std::string warning;
  EXPECT_EQ(previous_subnet_from_env({{"FLANNEL_SUBNET", "10.5.34.1"}}, &warning), std::nullopt);
  EXPECT_EQ(warning, "ignoring FLANNEL_SUBNET=\"10.5.34.1\": not an IPv4 CIDR like 10.5.34.1/24");
  EXPECT_EQ(previous_subnet_from_env({{"FLANNEL_SUBNET", "fd00::1/64"}}), std::nullopt);
  EXPECT_EQ(cidr_from_env({{"FLANNEL_NETWORK", "10.5.0.0/16"}}, "FLANNEL_NETWORK"),
            IP4Net::parse("10.5.0.0/16"));
}

}  // namespace
}  // namespace flannel
