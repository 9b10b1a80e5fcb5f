// Fixture for process-level tests of flanneld: a namespace lab with its hosts, a shared store
// (SQLite file, or etcd in the hub namespace), and real flanneld processes started inside the
// hosts with the flags users pass. Everything is torn down after each test, pass or fail.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/ip.h"
#include "core/lease.h"
#include "tests/support/lab.h"
#include "tests/support/lab_store.h"
#include "tests/support/process.h"

namespace flannel::testing {

class AgentTest : public ::testing::TestWithParam<LabStore::Kind> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Host i (1-based), created on first use.
  const Lab::Host& host(int i);
  std::string subnet_file(int i) const { return dir_ + "/h" + std::to_string(i) + ".env"; }
  std::string log_file(int i) const { return dir_ + "/flanneld-h" + std::to_string(i) + ".log"; }

  // Starts flanneld on host i: store flags, -subnet-file, -iface=eth0, then `extra`.
  Process& start_agent(int i, const std::vector<std::string>& extra = {},
                       const std::map<std::string, std::string>& env = {});
  Process& agent(int i) { return *agents_.at(i); }
  void stop_agent(int i);  // SIGTERM; expects exit 0 within 1 s

  // Writes the network config the way the seeds do (etcdctl set for etcd, flannelctl for SQLite;
  // ETCDCTL_API=3 etcdctl put for etcd without v2).
  void set_config(const std::string& json);

  // Polls until host i's subnet file exists; returns FLANNEL_SUBNET's network (or nullopt, after
  // printing the end of the agent's log). 20 s: three agents, etcd and the rest of a parallel
  // ctest share CI's two cores, and one etcd request may take its whole 10 s request timeout.
  std::optional<IP4Net> wait_subnet(int i,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // The stored lease value JSON for `subnet`, read with etcdctl (etcd) or flannelctl (SQLite).
  std::string lease_value(const LeaseKey& subnet);
  // Every lease subnet in the store.
  std::vector<IP4Net> lease_subnets();
  // HTTP GET inside host i's namespace with curl; returns the status code (0 = no answer).
  int http_status(int i, int port, const std::string& path, std::string* body = nullptr);

  std::string dir_;
  std::unique_ptr<Lab> lab_;
  std::unique_ptr<LabStore> store_;
  std::map<int, std::unique_ptr<Process>> agents_;
};

std::string KindName(const ::testing::TestParamInfo<LabStore::Kind>& info);

}  // namespace flannel::testing
