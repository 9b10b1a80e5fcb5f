// run_cni_plugin() in-process: the CNI_* environment, subnet.env, the saved delegate configs and
// the delegate exec, with a stand-in delegate (a shell script in a temp CNI_PATH dir that records
// its stdin and CNI_COMMAND and prints what the test tells it to). The real bridge/host-local
// run in tests/lab/cni_labtest.cc.
#include "daemon/cni/plugin.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/cni_config.h"

namespace flannel::cni {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
void spit(const std::string& p, const std::string& s) { std::ofstream(p) << s; }

const char* kResult =
    R"({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/p"}],)"
    R"("ips":[{"address":"10.5.34.2/24","gateway":"10.5.34.1","interface":0}],"dns":{}})";

class CniPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/flannel-cni-unit-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    fs::create_directories(dir + "/bin");
    spit(dir + "/subnet.env",
         "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/"
         "24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n");
    // The stand-in delegate: appends "COMMAND" to calls, saves stdin per command, prints
    // $dir/reply.<COMMAND> (if any) and exits with $dir/rc.<COMMAND> (default 0).
    write_delegate("bridge");
    spit(dir + "/reply.ADD", kResult);
  }
  void TearDown() override { fs::remove_all(dir); }

  void write_delegate(const std::string& name) {
    std::string p = dir + "/bin/" + name;
    spit(p, "#!/bin/sh\nd=" + dir +
                "\necho \"$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME\" >> $d/calls\ncat > "
                "$d/stdin.$CNI_COMMAND\n"
                "[ -f $d/reply.$CNI_COMMAND ] && cat $d/reply.$CNI_COMMAND\n"
                "[ -f $d/rc.$CNI_COMMAND ] && exit $(cat $d/rc.$CNI_COMMAND)\nexit 0\n");
    ::chmod(p.c_str(), 0755);
  }

  std::map<std::string, std::string> env(const std::string& command) const {
    return {{"CNI_COMMAND", command},
            {"CNI_CONTAINERID", "c0ffee"},
            {"CNI_NETNS", "/var/run/netns/p"},
            {"CNI_IFNAME", "eth0"},
            {"CNI_PATH", "/nonexistent:" + dir + "/bin"},
            {"PATH", "/usr/bin:/bin"}};
  }
  std::string conf(const std::string& extra = "", const std::string& version = "1.0.0") const {
    return R"({"cniVersion":")" + version + R"(","name":"cbr0","type":"flannel","subnetFile":")" +
           dir + R"(/subnet.env","dataDir":")" + dir + R"(/data")" + extra + "}";
  }
  int run(const std::map<std::string, std::string>& e, const std::string& in) {
    std::ostringstream o, er;
    int rc = run_cni_plugin(e, in, o, er);
    out = o.str();
    err = er.str();
    return rc;
  }
  // The error JSON of the last run, checked for shape.
  json error() {
    json j = json::parse(out);
    EXPECT_TRUE(j.contains("code") && j.contains("msg") && j.contains("cniVersion")) << out;
    return j;
  }
  std::string saved() const { return dir + "/data/c0ffee"; }

  std::string dir, out, err;
};

TEST_F(CniPlugin, AddSavesDelegateConfigRunsItAndPrintsResult) {
  ASSERT_EQ(run(env("ADD"), conf()), 0) << out << err;
  EXPECT_EQ(slurp(dir + "/calls"), "ADD c0ffee eth0\n");
  json sent = json::parse(slurp(dir + "/stdin.ADD"));
  EXPECT_EQ(sent, json::parse(slurp(saved())));  // what DEL will use is what ADD ran
  EXPECT_EQ(sent, json::parse(R"({"cniVersion":"1.0.0","name":"cbr0","type":"bridge","ipMasq":true,
      "mtu":1450,"isGateway":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.5.34.0/24"}]],
      "routes":[{"dst":"10.5.0.0/16","gw":"10.5.34.1"}]}})"));
  EXPECT_EQ(fs::status(saved()).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(dir + "/data").permissions() & fs::perms::all, fs::perms::owner_all);
  EXPECT_EQ(json::parse(out), json::parse(kResult));
}

// Containers "c0ffee" and "c0ffee.tmp": with a temp file named "<id>.tmp", the second one's ADD
// wrote its config through the first one's temp name and the first one's ADD replaced the second
// one's saved config. Each keeps its own now, and no temp file is left behind.
TEST_F(CniPlugin, ContainersXAndXTmpKeepTheirOwnSavedConfigs) {
  auto tmp_env = env("ADD");
  tmp_env["CNI_CONTAINERID"] = "c0ffee.tmp";
  ASSERT_EQ(run(tmp_env, conf()), 0) << out << err;
  const std::string for_tmp = slurp(dir + "/data/c0ffee.tmp");
  ASSERT_EQ(run(env("ADD"), conf(R"(,"delegate":{"mtu":1400})")), 0) << out << err;
  EXPECT_EQ(slurp(dir + "/data/c0ffee.tmp"), for_tmp);
  EXPECT_NE(slurp(saved()), for_tmp);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir + "/data")) {
    ++files;
    EXPECT_NE(e.path().filename().string()[0], '.') << "temp file left: " << e.path();
  }
  EXPECT_EQ(files, 2u);
}

TEST_F(CniPlugin, AddResultInTheConfigsVersion) {
  ASSERT_EQ(run(env("ADD"), conf("", "0.3.1")), 0) << out;
  json r = json::parse(out);
  EXPECT_EQ(r["cniVersion"], "0.3.1");
  EXPECT_EQ(r["ips"][0]["version"], "4");
  EXPECT_EQ(json::parse(slurp(dir + "/stdin.ADD"))["cniVersion"], "0.3.1");
}

TEST_F(CniPlugin, DelUsesSavedConfigAndRemovesIt) {
  ASSERT_EQ(run(env("ADD"), conf()), 0) << out;
  std::string at_add = slurp(saved());
  // DEL's own config may differ (even a missing subnet.env: DEL must work with flanneld down).
  fs::remove(dir + "/subnet.env");
  ASSERT_EQ(run(env("DEL"), conf(R"(,"delegate":{"type":"other"})")), 0) << out << err;
  EXPECT_EQ(out, "");
  EXPECT_EQ(slurp(dir + "/stdin.DEL"), at_add);
  EXPECT_FALSE(fs::exists(saved()));
  // A second DEL: nothing saved, success, the delegate is not run.
  ASSERT_EQ(run(env("DEL"), conf()), 0) << out;
  EXPECT_EQ(slurp(dir + "/calls"), "ADD c0ffee eth0\nDEL c0ffee eth0\n");
}

TEST_F(CniPlugin, DelWithoutNetnsIsAllowed) {
  ASSERT_EQ(run(env("ADD"), conf()), 0);
  auto e = env("DEL");
  e.erase("CNI_NETNS");
  EXPECT_EQ(run(e, conf()), 0) << out;
  EXPECT_FALSE(fs::exists(saved()));
}

TEST_F(CniPlugin, DelFailureKeepsSavedConfigAndPassesTheErrorOn) {
  ASSERT_EQ(run(env("ADD"), conf()), 0);
  spit(dir + "/reply.DEL",
       R"({"cniVersion":"1.0.0","code":5,"msg":"netlink busy","details":"EBUSY"})");
  spit(dir + "/rc.DEL", "1");
  EXPECT_EQ(run(env("DEL"), conf()), 1);
  json e = error();
  EXPECT_EQ(e["code"], 5);
  EXPECT_EQ(e["msg"], "bridge: netlink busy");
  EXPECT_EQ(e["details"], "EBUSY");
  EXPECT_TRUE(fs::exists(saved()));  // the runtime retries DEL; the config must still be there
}

TEST_F(CniPlugin, DelOfGarbageSavedConfigRemovesIt) {
  fs::create_directories(dir + "/data");
  spit(saved(), "not json");
  EXPECT_EQ(run(env("DEL"), conf()), 0) << out;
  EXPECT_FALSE(fs::exists(saved()));
  EXPECT_NE(err.find("not a delegate config"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir + "/calls"));
}

TEST_F(CniPlugin, CheckPassesSavedConfigAndPrevResult) {
  ASSERT_EQ(run(env("ADD"), conf()), 0);
  std::string prev = std::string(R"(,"prevResult":)") + kResult;
  ASSERT_EQ(run(env("CHECK"), conf(prev)), 0) << out << err;
  EXPECT_EQ(out, "");
  json sent = json::parse(slurp(dir + "/stdin.CHECK"));
  EXPECT_EQ(sent["prevResult"], json::parse(kResult));
  EXPECT_EQ(sent["type"], "bridge");
  EXPECT_EQ(sent["ipam"]["ranges"][0][0]["subnet"], "10.5.34.0/24");
  // The delegate's verdict is ours.
  spit(dir + "/reply.CHECK",
       R"({"cniVersion":"1.0.0","code":100,"msg":"eth0 has no address 10.5.34.2"})");
  spit(dir + "/rc.CHECK", "1");
  EXPECT_EQ(run(env("CHECK"), conf(prev)), 1);
  EXPECT_EQ(error()["code"], 100);
}

TEST_F(CniPlugin, CheckErrors) {
  std::string prev = std::string(R"(,"prevResult":)") + kResult;
  EXPECT_EQ(run(env("CHECK"), conf(prev)), 1);  // never added
  EXPECT_EQ(error()["code"], kUnknownContainer);
  EXPECT_NE(out.find("c0ffee"), std::string::npos);
  ASSERT_EQ(run(env("ADD"), conf()), 0);
  EXPECT_EQ(run(env("CHECK"), conf()), 1);  // no prevResult
  EXPECT_EQ(error()["code"], kInvalidConfig);
  EXPECT_EQ(run(env("CHECK"), conf(prev, "0.3.1")), 1);  // CHECK came with 0.4.0
  EXPECT_EQ(error()["code"], kIncompatibleVersion);
  EXPECT_EQ(error()["cniVersion"], "0.3.1");
}

TEST_F(CniPlugin, SubnetEnvMissingSaysIsFlanneldRunning) {
  fs::remove(dir + "/subnet.env");
  EXPECT_EQ(run(env("ADD"), conf()), 1);
  json e = error();
  EXPECT_EQ(e["code"], kTryAgainLater);
  EXPECT_EQ(e["msg"], dir + "/subnet.env does not exist: is flanneld running? it writes " + dir +
                          "/subnet.env once it holds a lease");
  EXPECT_FALSE(fs::exists(dir + "/calls"));
  EXPECT_FALSE(fs::exists(saved()));
  EXPECT_NE(err.find("is flanneld running?"), std::string::npos);  // also on stderr, for the log
}

TEST_F(CniPlugin, SubnetEnvUnreadable) {
  fs::remove(dir + "/subnet.env");
  fs::create_directories(dir + "/subnet.env");  // read() fails with EISDIR, even for root
  EXPECT_EQ(run(env("ADD"), conf()), 1);
  EXPECT_EQ(error()["code"], kIOFailure);
  EXPECT_NE(out.find("cannot read " + dir + "/subnet.env"), std::string::npos) << out;
}

TEST_F(CniPlugin, SubnetEnvIncomplete) {
  spit(dir + "/subnet.env", "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/24\n");
  EXPECT_EQ(run(env("ADD"), conf()), 1);
  EXPECT_EQ(error()["code"], kInvalidConfig);
  EXPECT_NE(out.find("is missing FLANNEL_MTU, FLANNEL_IPMASQ"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir + "/calls"));
}

TEST_F(CniPlugin, DelegateNotFoundNamesTypeAndPath) {
  EXPECT_EQ(run(env("ADD"), conf(R"(,"delegate":{"type":"macvlan"})")), 1);
  json e = error();
  EXPECT_EQ(e["code"], kInvalidConfig);
  EXPECT_EQ(e["msg"], "delegate plugin \"macvlan\" not found in CNI_PATH /nonexistent:" + dir +
                          "/bin (on Debian: apt-get install containernetworking-plugins)");
  // Not executable does not count.
  ::chmod((dir + "/bin/bridge").c_str(), 0644);
  EXPECT_EQ(run(env("ADD"), conf()), 1);
  EXPECT_NE(error()["msg"].get<std::string>().find("\"bridge\" not found"), std::string::npos)
      << out;
}

TEST_F(CniPlugin, FirstMatchInCniPathWins) {
  fs::create_directories(dir + "/bin2");
  spit(dir + "/bin2/bridge", "#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"ips\":[]}'\n");
  ::chmod((dir + "/bin2/bridge").c_str(), 0755);
  EXPECT_EQ(*find_in_path("bridge", dir + "/bin2:" + dir + "/bin"), dir + "/bin2/bridge");
  EXPECT_EQ(*find_in_path("bridge", "::" + dir + "/bin:" + dir + "/bin2"), dir + "/bin/bridge");
  EXPECT_FALSE(find_in_path("../bin/bridge", dir + "/bin2"));
  EXPECT_FALSE(find_in_path("bin", dir));  // a directory
}

TEST_F(CniPlugin, DelegateFailureWithoutErrorJson) {
  spit(dir + "/reply.ADD", "panic: oops");
  spit(dir + "/rc.ADD", "2");
  EXPECT_EQ(run(env("ADD"), conf()), 1);
  json e = error();
  EXPECT_EQ(e["code"], kInternal);
  EXPECT_EQ(e["msg"], "delegate bridge ADD failed: `" + dir +
                          "/bin/bridge` exited with status 2: panic: oops")
      << out;
  EXPECT_TRUE(fs::exists(saved()));  // kept for the runtime's DEL after a failed ADD
}

TEST_F(CniPlugin, DelegateKilledBySignalSaysSo) {
  spit(dir + "/bin/bridge", "#!/bin/sh\nkill -KILL $$\n");
  EXPECT_EQ(run(env("ADD"), conf()), 1);
  json e = error();
  EXPECT_EQ(e["code"], kInternal);
  EXPECT_EQ(e["msg"],
            "delegate bridge ADD failed: `" + dir + "/bin/bridge` killed by signal 9 (Killed)")
      << out;
}

TEST_F(CniPlugin, DelegateThatCannotBeExecutedIsNamedWithTheReason) {
  spit(dir + "/bin/bridge", "#!/nonexistent/flannel-test/sh\n");
  EXPECT_EQ(run(env("ADD"), conf()), 1);
  json e = error();
  EXPECT_EQ(e["code"], kInternal);
  EXPECT_EQ(e["msg"], "delegate bridge ADD failed: `" + dir +
                          "/bin/bridge` could not be started: " + "cannot execute " + dir +
                          "/bin/bridge: No such file or directory")
      << out;
}

TEST_F(CniPlugin, ADelegateThatDoesNotReadItsConfigIsJudgedByItsExit) {
  spit(dir + "/bin/bridge", "#!/bin/sh\necho '{\"code\":7,\"msg\":\"no config read\"}'\nexit 1\n");
  std::string big(1 << 20, ' ');  // more than a pipe holds: our write meets a closed pipe
  EXPECT_EQ(run(env("ADD"), conf(R"(,"delegate":{"padding":")" + big + "\"}")), 1);
  EXPECT_GT(fs::file_size(saved()), big.size()) << "the padding did not reach the delegate";
  json e = error();
  EXPECT_EQ(e["code"], 7);
  EXPECT_EQ(e["msg"], "bridge: no config read");
}

TEST_F(CniPlugin, DelegateResultNotJson) {
  spit(dir + "/reply.ADD", "hello");
  EXPECT_EQ(run(env("ADD"), conf()), 1);
  EXPECT_EQ(error()["code"], kInternal);
}

TEST_F(CniPlugin, BadJsonAndBadKeys) {
  EXPECT_EQ(run(env("ADD"), "{\"cniVersion\":"), 1);
  EXPECT_EQ(error()["code"], kDecodeFailure);
  EXPECT_EQ(run(env("ADD"), conf(R"(,"dataDir":7)")), 1);  // duplicate key: the last one wins
  json e = error();
  EXPECT_EQ(e["code"], kInvalidConfig);
  EXPECT_NE(e["msg"].get<std::string>().find("\"dataDir\" is 7"), std::string::npos) << out;
  EXPECT_EQ(e["cniVersion"], "1.0.0");
  EXPECT_EQ(run(env("DEL"), conf(R"(,"delegate":[])")), 1);
  EXPECT_EQ(error()["code"], kInvalidConfig);
  EXPECT_FALSE(fs::exists(dir + "/calls"));
}

TEST_F(CniPlugin, EnvironmentErrors) {
  for (const char* k : {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"}) {
    auto e = env("ADD");
    e.erase(k);
    EXPECT_EQ(run(e, conf()), 1) << k;
    EXPECT_EQ(error()["code"], kInvalidEnvironment) << k;
    EXPECT_NE(out.find(k), std::string::npos) << out;
  }
  auto e = env("ADD");
  e["CNI_CONTAINERID"] = "../../etc/x";
  EXPECT_EQ(run(e, conf()), 1);
  EXPECT_EQ(error()["code"], kInvalidEnvironment);
  e = env("GC");
  EXPECT_EQ(run(e, conf()), 1);
  EXPECT_EQ(error()["code"], kInvalidEnvironment);
  e.erase("CNI_COMMAND");
  EXPECT_EQ(run(e, conf()), 1);
  EXPECT_EQ(error()["code"], kInvalidEnvironment);
  EXPECT_FALSE(fs::exists(dir + "/calls"));
}

TEST_F(CniPlugin, Version) {
  EXPECT_EQ(run({{"CNI_COMMAND", "VERSION"}}, R"({"cniVersion":"0.4.0"})"), 0);
  EXPECT_EQ(json::parse(out),
            json::parse(
                R"({"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]})"));
  EXPECT_EQ(run({{"CNI_COMMAND", "VERSION"}}, ""), 0);
  EXPECT_EQ(json::parse(out)["cniVersion"], "1.0.0");
}

}  // namespace
}  // namespace flannel::cni
