// flanneld as users run it: real processes in lab namespaces, against a real etcd (in the hub
// namespace, written with etcdctl as the seeds do) and against one shared SQLite file.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <set>

#include "core/lease.h"
#include "core/subnet_env.h"
#include "stores/sqlite/sqlite_store.h"
#include "tests/daemon/agent_fixture.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

// Seed 000/004's config with the backend that needs no data plane.
constexpr const char* kAllocConfig =
    R"({"Network":"172.30.0.0/16", "SubnetLen": 24, "Backend": {"Type": "alloc"}})";

TEST_P(AgentTest, SeedFlowWritesFlannelLeaseAndSubnetEnv) {
  set_config(kAllocConfig);
  start_agent(1);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  EXPECT_EQ(subnet->prefix, 24);
  EXPECT_TRUE(IP4Net::parse("172.30.0.0/16").contains(*subnet));
  EXPECT_NE(subnet->ip, IP4::parse("172.30.0.0")) << "the first subnet is skipped (SubnetMin)";

  // The lease key and value flannel v0.11 writes.
  EXPECT_EQ(lease_value(*subnet), R"({"PublicIP":"10.250.0.1"})");
  if (store_->kind() == LabStore::Kind::kEtcd) {
    std::string ls;
    ASSERT_EQ(store_->etcdctl({"ls", store_->prefix() + "/subnets"}, &ls), 0);
    EXPECT_EQ(ls, store_->prefix() + "/subnets/" + subnet_key(*subnet) + "\n");
  }
  // subnet.env exactly as flannel writes it.
  std::string env = read_file(subnet_file(1));
  std::string third = std::to_string((subnet->ip.value >> 8) & 0xff);
  EXPECT_EQ(env, "FLANNEL_NETWORK=172.30.0.0/16\nFLANNEL_SUBNET=172.30." + third +
                     ".1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n");
  // The log lines operators grep for, in glog layout.
  std::regex acquired(R"(I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [a-z_]+\.cc:\d+\] Lease acquired: )" +
                      subnet->str());
  EXPECT_TRUE(std::regex_search(agent(1).output(), acquired)) << agent(1).output();
  EXPECT_NE(agent(1).output().find("Using interface with name eth0 and address 10.250.0.1"),
            std::string::npos);
}

TEST_P(AgentTest, RestartIsHitlessAndKeepsTheSubnet) {
  set_config(kAllocConfig);
  start_agent(1);
  auto first = wait_subnet(1);
  ASSERT_TRUE(first);
  stop_agent(1);
  // Nothing is released on shutdown: the lease and the file stay.
  EXPECT_EQ(lease_value(*first), R"({"PublicIP":"10.250.0.1"})");
  EXPECT_TRUE(std::filesystem::exists(subnet_file(1)));
  EXPECT_NE(agent(1).output().find("Exiting cleanly"), std::string::npos);

  std::filesystem::remove(subnet_file(1));  // reuse must come from the store, not the file
  start_agent(1);
  auto second = wait_subnet(1);
  ASSERT_TRUE(second);
  EXPECT_EQ(*second, *first);
  EXPECT_EQ(lease_subnets().size(), 1u);
}

// SIGQUIT stops as cleanly as SIGTERM but exits with status 2, as v0.11's Go runtime did: seed
// 002's supervisord runs flanneld with stopsignal=QUIT and exitcodes=0,2 (tests/nodes
// supervisord_test.sh). Without a handler SIGQUIT's default action killed flanneld (core dump).
TEST_P(AgentTest, SigquitStopsCleanlyWithExitStatus2) {
  set_config(kAllocConfig);
  start_agent(1);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  agent(1).signal(SIGQUIT);
  auto code = agent(1).wait(5s);
  ASSERT_TRUE(code.has_value()) << "flanneld did not exit within 5 s of SIGQUIT";
  EXPECT_EQ(*code, 2) << agent(1).output();
  EXPECT_NE(agent(1).output().find("Received SIGQUIT, shutting down"), std::string::npos)
      << agent(1).output();
  EXPECT_EQ(lease_value(*subnet), R"({"PublicIP":"10.250.0.1"})");
  EXPECT_TRUE(std::filesystem::exists(subnet_file(1)));
}

TEST_P(AgentTest, DeletedLeaseIsReacquired) {
  set_config(kAllocConfig);
  start_agent(1);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet);
  std::string out;
  ASSERT_EQ(store_->ctl({"subnets", "rm", subnet->str()}, &out), 0) << out;
  // The agent notices through its watch and takes the same (now free) subnet back.
  EXPECT_TRUE(
      wait_until([&] { return lease_value(*subnet) == R"({"PublicIP":"10.250.0.1"})"; }, 5s))
      << agent(1).output();
  EXPECT_TRUE(wait_until(
      [&] {
        auto log = agent(1).output();
        return log.find("re-acquiring") != std::string::npos &&
               log.rfind("Lease acquired: " + subnet->str()) > log.find("re-acquiring");
      },
      5s))
      << agent(1).output();
  EXPECT_TRUE(agent(1).running());
}

TEST_P(AgentTest, LeaseTakenOverByAnotherHostIsNotStolenBack) {
  if (store_->kind() != LabStore::Kind::kEtcd) {
    GTEST_SKIP() << "only an etcd client (a v0.11 agent) can overwrite a lease unconditionally";
  }
  set_config(kAllocConfig);
  start_agent(1);
  auto mine = wait_subnet(1);
  ASSERT_TRUE(mine);
  // What a v0.11 agent does with a stale subnet.env naming our subnet (upstream #1289).
  std::string out;
  ASSERT_EQ(store_->etcdctl({"set", store_->prefix() + "/subnets/" + subnet_key(*mine),
                             R"({"PublicIP":"10.250.0.9"})"},
                            &out),
            0)
      << out;
  std::optional<IP4Net> moved;
  ASSERT_TRUE(wait_until(
      [&] {
        moved = previous_subnet_from_env(parse_env_file(read_file(subnet_file(1))));
        return moved && *moved != *mine;
      },
      5s))
      << agent(1).output();
  EXPECT_EQ(lease_value(*mine), R"({"PublicIP":"10.250.0.9"})") << "the other host keeps it";
  EXPECT_EQ(lease_value(*moved), R"({"PublicIP":"10.250.0.1"})");
  EXPECT_NE(agent(1).output().find("Subnet changed from " + mine->str() + " to " + moved->str()),
            std::string::npos)
      << agent(1).output();
  EXPECT_TRUE(agent(1).running());
}

TEST_P(AgentTest, WatchThatFellBehindTheHistoryResyncs) {
  if (store_->kind() != LabStore::Kind::kSqlite) {
    GTEST_SKIP() << "etcd's resync is covered by the store tests; here the test writes the "
                    "history away in-process, which needs the SQLite file";
  }
  set_config(kAllocConfig);
  const int port = 8471;
  start_agent(1, {"-healthz-port=" + std::to_string(port), "-healthz-ip=127.0.0.1"});
  auto mine = wait_subnet(1);
  ASSERT_TRUE(mine);
  // Freeze the agent, push more than the 1000 kept events through the file, thaw it.
  agent(1).signal(SIGSTOP);
  SqliteOptions so;
  so.path = store_->sqlite_path();
  so.prefix = "/elsewhere";
  auto other = SqliteStore::open(so);
  for (int i = 0; i < 600; ++i) {
    Lease l;
    l.subnet = IP4Net{IP4{(10u << 24) | (static_cast<uint32_t>(i) << 8)}, 24};
    l.attrs.public_ip = IP4::parse("192.0.2.1");
    Lease created;
    ASSERT_TRUE(other->create_lease(l, std::chrono::seconds(0), &created).ok());
    ASSERT_TRUE(other->delete_lease(l.subnet).ok());
  }
  agent(1).signal(SIGCONT);
  EXPECT_TRUE(wait_until(
      [&] {
        return agent(1).output().find("Watch fell behind the store's history") != std::string::npos;
      },
      5s))
      << agent(1).output();
  std::string metrics;
  EXPECT_TRUE(wait_until(
      [&] {
        return http_status(1, port, "/metrics", &metrics) == 200 &&
               metrics.find("flannel_watch_resyncs_total 1") != std::string::npos;
      },
      5s))
      << metrics;
  EXPECT_NE(metrics.find("flannel_ready 1"), std::string::npos) << "the lease is still held";
  EXPECT_EQ(lease_value(*mine), R"({"PublicIP":"10.250.0.1"})");
  EXPECT_EQ(agent(1).output().find("re-acquiring"), std::string::npos) << agent(1).output();
}

TEST_P(AgentTest, MalformedLeasesOfOthersAreSkippedNotDeleted) {
  set_config(kAllocConfig);
  // What a broken tool might leave: a value that is not JSON under a good key, and a key that
  // names no subnet.
  std::string out;
  if (store_->kind() == LabStore::Kind::kEtcd) {
    ASSERT_EQ(
        store_->etcdctl({"set", store_->prefix() + "/subnets/172.30.9.0-24", "not json"}, &out), 0)
        << out;
    ASSERT_EQ(store_->etcdctl({"set", store_->prefix() + "/subnets/garbage", "{}"}, &out), 0)
        << out;
  } else {
    std::string sql =
        "INSERT INTO flannel_leases(prefix, subnet, value, expiration, revision) VALUES"
        "('" +
        store_->prefix() +
        "', '172.30.9.0-24', 'not json', NULL, 1),"
        "('" +
        store_->prefix() + "', 'garbage', '{}', NULL, 1);";
    store_->ctl({"subnets", "list"});  // creates the schema
    ASSERT_EQ(run_command({"sqlite3", store_->sqlite_path(), sql}, &out), 0) << out;
  }
  start_agent(1);
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  EXPECT_NE(*subnet, IP4Net::parse("172.30.9.0/24"));
  EXPECT_NE(agent(1).output().find("Ignoring bad subnet node"), std::string::npos)
      << agent(1).output();
  EXPECT_NE(agent(1).output().find("172.30.9.0-24"), std::string::npos) << agent(1).output();
  EXPECT_TRUE(agent(1).running());
  // Still there, untouched.
  if (store_->kind() == LabStore::Kind::kEtcd) {
    ASSERT_EQ(store_->etcdctl({"get", store_->prefix() + "/subnets/172.30.9.0-24"}, &out), 0);
    EXPECT_EQ(out, "not json\n");
  } else {
    ASSERT_EQ(
        run_command({"sqlite3", store_->sqlite_path(),
                     "SELECT count(*) FROM flannel_leases WHERE value IN ('not json', '{}');"},
                    &out),
        0);
    EXPECT_EQ(out, "2\n");
  }
}

TEST_P(AgentTest, AbsentConfigIsWaitedForAndReadinessFollowsTheLease) {
  const int port = 8471;
  start_agent(1, {"-healthz-port=" + std::to_string(port), "-healthz-ip=127.0.0.1"});
  ASSERT_TRUE(wait_until([&] { return http_status(1, port, "/healthz") == 200; }, 5s))
      << agent(1).output();
  std::string body;
  EXPECT_EQ(http_status(1, port, "/healthz", &body), 200);
  EXPECT_EQ(body, "flanneld is running");
  EXPECT_EQ(http_status(1, port, "/readyz"), 503);
  EXPECT_TRUE(wait_until(
      [&] { return agent(1).output().find("Network config not found") != std::string::npos; }, 5s));
  EXPECT_FALSE(std::filesystem::exists(subnet_file(1)));

  set_config(kAllocConfig);
  ASSERT_TRUE(wait_subnet(1, 10s)) << agent(1).output();
  EXPECT_TRUE(wait_until([&] { return http_status(1, port, "/readyz") == 200; }, 5s));
  EXPECT_EQ(http_status(1, port, "/healthz"), 200);
  EXPECT_EQ(http_status(1, port, "/nope"), 404);
  std::string metrics;
  EXPECT_EQ(http_status(1, port, "/metrics", &metrics), 200);
  EXPECT_NE(metrics.find("flannel_ready 1"), std::string::npos) << metrics;
}

TEST_P(AgentTest, BadConfigIsReportedAndTakesNoLease) {
  set_config(R"({"Network":"10.0.0.0/30"})");
  start_agent(1);
  ASSERT_TRUE(wait_until(
      [&] {
        return agent(1).output().find(
                   "Network is too small. Minimum useful network prefix is /28") !=
               std::string::npos;
      },
      5s))
      << agent(1).output();
  EXPECT_TRUE(agent(1).running()) << "a bad config is waited out, not fatal";
  EXPECT_TRUE(lease_subnets().empty());
  EXPECT_FALSE(std::filesystem::exists(subnet_file(1)));
  // Fixing the config lets the waiting agent proceed.
  set_config(kAllocConfig);
  EXPECT_TRUE(wait_subnet(1, 10s)) << agent(1).output();
}

TEST_P(AgentTest, ThreeAgentsGetThreeDistinctSubnets) {
  set_config(kAllocConfig);
  for (int i = 1; i <= 3; ++i) start_agent(i);
  std::set<IP4Net> subnets;
  for (int i = 1; i <= 3; ++i) {
    auto s = wait_subnet(i);
    ASSERT_TRUE(s) << agent(i).output();
    subnets.insert(*s);
    EXPECT_EQ(lease_value(*s), R"({"PublicIP":"10.250.0.)" + std::to_string(i) + R"("})");
  }
  EXPECT_EQ(subnets.size(), 3u);
}

TEST_P(AgentTest, ThirtyTwoAgentsStartedAtOnceGetDistinctSubnets) {
  // A small network makes collisions likely: 62 subnets of /28 in a /22.
  set_config(R"({"Network":"10.8.0.0/22","SubnetLen":28,"Backend":{"Type":"alloc"}})");
  const int n = 32;
  for (int i = 1; i <= n; ++i) host(i);  // namespaces first, so the agents start together
  for (int i = 1; i <= n; ++i) start_agent(i);
  std::set<IP4Net> subnets;
  for (int i = 1; i <= n; ++i) {
    auto s = wait_subnet(i, 20s);
    ASSERT_TRUE(s) << agent(i).output();
    subnets.insert(*s);
  }
  EXPECT_EQ(subnets.size(), static_cast<size_t>(n));
  auto stored = lease_subnets();
  EXPECT_EQ(stored.size(), static_cast<size_t>(n));
  EXPECT_EQ(std::set<IP4Net>(stored.begin(), stored.end()), subnets);
}

TEST_P(AgentTest, SystemdReadyIsSentOnlyAfterTheSubnetFileExists) {
  std::string sock_path = dir_ + "/notify.sock";
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

  set_config(kAllocConfig);
  start_agent(1, {}, {{"NOTIFY_SOCKET", sock_path}});
  char buf[256];
  ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  bool file_there = std::filesystem::exists(subnet_file(1));
  ::close(fd);
  ASSERT_GT(n, 0) << "no notification within 10 s\n" << agent(1).output();
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "READY=1");
  EXPECT_TRUE(file_there) << "READY=1 arrived before the subnet file was written";
}

TEST_P(AgentTest, EnvironmentVariablesConfigureTheAgent) {
  set_config(kAllocConfig);
  // The flags given as FLANNELD_* instead; a command-line flag still wins over its variable.
  start_agent(1, {"-public-ip=10.250.0.99"},
              {{"FLANNELD_PUBLIC_IP", "10.250.0.77"}, {"FLANNELD_IP_MASQ", "true"}});
  auto subnet = wait_subnet(1);
  ASSERT_TRUE(subnet) << agent(1).output();
  EXPECT_EQ(lease_value(*subnet), R"({"PublicIP":"10.250.0.99"})");
  EXPECT_NE(read_file(subnet_file(1)).find("FLANNEL_IPMASQ=true\n"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Stores, AgentTest,
                         ::testing::Values(LabStore::Kind::kSqlite, LabStore::Kind::kEtcd),
                         KindName);

}  // namespace
}  // namespace flannel::testing
