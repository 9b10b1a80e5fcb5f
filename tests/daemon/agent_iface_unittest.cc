// Following the external interface (agent_iface.cc), with an in-memory Store, a recording
// Backend and an interface lookup the test controls: an address change republishes the lease
// (same subnet, CAS) and programs every peer again; a lost interface makes the agent not ready
// and keeps lease and peers; its return rebuilds the backend and makes it ready. The wake-up
// comes from interface_may_have_changed(), as IfaceWatch calls it, and cuts a long store watch
// short. Also Waker on its own, and which route notifications IfaceWatch counts.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <mutex>
#include <stdexcept>

#include "daemon/agent/agent.h"
#include "daemon/agent/iface_watch.h"
#include "daemon/agent/waker.h"
#include "tests/daemon/agent_state_fixture.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

class AgentFollowsInterface : public AgentStateMachine {
 protected:
  void SetUp() override {
    AgentStateMachine::SetUp();
    settings_.max_watch_wait = 60s;  // only a wake-up can end the watch in time
    now_ = iface_;
    settings_.find_iface = [this] {
      std::lock_guard lock(mu_);
      if (!why_gone_.empty()) throw std::runtime_error(why_gone_);
      return now_;
    };
  }
  void change(const std::function<void(ExternalInterface&)>& f) {
    {
      std::lock_guard lock(mu_);
      f(now_);
    }
    agent_->interface_may_have_changed();
  }
  void gone(const std::string& why) {
    {
      std::lock_guard lock(mu_);
      why_gone_ = why;
    }
    agent_->interface_may_have_changed();
  }
  std::optional<IP4> published(const IP4Net& subnet) const {
    auto l = store_.lease(subnet);
    if (!l) return std::nullopt;
    return l->attrs.public_ip;
  }
  size_t syncs() const {
    return journal_->read([](auto& j) { return j.syncs; });
  }

  std::mutex mu_;
  ExternalInterface now_;
  std::string why_gone_;
};

TEST_F(AgentFollowsInterface, AnAddressChangeRepublishesTheSameSubnetAndSyncsEveryPeer) {
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  start_holding();
  const IP4Net mine = own();
  const std::string env = subnet_file();
  const uint64_t revision = store_.lease(mine)->revision;

  change([](ExternalInterface& e) { e.iface_addr = e.ext_addr = IP4::parse("10.250.0.101"); });
  ASSERT_TRUE(
      wait_until([&] { return published(mine) == IP4::parse("10.250.0.101"); }, kAgentTimeout));
  ASSERT_TRUE(wait_until([&] { return agent_->ready() && syncs() >= 2; }, kAgentTimeout));
  EXPECT_GT(store_.lease(mine)->revision, revision);  // a renewal of our lease, not a new one
  EXPECT_EQ(own(), mine);
  EXPECT_EQ(acquisitions(), 2u);  // the rebuilt backend took the same lease
  EXPECT_EQ(journal_->peer_set(), std::set<IP4Net>{IP4Net::parse("10.5.7.0/24")});
  EXPECT_EQ(subnet_file(), env);
  EXPECT_EQ(metrics_.leases_lost.load(), 0u);
  LeaseList all;
  ASSERT_TRUE(store_.list_leases(&all).ok());
  EXPECT_EQ(all.leases.size(), 2u);  // ours and the peer: nothing new, nothing deleted
}

TEST_F(AgentFollowsInterface, AnUnchangedInterfaceRebuildsNothing) {
  start_holding();
  const size_t before = syncs();
  change([](ExternalInterface&) {});
  // Proving an absence: a look that finds the same interface does nothing within 300 ms.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(syncs(), before);
  EXPECT_EQ(acquisitions(), 1u);
  EXPECT_TRUE(agent_->ready());
}

TEST_F(AgentFollowsInterface, AGoneInterfaceKeepsLeaseAndPeersUntilItReturns) {
  store_.put_lease(peer("10.5.7.0/24", "10.250.0.7"));
  start_holding();
  const IP4Net mine = own();

  gone("-iface=eth0: no such interface");
  ASSERT_TRUE(wait_until([&] { return !agent_->ready(); }, kAgentTimeout));
  EXPECT_EQ(agent_->state(), AgentState::kHolding);
  EXPECT_EQ(published(mine), iface_.ext_addr);
  EXPECT_EQ(journal_->peer_set(), std::set<IP4Net>{IP4Net::parse("10.5.7.0/24")});
  // Peers still arrive while it is gone.
  store_.put_lease(peer("10.5.8.0/24", "10.250.0.8"));
  ASSERT_TRUE(wait_until([&] { return journal_->peer_set().size() == 2; }, kAgentTimeout));

  const size_t before = syncs();
  {
    std::lock_guard lock(mu_);
    why_gone_.clear();
    now_.index = 7;  // recreated: a new link index, the same address
  }
  agent_->interface_may_have_changed();
  ASSERT_TRUE(wait_until([&] { return agent_->ready() && syncs() > before; }, kAgentTimeout));
  EXPECT_EQ(own(), mine);
  EXPECT_EQ(acquisitions(), 2u);
  EXPECT_EQ(published(mine), iface_.ext_addr);
  EXPECT_EQ(journal_->peer_set().size(), 2u);
}

TEST(Waker, AWakeIsNeverLostAndStopsOnlyTheArmedCall) {
  Waker w;
  std::stop_source outer;
  std::stop_token t = w.arm(outer.get_token());
  EXPECT_FALSE(t.stop_requested());
  w.wake();  // while armed: stops it, and stays pending
  EXPECT_TRUE(t.stop_requested());
  t = w.arm(outer.get_token());
  EXPECT_TRUE(t.stop_requested());  // pending: the next call returns at once
  EXPECT_TRUE(w.take());
  EXPECT_FALSE(w.take());
  t = w.arm(outer.get_token());
  EXPECT_FALSE(t.stop_requested());
  outer.request_stop();  // the agent's stop reaches the armed call
  EXPECT_TRUE(t.stop_requested());
}

// Which route notifications make the agent look at its interface again (IfaceRoutes).
TEST(IfaceWatchRoutes, OnlyRoutesTheChoiceDependsOnCount) {
  const IP4Net any = IP4Net::parse("0.0.0.0/0");
  const IP4Net pods = IP4Net::parse("10.5.3.0/24");
  const IP4Net toward = IP4Net::parse("192.168.7.0/24");
  constexpr unsigned kMain = 254, kLocal = 255, kOther = 100;

  const IfaceRoutes by_name;  // -iface / -iface-regex: routes do not matter
  EXPECT_FALSE(IfaceWatch::route_counts(by_name, AF_INET, any, kMain));

  const IfaceRoutes by_default{true, std::nullopt};  // no flag: the default route's link
  EXPECT_TRUE(IfaceWatch::route_counts(by_default, AF_INET, any, kMain));
  EXPECT_TRUE(IfaceWatch::route_counts(by_default, AF_INET, any, kOther));
  EXPECT_FALSE(IfaceWatch::route_counts(by_default, AF_INET, pods, kMain));  // the agent's own
  EXPECT_FALSE(IfaceWatch::route_counts(by_default, AF_INET6, any, kMain));
  EXPECT_FALSE(IfaceWatch::route_counts(by_default, AF_INET, any, kLocal));

  const IfaceRoutes by_reach{true, IP4::parse("192.168.7.9")};  // -iface-can-reach
  EXPECT_TRUE(IfaceWatch::route_counts(by_reach, AF_INET, any, kMain));
  EXPECT_TRUE(IfaceWatch::route_counts(by_reach, AF_INET, toward, kMain));
  EXPECT_TRUE(IfaceWatch::route_counts(by_reach, AF_INET, IP4Net::parse("192.168.7.9/32"), kMain));
  EXPECT_FALSE(IfaceWatch::route_counts(by_reach, AF_INET, pods, kMain));
  EXPECT_FALSE(
      IfaceWatch::route_counts(by_reach, AF_INET, IP4Net::parse("192.168.7.10/32"), kMain));
}

}  // namespace
}  // namespace flannel::testing
