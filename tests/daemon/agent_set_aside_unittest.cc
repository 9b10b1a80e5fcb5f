// Peers set aside (issue 18): a peer the backend fails to program is retried alone, with
// doubling waits, never by a full sync of the others; one warning when it is set aside, one
// line when it is programmed, the gauge in between. The RecordingBackend refuses the peers in
// Journal::refuse the way host-gw and vxlan do (a PeerFailures naming them); the agent's waits
// are shortened (peer_retry_first 20 ms instead of 1 s) so each case takes well under a second.
#include <spdlog/sinks/ringbuffer_sink.h>

#include <algorithm>
#include <string>
#include <vector>

#include "daemon/common/logging.h"
#include "tests/daemon/agent_state_fixture.h"

namespace flannel::testing {
namespace {

const IP4Net kA = IP4Net::parse("10.5.7.0/24");  // the peer that fails
const IP4Net kB = IP4Net::parse("10.5.8.0/24");  // a healthy one

class AgentSetAside : public AgentStateMachine {
 protected:
  void SetUp() override {
    AgentStateMachine::SetUp();
    set_logging_sink_for_test(log_);  // -v 0: what an operator sees by default
    settings_.peer_retry_first = 20ms;
    settings_.peer_retry_max = 2000ms;
    settings_.max_watch_wait = 30000ms;  // a retry must wake the watch, not wait for its timeout
  }
  void TearDown() override {
    AgentStateMachine::TearDown();  // the agent stops first: no line is logged after this
    shutdown_logging();
  }

  // The logged lines of severity `sev` ('I', 'W', 'E') that contain `text`.
  std::vector<std::string> lines(char sev, const std::string& text) const {
    std::vector<std::string> out;
    for (const auto& l : log_->last_formatted())
      if (!l.empty() && l[0] == sev && l.find(text) != std::string::npos) out.push_back(l);
    return out;
  }
  size_t adds_of(const IP4Net& s) const {
    return journal_->read([&](const RecordingBackend::Journal& j) {
      auto it = j.adds.find(s);
      return it == j.adds.end() ? size_t{0} : it->second.size();
    });
  }
  size_t syncs() const {
    return journal_->read([](auto& j) { return j.syncs; });
  }

  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> log_ =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
};

TEST_F(AgentSetAside, AFailingPeerIsRetriedAloneWithDoublingWaitsAndNoFullSync) {
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  store_.put_lease(peer("10.5.8.0/24", "10.250.0.8"));
  journal_->set_refused({kA});
  start_holding();
  // The first sync plus four retries: 20 + 40 + 80 + 160 ms.
  ASSERT_TRUE(wait_until([&] { return adds_of(kA) >= 5; }, kAgentTimeout));
  auto [times, batches, synced] = journal_->read([](const RecordingBackend::Journal& j) {
    return std::tuple(j.adds.at(kA), j.apply_batches, j.syncs);
  });
  EXPECT_EQ(synced, 1u);  // the old behaviour: a full sync every retry_pause (20 ms here)
  // The loop sleeps in the watch until the next retry is due: a wake or two per retry, no spin.
  EXPECT_LT(store_.calls(MemoryStore::Op::kWatch), 30u);
  for (size_t k = 0; k + 1 < 5; ++k) {  // never sooner than 20 ms * 2^k after the last failure
    EXPECT_GE(times[k + 1] - times[k], 20ms * (1 << k)) << "retry " << k + 1;
  }
  for (const auto& b : batches) EXPECT_EQ(b, std::vector<IP4Net>{kA});  // retried alone
  EXPECT_EQ(adds_of(kB), 1u);  // the healthy peer is never written again
  EXPECT_EQ(journal_->peer_set(), std::set<IP4Net>{kB});
  EXPECT_EQ(metrics_.peers_set_aside.load(), 1u);
  EXPECT_NE(metrics_.render().find("\nflannel_peers_set_aside 1\n"), std::string::npos);

  auto warned = lines('W', "Peer 10.5.7.0/24");
  ASSERT_EQ(warned.size(), 1u);  // once, not once per retry
  EXPECT_NE(warned[0].find("Network is unreachable"), std::string::npos) << warned[0];
  EXPECT_NE(warned[0].find("retrying in 20ms"), std::string::npos) << warned[0];
  EXPECT_TRUE(lines('E', "").empty());

  journal_->set_refused({});  // the gateway is reachable again
  ASSERT_TRUE(wait_until([&] { return journal_->peer_set().count(kA) == 1; }, kAgentTimeout));
  ASSERT_TRUE(wait_until([&] { return metrics_.peers_set_aside.load() == 0; }, kAgentTimeout));
  const std::string attempts = std::to_string(adds_of(kA));
  EXPECT_EQ(lines('I', "Peer 10.5.7.0/24 programmed after " + attempts + " attempts").size(), 1u)
      << "attempts: " << attempts;
  EXPECT_EQ(syncs(), 1u);
  EXPECT_EQ(lines('W', "Peer 10.5.7.0/24").size(), 1u);
}

TEST_F(AgentSetAside, TheWaitStopsDoublingAtTheCap) {
  settings_.peer_retry_first = 10ms;
  settings_.peer_retry_max = 20ms;
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  journal_->set_refused({kA});
  start_holding();
  // Capped: about 170 ms for ten attempts. Doubling on: 10 ms * (2^9 - 1), over 5 s.
  ASSERT_TRUE(wait_until([&] { return adds_of(kA) >= 10; }, kAgentTimeout));
  EXPECT_EQ(syncs(), 1u);
  EXPECT_EQ(lines('W', "Peer 10.5.7.0/24").size(), 1u);
}

TEST_F(AgentSetAside, APeerRemovedFromTheStoreIsNoLongerRetried) {
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  journal_->set_refused({kA});
  start_holding();
  ASSERT_TRUE(wait_until([&] { return adds_of(kA) >= 2; }, kAgentTimeout));
  store_.remove_lease(kA);
  ASSERT_TRUE(wait_until([&] { return metrics_.peers_set_aside.load() == 0; }, kAgentTimeout));
  const size_t tried = adds_of(kA);
  std::this_thread::sleep_for(150ms);  // proving an absence: no retry may come in this time
  EXPECT_EQ(adds_of(kA), tried);
  EXPECT_TRUE(lines('I', "programmed after").empty());
  EXPECT_EQ(syncs(), 1u);
}

TEST_F(AgentSetAside, AChangedPeerStartsAfreshAndItsRecoveryIsReported) {
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  journal_->set_refused({kA});
  start_holding();
  ASSERT_TRUE(wait_until([&] { return adds_of(kA) >= 2; }, kAgentTimeout));
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.17"));  // a new PublicIP, still refused
  ASSERT_TRUE(
      wait_until([&] { return lines('W', "Peer 10.5.7.0/24").size() == 2; }, kAgentTimeout));
  EXPECT_EQ(metrics_.peers_set_aside.load(), 1u);
  journal_->set_refused({});
  ASSERT_TRUE(wait_until([&] { return journal_->peer_set().count(kA) == 1; }, kAgentTimeout));
  ASSERT_TRUE(wait_until(
      [&] { return lines('I', "Peer 10.5.7.0/24 programmed after").size() == 1; }, kAgentTimeout));
  EXPECT_EQ(journal_->read([](auto& j) { return j.peers.at(kA).attrs.public_ip; }),
            IP4::parse("10.250.0.17"));
  EXPECT_EQ(syncs(), 1u);
}

TEST_F(AgentSetAside, AFullSyncPassesTheSetAsidePeerAndSetsItAsideAgainWithoutLooping) {
  settings_.peer_retry_first = 5000ms;  // no retry of its own during the case
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  journal_->set_refused({kA});
  start_holding();
  ASSERT_TRUE(wait_until([&] { return metrics_.peers_set_aside.load() == 1; }, kAgentTimeout));
  store_.put_lease(peer("10.5.9.0/24", "10.250.0.9"), 3600s, /*seen=*/false);
  store_.drop_history();  // the watch falls behind: list again, full sync
  ASSERT_TRUE(wait_until([&] { return journal_->peer_set().count(IP4Net::parse("10.5.9.0/24")); },
                         kAgentTimeout));
  EXPECT_EQ(syncs(), 2u);
  EXPECT_EQ(adds_of(kA), 2u);  // the sync tried it too (the kernel is repaired there)
  EXPECT_EQ(metrics_.peers_set_aside.load(), 1u);
  std::this_thread::sleep_for(100ms);  // proving an absence: no sync follows the failed peer
  EXPECT_EQ(syncs(), 2u);
  EXPECT_EQ(lines('W', "Peer 10.5.7.0/24").size(), 1u);  // the same failure: no new warning
  EXPECT_TRUE(lines('E', "").empty());
}

TEST_F(AgentSetAside, AFailureNamingNoPeerStillGetsAFullSync) {
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  start_holding();
  journal_->fail_next_applies(1);  // a plain BackendError: no peer named
  store_.put_lease(peer("10.5.12.0/24", "10.250.0.12"));
  ASSERT_TRUE(wait_until([&] { return syncs() == 2; }, kAgentTimeout));
  EXPECT_EQ(metrics_.peers_set_aside.load(), 0u);
  EXPECT_EQ(lines('E', "a full sync follows").size(), 1u);
}

}  // namespace
}  // namespace flannel::testing
