#include "core/docker_opts.h"

#include <gtest/gtest.h>

#include "core/subnet_env.h"

namespace flannel {
namespace {

using Env = std::map<std::string, std::string>;

const Env kSample = {{"FLANNEL_NETWORK", "10.1.0.0/16"},
                     {"FLANNEL_SUBNET", "10.1.74.1/24"},
                     {"FLANNEL_MTU", "1472"},
                     {"FLANNEL_IPMASQ", "false"}};

TEST(DockerOpts, DefaultOptionsWriteBoth) {
  EXPECT_EQ(render_docker_opts(kSample, {}, {}),
            "DOCKER_OPT_BIP=\"--bip=10.1.74.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1472\"\n"
            "DOCKER_OPTS=\" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472\"\n");
}

TEST(DockerOpts, SeedWithDockerNetworkOptionsKey) {
  // The subnet.env and /run/flannel/docker of a real v0.11 node.
  Env env = parse_env_file(
      "FLANNEL_NETWORK=172.33.0.0/16\nFLANNEL_SUBNET=172.33.68.1/"
      "24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n");
  DockerOptsOptions o;
  o.key = "DOCKER_NETWORK_OPTIONS";
  EXPECT_EQ(render_docker_opts(env, o, {}),
            "DOCKER_OPT_BIP=\"--bip=172.33.68.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1500\"\n"
            "DOCKER_NETWORK_OPTIONS=\" --bip=172.33.68.1/24 --ip-masq=true --mtu=1500\"\n");
}

TEST(DockerOpts, IndividualOnlySeed) {
  Env env = {
      {"FLANNEL_SUBNET", "172.30.46.1/24"}, {"FLANNEL_MTU", "1450"}, {"FLANNEL_IPMASQ", "false"}};
  DockerOptsOptions o;
  o.individual = true;
  EXPECT_EQ(render_docker_opts(env, o, {}),
            "DOCKER_OPT_BIP=\"--bip=172.30.46.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1450\"\n");
}

TEST(DockerOpts, CombinedOnlyAndIpmasqInversion) {
  Env env = kSample;
  env["FLANNEL_IPMASQ"] = "true";
  DockerOptsOptions o;
  o.combined = true;
  EXPECT_EQ(render_docker_opts(env, o, {}),
            "DOCKER_OPTS=\" --bip=10.1.74.1/24 --ip-masq=false --mtu=1472\"\n");
  o.omit_ipmasq = true;
  EXPECT_EQ(render_docker_opts(env, o, {}), "DOCKER_OPTS=\" --bip=10.1.74.1/24 --mtu=1472\"\n");
  env["FLANNEL_IPMASQ"] = "";
  o.omit_ipmasq = false;
  EXPECT_EQ(render_docker_opts(env, o, {}), "DOCKER_OPTS=\" --bip=10.1.74.1/24 --mtu=1472\"\n");
}

TEST(DockerOpts, InvalidIpmasq) {
  Env env = kSample;
  env["FLANNEL_IPMASQ"] = "yes";
  try {
    render_docker_opts(env, {}, {});
    FAIL();
  } catch (const DockerOptsError& e) {
    EXPECT_STREQ(e.what(), "Invalid value of FLANNEL_IPMASQ: yes");
  }
  DockerOptsOptions o;
  o.omit_ipmasq = true;  // -m: the value is never looked at
  EXPECT_NO_THROW(render_docker_opts(env, o, {}));
}

TEST(DockerOpts, MissingEnvFile) {
  EXPECT_EQ(render_docker_opts({}, {}, {}), "DOCKER_OPTS=\"\"\n");
  DockerOptsOptions o;
  o.individual = true;
  EXPECT_EQ(render_docker_opts({}, o, {}), "");
}

TEST(DockerOpts, PreExistingEnvironment) {
  Env environment = {{"DOCKER_OPTS", "--foo"},  {"DOCKER_OPT_AAA", "--aaa"},
                     {"DOCKER_OPT_ZZZ", "--z"}, {"DOCKER_OPT_MTU", "--mtu=9000"},
                     {"PATH", "/bin"},          {"FLANNEL_MTU", "1400"}};
  EXPECT_EQ(render_docker_opts(kSample, {}, environment),
            "DOCKER_OPT_AAA=\"--aaa\"\n"
            "DOCKER_OPT_BIP=\"--bip=10.1.74.1/24\"\n"
            "DOCKER_OPT_IPMASQ=\"--ip-masq=true\"\n"
            "DOCKER_OPT_MTU=\"--mtu=1472\"\n"  // the env file's MTU wins over the environment's
            "DOCKER_OPT_ZZZ=\"--z\"\n"
            "DOCKER_OPTS=\"--foo  --aaa --bip=10.1.74.1/24 --ip-masq=true --mtu=1472 --z\"\n");
  // Without an env file, the environment's FLANNEL_* still apply (the script only sources).
  DockerOptsOptions o;
  o.combined = true;
  o.key = "DOCKER_NETWORK_OPTIONS";
  EXPECT_EQ(render_docker_opts({}, o, {{"FLANNEL_MTU", "1400"}, {"DOCKER_OPTS", "--ignored"}}),
            "DOCKER_NETWORK_OPTIONS=\" --mtu=1400\"\n");
  EXPECT_EQ(render_docker_opts({}, o, {{"DOCKER_NETWORK_OPTIONS", "--x"}}),
            "DOCKER_NETWORK_OPTIONS=\"--x \"\n");
}

}  // namespace
}  // namespace flannel
