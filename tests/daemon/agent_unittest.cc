// The agent's state machine, driven through every branch with an in-memory Store and a
// recording Backend: acquisition, peer deltas and syncs, a lease deleted / taken over / refused
// on renewal, lost history, store resets (same subnet, subnet taken, config gone or changed),
// the periodic lease check, backend failures, watch errors, stop. Milliseconds per case.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/admission.h"
#include "daemon/agent/agent.h"
#include "tests/daemon/agent_state_fixture.h"
#include "tests/daemon/memory_store.h"
#include "tests/daemon/recording_backend.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;
using Op = MemoryStore::Op;

// The subnet.env line for holding `subnet`: its first address, as flannel writes it.
std::string subnet_line(const IP4Net& subnet) {
  IP4 first = subnet.network().ip;
  first.value += 1;
  return "FLANNEL_SUBNET=" + first.str() + "/" + std::to_string(subnet.prefix) + "\n";
}

TEST_F(AgentStateMachine, AcquiresWritesSubnetFileAndSyncsThePeersThatExist) {
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  start_holding();
  EXPECT_EQ(agent_->state(), AgentState::kHolding);
  EXPECT_TRUE(store_has_ours(own()));
  EXPECT_NE(own(), IP4Net::parse("10.5.7.0/24"));
  EXPECT_EQ(journal_->peer_set(), std::set<IP4Net>{IP4Net::parse("10.5.7.0/24")});
  std::string env = subnet_file();
  EXPECT_NE(env.find("FLANNEL_NETWORK=10.5.0.0/16\n"), std::string::npos) << env;
  EXPECT_NE(env.find(subnet_line(own())), std::string::npos) << env;
  EXPECT_NE(env.find("FLANNEL_MTU=1450\n"), std::string::npos) << env;
  EXPECT_EQ(metrics_.peers.load(), 1u);
  EXPECT_FALSE(journal_->read([](auto& j) { return j.saw_own_subnet; }));
}

TEST_F(AgentStateMachine, SyncsAnEmptyPeerSetSoTheBackendCanRemoveStaleState) {
  start_holding();
  EXPECT_EQ(journal_->read([](auto& j) { return j.syncs; }), 1u);
  EXPECT_TRUE(journal_->peer_set().empty());
}

TEST_F(AgentStateMachine, PeerChangesArriveAsDeltasAndNeverNameOurSubnet) {
  start_holding();
  store_.put_lease(peer("10.5.8.0/24", "10.250.0.8"));
  ASSERT_TRUE(wait_until([&] { return journal_->peer_set().count(IP4Net::parse("10.5.8.0/24")); },
                         kAgentTimeout));
  store_.remove_lease(IP4Net::parse("10.5.8.0/24"));
  ASSERT_TRUE(wait_until([&] { return journal_->peer_set().empty(); }, kAgentTimeout));
  EXPECT_EQ(journal_->read([](auto& j) { return j.syncs; }), 1u);  // deltas, not full syncs
  EXPECT_GE(journal_->read([](auto& j) { return j.applies; }), 2u);
  EXPECT_FALSE(journal_->read([](auto& j) { return j.saw_own_subnet; }));
}

// Leases no honest host writes (issue 18's measurements: a default route, the underlay's prefix,
// this host's own address, a loopback gateway) are refused before the backend sees them: never
// programmed, never deleted, counted and reported once.
TEST_F(AgentStateMachine, HostileLeasesNeverReachTheBackendAndStayInTheStore) {
  const IP4Net everything = IP4Net::parse("0.0.0.0/0"), underlay = IP4Net::parse("10.250.0.0/24"),
               loopback = IP4Net::parse("10.5.9.0/24"), ours = IP4Net::parse("10.5.10.0/24");
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  store_.put_lease(peer("0.0.0.0/0", "10.250.0.9"));
  store_.put_lease(peer("10.250.0.0/24", "10.250.0.8"));
  start_holding();
  EXPECT_EQ(journal_->peer_set(), std::set<IP4Net>{IP4Net::parse("10.5.7.0/24")});
  EXPECT_EQ(metrics_.refused_leases.load(), 2u);
  EXPECT_EQ(metrics_.refusals[size_t(RefusalReason::kOutsideNetwork)].load(), 2u);
  // Through the watch as well. (A lease with our address written before we start is adopted as
  // our previous lease, as flannel does; one written while we hold ours is someone else's.)
  store_.put_lease(peer("10.5.9.0/24", "127.0.0.1"));
  store_.put_lease(peer("10.5.10.0/24", "10.250.0.1"));  // iface_'s address
  ASSERT_TRUE(wait_until([&] { return metrics_.refused_leases.load() == 4; }, kAgentTimeout));
  EXPECT_EQ(metrics_.refusals[size_t(RefusalReason::kBadPublicIP)].load(), 1u);
  EXPECT_EQ(metrics_.refusals[size_t(RefusalReason::kOwnAddress)].load(), 1u);
  auto ever = journal_->read([](auto& j) { return j.ever; });
  for (const auto& s : {everything, underlay, loopback, ours}) {
    EXPECT_FALSE(ever.count(s)) << s.str();
    EXPECT_TRUE(store_.lease(s).has_value()) << s.str() << " was deleted";
  }
  // A peer rewritten with a hostile value is removed from the backend.
  store_.put_lease(peer("10.5.7.0/24", "224.0.0.5"));
  ASSERT_TRUE(wait_until([&] { return journal_->peer_set().empty(); }, kAgentTimeout));
  EXPECT_EQ(metrics_.refused_leases.load(), 5u);
  EXPECT_EQ(agent_->state(), AgentState::kHolding);
}

TEST_F(AgentStateMachine, ANetworkThatHoldsThisHostsAddressIsRefusedUntilFixed) {
  store_.set_config(R"({"Network":"10.250.0.0/16","Backend":{"Type":"vxlan"}})");
  start();
  ASSERT_TRUE(wait_until([&] { return store_.calls(Op::kGetConfig) >= 2; }, kAgentTimeout));
  EXPECT_EQ(agent_->state(), AgentState::kWaitingForConfig);
  EXPECT_EQ(acquisitions(), 0u);
  store_.set_config(kConfig);
  ASSERT_TRUE(wait_until([&] { return agent_->ready(); }, kAgentTimeout));
}

TEST_F(AgentStateMachine, ADeletedLeaseIsReacquiredWithTheSameSubnet) {
  start_holding();
  IP4Net mine = own();
  store_.remove_lease(mine);
  ASSERT_TRUE(
      wait_until([&] { return acquisitions() == 2 && store_has_ours(mine) && agent_->ready(); },
                 kAgentTimeout));
  EXPECT_EQ(own(), mine);
  EXPECT_EQ(metrics_.leases_lost.load(), 1u);
}

TEST_F(AgentStateMachine, ALeaseTakenOverIsNotStolenBackAndTheSubnetFileFollows) {
  start_holding();
  IP4Net mine = own();
  store_.put_lease(peer(mine.str().c_str(), "10.250.0.9"));
  ASSERT_TRUE(wait_until([&] { return acquisitions() == 2 && agent_->ready(); }, kAgentTimeout));
  IP4Net moved = own();
  EXPECT_NE(moved, mine);
  EXPECT_TRUE(store_has_ours(moved));
  EXPECT_EQ(store_.lease(mine)->attrs.public_ip, IP4::parse("10.250.0.9"));  // still theirs
  EXPECT_NE(subnet_file().find(subnet_line(moved)), std::string::npos);
  // The other host's lease is now a peer.
  ASSERT_TRUE(wait_until([&] { return journal_->peer_set().count(mine) == 1; }, kAgentTimeout));
}

TEST_F(AgentStateMachine, ARenewalRefusedAsConflictReacquiresAndRenewsAgain) {
  settings_.lease_ttl = 2s;
  settings_.renew_margin = 1s;  // first renewal 1 s after the grant
  store_.fail_next(Op::kRenew, Status::Error(StoreCode::kConflict, "replaced"));
  start_holding();
  IP4Net mine = own();
  uint64_t first = store_.lease(mine)->revision;
  ASSERT_TRUE(
      wait_until([&] { return metrics_.leases_lost.load() == 1 && agent_->ready(); }, 4000ms));
  // Re-acquiring found our own lease and renewed it (kExisting): same subnet, new revision.
  ASSERT_TRUE(wait_until([&] { return store_.lease(mine)->revision > first; }, kAgentTimeout));
  EXPECT_EQ(own(), mine);
  EXPECT_TRUE(store_has_ours(mine));
}

TEST_F(AgentStateMachine, ARenewalRetriesAfterATransportError) {
  settings_.lease_ttl = 2s;
  settings_.renew_margin = 1s;
  store_.fail_next(Op::kRenew, Status::Error(StoreCode::kUnavailable, "connection refused"));
  start_holding();
  IP4Net mine = own();
  uint64_t first = store_.lease(mine)->revision;
  ASSERT_TRUE(wait_until([&] { return metrics_.lease_renewals.load() >= 1; }, 4000ms));
  EXPECT_GT(store_.lease(mine)->revision, first);
  EXPECT_EQ(metrics_.leases_lost.load(), 0u);
  EXPECT_GE(metrics_.lease_renewal_failures.load(), 1u);
}

TEST_F(AgentStateMachine, LostHistoryResyncsPeersAndNoticesOurLeaseWentMissing) {
  start_holding();
  IP4Net mine = own();
  store_.put_lease(peer("10.5.9.0/24", "10.250.0.9"), 3600s, /*seen=*/false);
  store_.remove_lease(mine, /*seen=*/false);
  store_.drop_history();
  ASSERT_TRUE(
      wait_until([&] { return journal_->peer_set().count(IP4Net::parse("10.5.9.0/24")) == 1; },
                 kAgentTimeout));
  ASSERT_TRUE(wait_until([&] { return store_has_ours(mine) && agent_->ready(); }, kAgentTimeout));
  EXPECT_EQ(metrics_.watch_resyncs.load(), 1u);
  EXPECT_EQ(metrics_.leases_lost.load(), 1u);
  EXPECT_GE(journal_->read([](auto& j) { return j.syncs; }), 2u);
}

TEST_F(AgentStateMachine, AStoreResetReRegistersTheSameSubnetAndLearnsLeasesWrittenAfterIt) {
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  start_holding();
  IP4Net mine = own();
  std::string env_before = subnet_file();
  store_.wipe();
  store_.put_lease(peer("10.5.11.0/24", "10.250.0.11"));  // written after the reset
  ASSERT_TRUE(wait_until(
      [&] { return metrics_.store_resets.load() == 1 && agent_->ready() && store_has_ours(mine); },
      kAgentTimeout));
  // The peer that has not re-registered yet stays programmed (its pods keep working).
  const std::set<IP4Net> both{IP4Net::parse("10.5.7.0/24"), IP4Net::parse("10.5.11.0/24")};
  ASSERT_TRUE(wait_until([&] { return journal_->peer_set() == both; }, kAgentTimeout));
  EXPECT_EQ(own(), mine);
  EXPECT_EQ(subnet_file(), env_before);
  EXPECT_EQ(metrics_.leases_lost.load(), 0u);
  // It re-registers: nothing changes. The agent has handled that once it waits for what follows.
  const Lease back = store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  ASSERT_TRUE(wait_until([&] { return store_.watching_from(back.revision); }, kAgentTimeout));
  EXPECT_EQ(journal_->peer_set(), both);
}

TEST_F(AgentStateMachine, AfterTheResetGracePeersThatNeverCameBackAreRemoved) {
  settings_.reset_grace = 100ms;
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  start_holding();
  store_.wipe();
  store_.put_lease(peer("10.5.11.0/24", "10.250.0.11"));
  ASSERT_TRUE(wait_until(
      [&] { return journal_->peer_set() == std::set<IP4Net>{IP4Net::parse("10.5.11.0/24")}; },
      kAgentTimeout));
  EXPECT_EQ(metrics_.store_resets.load(), 1u);
  EXPECT_TRUE(agent_->ready());
}

TEST_F(AgentStateMachine, AStoreResetWithTheConfigGoneWaitsAndMovesIfOurSubnetWasTaken) {
  start_holding();
  IP4Net mine = own();
  store_.wipe(/*keep_config=*/false);
  ASSERT_TRUE(
      wait_until([&] { return agent_->state() == AgentState::kWaitingForConfig; }, kAgentTimeout));
  EXPECT_FALSE(agent_->ready());
  store_.put_lease(peer(mine.str().c_str(), "10.250.0.9"));  // another host got there first
  store_.set_config(kConfig);
  ASSERT_TRUE(wait_until([&] { return agent_->ready() && acquisitions() == 2; }, kAgentTimeout));
  IP4Net moved = own();
  EXPECT_NE(moved, mine);
  EXPECT_TRUE(store_has_ours(moved));
  EXPECT_NE(subnet_file().find(subnet_line(moved)), std::string::npos);
  ASSERT_TRUE(
      wait_until([&] { return journal_->peer_set() == std::set<IP4Net>{mine}; }, kAgentTimeout));
}

TEST_F(AgentStateMachine, AStoreResetWithAChangedNetworkMovesIntoIt) {
  start_holding();
  store_.wipe(/*keep_config=*/false);
  store_.set_config(R"({"Network":"10.6.0.0/16","Backend":{"Type":"vxlan"}})");
  ASSERT_TRUE(wait_until([&] { return agent_->ready() && acquisitions() == 2; }, kAgentTimeout));
  EXPECT_TRUE(IP4Net::parse("10.6.0.0/16").contains(own()));
  EXPECT_NE(subnet_file().find("FLANNEL_NETWORK=10.6.0.0/16\n"), std::string::npos)
      << subnet_file();
}

TEST_F(AgentStateMachine, AResetReportedByTheLeaseCheckIsHandledLikeOneFromTheWatch) {
  settings_.lease_check_interval = 30ms;
  start_holding();
  IP4Net mine = own();
  store_.fail_next(Op::kGetLease, Status::Error(StoreCode::kStoreReset, "cluster id changed"));
  ASSERT_TRUE(wait_until([&] { return metrics_.store_resets.load() == 1 && agent_->ready(); },
                         kAgentTimeout));
  EXPECT_EQ(own(), mine);
  EXPECT_TRUE(store_has_ours(mine));
}

TEST_F(AgentStateMachine, AResetRightAfterOurWriteIsCaughtByTheFirstWatch) {
  store_.wipe_at(Op::kWatch, 0);  // the agent's first watch, just after it created its lease
  start_holding();
  IP4Net mine = own();
  // The periodic check is off (interval 0), yet the lease is re-created, with the same subnet.
  ASSERT_TRUE(wait_until(
      [&] { return metrics_.store_resets.load() == 1 && store_has_ours(mine) && agent_->ready(); },
      kAgentTimeout));
  EXPECT_EQ(own(), mine);
  EXPECT_EQ(acquisitions(), 2u);
  EXPECT_EQ(store_.calls(Op::kList), 2u);  // one per acquisition, no second list for the peers
}

TEST_F(AgentStateMachine, TheFirstPeerSetIsTheListTheLeaseWasChosenFrom) {
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  store_.put_lease(peer("10.5.8.0/24", "10.250.0.8"));
  start_holding();
  EXPECT_EQ(journal_->peer_set(),
            (std::set<IP4Net>{IP4Net::parse("10.5.7.0/24"), IP4Net::parse("10.5.8.0/24")}));
  EXPECT_EQ(store_.calls(Op::kList), 1u);  // 10,000 peers are listed and decoded once, not twice
  // The watch continues from that list's revision: our own write is its echo, not a loss,
  // and what comes after it arrives.
  store_.put_lease(peer("10.5.9.0/24", "10.250.0.9"));
  ASSERT_TRUE(
      wait_until([&] { return journal_->peer_set().count(IP4Net::parse("10.5.9.0/24")) == 1; },
                 kAgentTimeout));
  EXPECT_EQ(metrics_.leases_lost.load(), 0u);
  EXPECT_EQ(acquisitions(), 1u);
  EXPECT_EQ(store_.calls(Op::kList), 1u);
}

TEST_F(AgentStateMachine, TheLeaseCheckNoticesASilentLoss) {
  settings_.lease_check_interval = 30ms;
  start_holding();
  IP4Net mine = own();
  store_.remove_lease(mine, /*seen=*/false);
  ASSERT_TRUE(wait_until([&] { return store_has_ours(mine) && metrics_.leases_lost.load() == 1; },
                         kAgentTimeout));
  EXPECT_TRUE(wait_until([&] { return agent_->ready(); }, kAgentTimeout));
  EXPECT_GE(store_.calls(Op::kGetLease), 1u);
}

TEST_F(AgentStateMachine, WithoutTheLeaseCheckASilentLossGoesUnnoticed) {
  start_holding();
  IP4Net mine = own();
  store_.remove_lease(mine, /*seen=*/false);
  std::this_thread::sleep_for(150ms);  // proving an absence: nothing may happen in this time
  EXPECT_EQ(store_.calls(Op::kGetLease), 0u);
  EXPECT_FALSE(store_.lease(mine));
}

TEST_F(AgentStateMachine, AFailedBackendApplyIsRepairedByAFullSync) {
  start_holding();
  journal_->fail_next_applies(1);
  store_.put_lease(peer("10.5.12.0/24", "10.250.0.12"));
  ASSERT_TRUE(
      wait_until([&] { return journal_->peer_set().count(IP4Net::parse("10.5.12.0/24")) == 1; },
                 kAgentTimeout));
  EXPECT_EQ(journal_->read([](auto& j) { return j.syncs; }), 2u);
}

TEST_F(AgentStateMachine, AWatchErrorIsRetriedAndEventsStillArrive) {
  start_holding();
  store_.fail_next(Op::kWatch, Status::Error(StoreCode::kUnavailable, "connection refused"));
  store_.put_lease(peer("10.5.13.0/24", "10.250.0.13"));
  ASSERT_TRUE(
      wait_until([&] { return journal_->peer_set().count(IP4Net::parse("10.5.13.0/24")) == 1; },
                 kAgentTimeout));
  EXPECT_GE(metrics_.store_errors.load(), 1u);
  EXPECT_TRUE(agent_->ready());
}

TEST_F(AgentStateMachine, AfterAnOutageAMissingLeaseIsHandledAsAStoreReset) {
  // A wiped store that already wrote past our cursor cannot be told apart by its revisions;
  // after the outage our lease is gone and a peer we got no event for is there.
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  start_holding();
  IP4Net mine = own();
  store_.remove_lease(mine, /*seen=*/false);
  store_.remove_lease(IP4Net::parse("10.5.7.0/24"), /*seen=*/false);
  store_.put_lease(peer("10.5.14.0/24", "10.250.0.14"), 3600s, /*seen=*/false);
  store_.fail_next(Op::kWatch, Status::Error(StoreCode::kUnavailable, "connection reset"));
  const std::set<IP4Net> both{IP4Net::parse("10.5.7.0/24"), IP4Net::parse("10.5.14.0/24")};
  ASSERT_TRUE(wait_until([&] { return store_has_ours(mine) && journal_->peer_set() == both; },
                         kAgentTimeout));
  EXPECT_EQ(metrics_.store_resets.load(), 1u);
  EXPECT_EQ(metrics_.leases_lost.load(), 0u);
  EXPECT_EQ(own(), mine);
}

TEST_F(AgentStateMachine, AfterAnOutageThePeersAreListedAgain) {
  start_holding();
  store_.put_lease(peer("10.5.15.0/24", "10.250.0.15"), 3600s, /*seen=*/false);
  store_.fail_next(Op::kWatch, Status::Error(StoreCode::kUnavailable, "connection reset"));
  ASSERT_TRUE(
      wait_until([&] { return journal_->peer_set().count(IP4Net::parse("10.5.15.0/24")) == 1; },
                 kAgentTimeout));
  EXPECT_EQ(metrics_.store_resets.load(), 0u);
  EXPECT_GE(store_.calls(Op::kGetLease), 1u);
}

TEST_F(AgentStateMachine, ConfigMissingThenWrittenIsPickedUp) {
  store_.remove_config();
  start();
  ASSERT_TRUE(wait_until([&] { return store_.calls(Op::kGetConfig) >= 2; }, kAgentTimeout));
  EXPECT_EQ(agent_->state(), AgentState::kWaitingForConfig);
  EXPECT_FALSE(agent_->ready());
  store_.set_config(kConfig);
  ASSERT_TRUE(wait_until([&] { return agent_->ready(); }, kAgentTimeout));
}

TEST_F(AgentStateMachine, StopsPromptlyWhileWaitingForConfigAndWhileHolding) {
  store_.remove_config();
  start();
  ASSERT_TRUE(wait_until([&] { return store_.calls(Op::kGetConfig) >= 1; }, kAgentTimeout));
  auto t0 = std::chrono::steady_clock::now();
  stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  EXPECT_EQ(rc_, 0);
  EXPECT_EQ(agent_->state(), AgentState::kStopping);

  store_.set_config(kConfig);
  settings_.max_watch_wait = 30000ms;
  start_holding();
  t0 = std::chrono::steady_clock::now();
  stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  EXPECT_EQ(rc_, 0);
  EXPECT_TRUE(store_has_ours(own()));  // never released on shutdown
}

TEST_F(AgentStateMachine, AnUnknownBackendIsFatal) {
  store_.set_config(R"({"Network":"10.5.0.0/16","Backend":{"Type":"ipsec"}})");
  start();
  thread_.join();
  EXPECT_EQ(rc_, 1);
  EXPECT_EQ(store_.calls(Op::kCreate), 0u);
}

}  // namespace
}  // namespace flannel::testing
