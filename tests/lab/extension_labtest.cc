// The extension backend in the lab: three hosts whose only data plane is the operator's commands.
// Plain `ip` commands (no shell: flanneld splits the line and expands $SUBNET and $PUBLIC_IP
// itself) program host-gw-style routes, so pods ping across hosts; a removed lease runs
// SubnetRemoveCommand; a command that fails or hangs past CommandTimeout is logged with its
// status, and the agent carries on.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "core/json_util.h"
#include "stores/sqlite/sqlite_store.h"
#include "tests/lab/overlay_lab.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

// Each host's flanneld gets LAB_HOST=h<N> in its environment (commands see flanneld's own).
void name_hosts(OverlayLab& lab) {
  lab.customize_start = [](int i, Process::Spec& spec) {
    spec.env_set["LAB_HOST"] = "h" + std::to_string(i + 1);
  };
}

bool log_has(const OverlayLab& lab, int i, const std::string& text) {
  return read_file(lab.log_file(i)).find(text) != std::string::npos;
}

bool wait_log(const OverlayLab& lab, int i, const std::string& text,
              std::chrono::milliseconds timeout = 10s) {
  return wait_until([&] { return log_has(lab, i, text); }, timeout);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

constexpr const char* kRouteConfig = R"({"Network":"10.5.0.0/16","Backend":{"Type":"extension",
  "PreStartupCommand":"echo tunnel-key-$LAB_HOST",
  "PostStartupCommand":"echo post NETWORK=$NETWORK SUBNET=${SUBNET} PUBLIC_IP=$PUBLIC_IP",
  "SubnetAddCommand":"ip route replace $SUBNET via $PUBLIC_IP dev eth0",
  "SubnetRemoveCommand":"ip route del $SUBNET via $PUBLIC_IP dev eth0"}})";

TEST(ExtensionLab, IpCommandsRouteThePodsAndARemovedLeaseRunsRemove) {
  auto t0 = std::chrono::steady_clock::now();
  OverlayLab lab("ext", kRouteConfig, 3);
  name_hosts(lab);
  lab.start_all();
  for (int i = 0; i < 3; ++i) lab.wait_subnet(i);
  lab.add_pods();
  ASSERT_TRUE(lab.wait_full_mesh()) << lab.dump();

  // The PreStartupCommand's output is the lease's BackendData, a JSON string.
  auto leases = lab.leases();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(leases.at(lab.lease(i).str()).dump(),
              R"({"PublicIP":")" + lab.host(i).addr.str() +
                  R"(","BackendType":"extension","BackendData":"tunnel-key-h)" +
                  std::to_string(i + 1) + R"("})");
    EXPECT_EQ(lab.mtu(i), 1500) << "extension MTU is the ext interface MTU";
    for (int j = 0; j < 3; ++j) {
      if (i == j) continue;
      // The route is the command's (protocol boot is ip's default), via the peer's eth0.
      EXPECT_NE(lab.route(i, lab.lease(j)).find("via " + lab.host(j).addr.str() + " dev eth0"),
                std::string::npos)
          << lab.dump();
      EXPECT_TRUE(log_has(lab, i,
                          "extension: SubnetAddCommand for " + lab.lease(j).str() +
                              " `ip route replace " + lab.lease(j).str() + " via " +
                              lab.host(j).addr.str() + " dev eth0` exited with status 0 after "))
          << read_file(lab.log_file(i));
    }
  }
  EXPECT_TRUE(log_has(
      lab, 0,
      "extension: PostStartupCommand `echo post NETWORK=10.5.0.0/16 SUBNET=" + lab.lease(0).str() +
          " PUBLIC_IP=" + lab.host(0).addr.str() + "` exited with status 0"))
      << read_file(lab.log_file(0));
  EXPECT_TRUE(log_has(lab, 0, "ms; output: post NETWORK=10.5.0.0/16 SUBNET=" + lab.lease(0).str()))
      << read_file(lab.log_file(0));

  auto failed = lab.ping_matrix();
  EXPECT_TRUE(failed.empty()) << "failed pings: " << join(failed) << "\n" << lab.dump();
  auto t_ping = std::chrono::steady_clock::now();

  // A decommissioned host: its lease removed, the others run SubnetRemoveCommand.
  EXPECT_EQ(lab.stop(2), 0);
  std::string out;
  ASSERT_EQ(lab.ctl({"subnets", "rm", lab.lease(2).str()}, &out), 0) << out;
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(wait_until([&] { return lab.route(i, lab.lease(2)).empty(); }, 10s))
        << "host " << i + 1 << " still routes to removed " << lab.lease(2).str() << "\n"
        << lab.dump();
    EXPECT_TRUE(wait_log(lab, i,
                         "extension: SubnetRemoveCommand for " + lab.lease(2).str() +
                             " `ip route del " + lab.lease(2).str() + " via " +
                             lab.host(2).addr.str() + " dev eth0` exited with status 0"))
        << read_file(lab.log_file(i));
  }
  EXPECT_FALSE(lab.route(0, lab.lease(1)).empty()) << "the other peer's route stays";
  EXPECT_TRUE(lab.ping(0, 1)) << lab.dump();
  auto ms = [](auto a, auto b) {
    return (long long)std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
  };
  std::printf("extension lab timings: mesh+6 pings %lld ms, removal %lld ms\n", ms(t0, t_ping),
              ms(t_ping, std::chrono::steady_clock::now()));
}

TEST(ExtensionLab, FailedAndHungCommandsAreLoggedAndTheAgentCarriesOn) {
  OverlayLab lab("extf", kRouteConfig, 3);  // replaced below, before any agent starts
  // On host 1 only, the add of host 2 fails (exit 3) and that of host 3 hangs; every run records
  // the peer's BackendData as the script read it on stdin.
  std::string add = lab.dir() + "/add.sh";
  std::ofstream(add) << "#!/bin/sh\n"
                        "read data\n"
                        "echo \"$LAB_HOST $SUBNET $PUBLIC_IP $data\" >> \"$0.runs\"\n"
                        "case \"$LAB_HOST $PUBLIC_IP\" in\n"
                        "  'h1 10.250.0.2') echo \"refusing $SUBNET\" >&2; exit 3;;\n"
                        "  'h1 10.250.0.3') exec sleep 60;;\n"
                        "esac\n"
                        "exec ip route replace \"$SUBNET\" via \"$PUBLIC_IP\" dev eth0\n";
  ASSERT_EQ(::chmod(add.c_str(), 0755), 0);
  std::string out;
  ASSERT_EQ(
      lab.ctl({"config", "set",
               R"({"Network":"10.5.0.0/16","Backend":{"Type":"extension",)"
               R"("PreStartupCommand":"echo key-$LAB_HOST","CommandTimeout":1,)"
               R"("SubnetAddCommand":")" +
                   add + R"(","SubnetRemoveCommand":"ip route del $SUBNET via $PUBLIC_IP"}})"},
              &out),
      0)
      << out;
  name_hosts(lab);
  lab.start_all();
  for (int i = 0; i < 3; ++i) lab.wait_subnet(i);

  EXPECT_TRUE(wait_log(lab, 0,
                       "extension: SubnetAddCommand for " + lab.lease(1).str() + " `" + add +
                           "` exited with status 3 after "))
      << read_file(lab.log_file(0));
  EXPECT_TRUE(log_has(lab, 0, "output: refusing " + lab.lease(1).str()))
      << read_file(lab.log_file(0));
  EXPECT_TRUE(wait_log(lab, 0,
                       "extension: SubnetAddCommand for " + lab.lease(2).str() + " `" + add +
                           "` timed out after 1 s (CommandTimeout) and was killed after "))
      << read_file(lab.log_file(0));
  // The other hosts are unaffected: full routes, and the data each add got on stdin.
  for (int i = 1; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      if (i == j) continue;
      EXPECT_TRUE(wait_until([&] { return !lab.route(i, lab.lease(j)).empty(); }, 10s))
          << "host " << i + 1 << " -> " << j + 1 << "\n"
          << lab.dump();
    }
  }
  std::string runs = read_file(add + ".runs");
  EXPECT_NE(runs.find("h2 " + lab.lease(0).str() + " 10.250.0.1 key-h1\n"), std::string::npos)
      << runs;
  EXPECT_NE(runs.find("h3 " + lab.lease(1).str() + " 10.250.0.2 key-h2\n"), std::string::npos)
      << runs;

  // Untrusted BackendData: a lease whose BackendData is no JSON string is refused and runs
  // nothing; one whose string holds shell syntax reaches the command verbatim, as data on stdin.
  std::vector<std::string> spare;
  for (int n = 250; spare.size() < 2; ++n) {
    std::string net = "10.5." + std::to_string(n) + ".0/24";
    bool used = false;
    for (int i = 0; i < 3; ++i) used = used || lab.lease(i).str() == net;
    if (!used) spare.push_back(net);
  }
  const std::string payload = "$(touch " + lab.dir() + "/pwned) `touch " + lab.dir() + "/pwned`";
  auto hostile = [](const std::string& subnet, const std::string& ip, const std::string& data) {
    Lease l;
    l.subnet = IP4Net::parse(subnet);
    l.attrs = {IP4::parse(ip), "extension", data};
    return l;
  };
  {
    SqliteOptions o;
    o.path = lab.dir() + "/store.db";
    auto store = SqliteStore::open(o);
    Lease created;
    ASSERT_TRUE(
        store->create_lease(hostile(spare[0], "10.250.0.8", R"({"VtepMAC":"x"})"), 0s, &created)
            .ok());
    ASSERT_TRUE(store
                    ->create_lease(hostile(spare[1], "10.250.0.9", json_util::go_quote(payload)),
                                   0s, &created)
                    .ok());
  }
  EXPECT_TRUE(
      wait_log(lab, 1, "(bad_backend_data): BackendData {\"VtepMAC\":\"x\"} is not a JSON string"))
      << read_file(lab.log_file(1));
  EXPECT_TRUE(wait_until(
      [&] {
        return read_file(add + ".runs").find("h2 " + spare[1] + " 10.250.0.9 " + payload + "\n") !=
               std::string::npos;
      },
      10s))
      << read_file(add + ".runs");
  EXPECT_EQ(read_file(add + ".runs").find(spare[0]), std::string::npos) << "a refused lease ran";
  EXPECT_FALSE(std::filesystem::exists(lab.dir() + "/pwned")) << "BackendData reached a shell";

  // Host 1's agent is still running and still follows the store: a removed lease runs its
  // SubnetRemoveCommand there (the route was never added, so `ip` fails, logged as such).
  ASSERT_TRUE(lab.daemon(0)->running()) << read_file(lab.log_file(0));
  EXPECT_EQ(lab.stop(2), 0);
  ASSERT_EQ(lab.ctl({"subnets", "rm", lab.lease(2).str()}, &out), 0) << out;
  EXPECT_TRUE(wait_log(lab, 0,
                       "extension: SubnetRemoveCommand for " + lab.lease(2).str() +
                           " `ip route del " + lab.lease(2).str() +
                           " via 10.250.0.3` exited "
                           "with status 2"))
      << read_file(lab.log_file(0));
  EXPECT_TRUE(wait_until([&] { return lab.route(1, lab.lease(2)).empty(); }, 10s)) << lab.dump();
  EXPECT_TRUE(lab.daemon(0)->running()) << read_file(lab.log_file(0));
}

}  // namespace
}  // namespace flannel::testing
