// AgentStateMachine: the fixture of the agent's unit tests: an Agent on its own thread, with an
// in-memory Store (MemoryStore) and a RecordingBackend, both readable from the test's thread.
// Each case sets settings_ (short pauses already) and writes the store, then start()s or
// start_holding()s; TearDown stops the agent and removes the temporary directory.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "daemon/agent/agent.h"
#include "tests/daemon/memory_store.h"
#include "tests/daemon/recording_backend.h"
#include "tests/support/wait.h"

namespace flannel::testing {

using namespace std::chrono_literals;

// Our own subnet is allocated from 10.5.100.0 up, so it never collides with the peers the cases
// write by hand (10.5.7.0 ... 10.5.15.0); a collision would turn "a peer appears" into "our own
// lease was overwritten" (the allocator picks at random among the first 100 free subnets).
inline constexpr const char* kConfig =
    R"({"Network":"10.5.0.0/16","SubnetMin":"10.5.100.0","Backend":{"Type":"vxlan"}})";

inline Lease peer(const char* subnet, const char* ip) {
  Lease l;
  l.subnet = IP4Net::parse(subnet);
  l.attrs.public_ip = IP4::parse(ip);
  l.attrs.backend_type = "vxlan";
  l.attrs.backend_data = R"({"VtepMAC":"82:4b:b6:2f:54:4e"})";
  return l;
}

// How long a case waits for the agent to get somewhere: far more than the milliseconds it takes.
inline constexpr std::chrono::milliseconds kAgentTimeout = 3000ms;

class AgentStateMachine : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/flannel-agent-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    store_.set_config(kConfig);
    settings_.subnet_file = dir_ + "/subnet.env";
    settings_.iptables_forward_rules = false;
    settings_.lease_ttl = 3600s;
    settings_.renew_margin = 60s;
    settings_.lease_check_interval = 0ms;
    settings_.retry_pause = 20ms;
    settings_.max_watch_wait = 200ms;
    settings_.config_key = "/coreos.com/network/config";
    iface_.name = "eth0";
    iface_.index = 2;
    iface_.mtu = 1500;
    iface_.iface_addr = iface_.ext_addr = IP4::parse("10.250.0.1");
  }
  void TearDown() override {
    stop();
    std::filesystem::remove_all(dir_);
  }

  void start() {
    agent_ = std::make_unique<Agent>(settings_, store_, iface_, metrics_,
                                     [this](const std::string& type) {
                                       if (type != "vxlan")
                                         throw BackendError("unknown backend type: " + type);
                                       return std::make_unique<RecordingBackend>(journal_);
                                     });
    thread_ = std::jthread([this](std::stop_token st) { rc_ = agent_->run(st); });
  }
  void stop() {
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
  }
  // Starts and waits until the agent holds a lease and has synced its peers once.
  void start_holding() {
    start();
    ASSERT_TRUE(wait_until(
        [&] { return agent_->ready() && journal_->read([](auto& j) { return j.syncs; }) > 0; },
        kAgentTimeout));
  }

  IP4Net own() const {
    return journal_->read([](const RecordingBackend::Journal& j) { return j.acquired.back(); });
  }
  size_t acquisitions() const {
    return journal_->read([](const RecordingBackend::Journal& j) { return j.acquired.size(); });
  }
  std::string subnet_file() const {
    std::ifstream in(settings_.subnet_file);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  bool store_has_ours(const IP4Net& subnet) const {
    auto l = store_.lease(subnet);
    return l && l->attrs.public_ip == iface_.ext_addr;
  }

  std::string dir_;
  MemoryStore store_;
  AgentSettings settings_;
  ExternalInterface iface_;
  Metrics metrics_;
  std::shared_ptr<RecordingBackend::Journal> journal_ =
      std::make_shared<RecordingBackend::Journal>();
  std::unique_ptr<Agent> agent_;
  std::jthread thread_;
  int rc_ = -1;
};

}  // namespace flannel::testing
