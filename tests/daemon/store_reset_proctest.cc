// A cluster whose store lost its data converges by itself (SQLite, etcd v2, etcd v3 with the v2
// API off; the v3 case is also the three-host vxlan mesh over v3-only etcd): three flanneld on
// vxlan in a namespace lab, pods pinging across hosts; the store is wiped under them (etcd stopped,
// data dir deleted, restarted; or the SQLite file deleted and a new one created), the config is
// written again as a restore would, and a fourth host joins once the three re-registered. Every
// agent must re-register its own subnet, every host must route to every lease (the new one
// included) within 5 s of the store answering again, no agent may exit, and a ping running through
// it all must not lose more than one packet.
#include <signal.h>

#include <chrono>
#include <iostream>
#include <regex>
#include <set>

#include "tests/daemon/agent_fixture.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kConfig = R"({"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}})";

class StoreResetTest : public AgentTest {
 protected:
  std::string route(int i, const IP4Net& dst) {
    std::string out;
    run_command({"ip", "route", "show", dst.str()}, &out, host(i).netns);
    return out;
  }
  bool full_mesh(const std::map<int, IP4Net>& subnets) {
    for (const auto& [i, _] : subnets)
      for (const auto& [j, s] : subnets)
        if (i != j && route(i, s).find("dev flannel.1") == std::string::npos) return false;
    return true;
  }
  bool all_registered(const std::map<int, IP4Net>& subnets) {
    auto stored = lease_subnets();
    std::set<IP4Net> have(stored.begin(), stored.end());
    for (const auto& [i, s] : subnets)
      if (!have.count(s)) return false;
    return true;
  }
};

TEST_P(StoreResetTest, AgentsReRegisterAndConvergeAfterTheStoreIsWiped) {
  set_config(kConfig);
  std::map<int, IP4Net> subnets;
  for (int i = 1; i <= 3; ++i) start_agent(i);
  std::vector<Lab::Pod> pods;
  for (int i = 1; i <= 3; ++i) {
    auto s = wait_subnet(i);
    ASSERT_TRUE(s) << "host " << i << " got no lease";
    subnets[i] = *s;
    IP4Net gw = *s;
    gw.ip.value += 1;
    pods.push_back(lab_->add_pod(host(i), gw));
  }
  ASSERT_TRUE(wait_until([&] { return full_mesh(subnets); }, 10s));

  // A ping from pod 1 to pod 2 that runs through the whole reset (5 per second).
  Process ping(Process::Spec{{"ping", "-i", "0.2", "-W", "1", pods[1].addr.str()},
                             {},
                             {},
                             pods[0].netns,
                             dir_ + "/ping.log"});

  store_->wipe_and_restart();
  const auto answered = std::chrono::steady_clock::now();
  set_config(kConfig);  // as a restore would bring it back
  // The three re-register first: a newcomer started at once may, rightly, take a subnet whose
  // holder has not noticed the reset yet (3 of the first 100 free subnets were ours), and
  // that holder then moves to another one, as it should.
  ASSERT_TRUE(wait_until([&] { return all_registered(subnets); }, 10s))
      << "not re-registered 10 s after the reset";
  start_agent(4);  // a lease written after the reset
  auto s4 = wait_subnet(4);
  ASSERT_TRUE(s4);
  subnets[4] = *s4;
  bool converged = wait_until([&] { return all_registered(subnets) && full_mesh(subnets); }, 10s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - answered);
  std::cout << "[ measured ] " << to_string(GetParam())
            << " store reset: all 4 agents registered and "
            << "meshed " << took.count() << " ms after the store answered again\n";
  ASSERT_TRUE(converged) << "not converged 10 s after the reset";
  EXPECT_LT(took, 5s);

  for (int i = 1; i <= 3; ++i) {
    EXPECT_TRUE(agent(i).running()) << "flanneld h" << i << " exited";
    EXPECT_EQ(wait_subnet(i), subnets[i]) << "host " << i << " changed its subnet";
  }
  std::string log = read_file(log_file(1));
  EXPECT_NE(log.find("was reset"), std::string::npos);
  EXPECT_NE(
      log.find("Store reset handled: lease " + subnets[1].str() + " re-registered (same subnet)"),
      std::string::npos);

  // Pods still reach each other, the newcomer's too.
  IP4Net gw4 = subnets[4];
  gw4.ip.value += 1;
  pods.push_back(lab_->add_pod(host(4), gw4));
  for (size_t a = 0; a < pods.size(); ++a) {
    for (size_t b = 0; b < pods.size(); ++b) {
      if (a == b) continue;
      bool ok = wait_until(
          [&] {
            return run_command({"ping", "-c", "1", "-W", "1", pods[b].addr.str()}, nullptr,
                               pods[a].netns) == 0;
          },
          5s);
      EXPECT_TRUE(ok) << "pod " << a + 1 << " cannot ping pod " << b + 1;
    }
  }

  // Let the ping run on after the reset too (a fast reset can be over within two pings).
  auto replies = [&] {
    std::string text = read_file(dir_ + "/ping.log");
    size_t n = 0;
    for (size_t at = text.find("bytes from"); at != std::string::npos;
         at = text.find("bytes from", at + 1))
      ++n;
    return n;
  };
  const size_t before = replies();
  EXPECT_TRUE(wait_until([&] { return replies() >= before + 5; }, 5s))
      << "the ping stopped answering";
  ping.signal(SIGINT);
  ASSERT_TRUE(ping.wait(3s));
  std::string out = read_file(dir_ + "/ping.log");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"((\d+) packets transmitted, (\d+) received)")))
      << out;
  int sent = std::stoi(m[1]), received = std::stoi(m[2]);
  EXPECT_GE(sent, 3) << out;
  EXPECT_LE(sent - received, 1) << "pings lost during the reset:\n" << out;
  if (HasFailure()) {
    for (int i = 1; i <= 4; ++i)
      std::cerr << "---- flanneld h" << i << ":\n" << read_file(log_file(i));
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreResetTest,
                         ::testing::Values(LabStore::Kind::kSqlite, LabStore::Kind::kEtcd,
                                           LabStore::Kind::kEtcdV3),
                         KindName);

}  // namespace
}  // namespace flannel::testing
