// The Store contract suite: the same cases run against every Store implementation.
//
// Each implementation provides a HarnessFactory and instantiates the suite in its own test
// executable (contract_etcd_v2_test, contract_sqlite_test), e.g.
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContract, ::testing::Values(ContractParam{...}));
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "stores/store.h"

namespace flannel::testing {

// One isolated namespace of a real backing store (a fresh etcd prefix on a running etcd, or a
// fresh SQLite file). Destroying the harness releases it.
class StoreHarness {
 public:
  virtual ~StoreHarness() = default;
  // A new, independent connection (its own Store object) to this namespace.
  virtual std::unique_ptr<Store> connect() = 0;
  // How many events the store keeps for watchers (etcd: 1000).
  virtual size_t history_limit() const = 0;
  // Makes the backing store lose all its data and come back at the same address, as a wiped
  // and restarted etcd or a deleted and re-created SQLite file (etcd: stop the server, delete its
  // data dir, start it again on the same ports; SQLite: unlink the file and let a new connection
  // create it anew). Connections made before keep their Store objects; the contract says they
  // report kStoreReset once and then work against the new store.
  virtual void wipe_and_restart() { ADD_FAILURE() << "this harness cannot wipe its store"; }
  // How soon after wipe_and_restart() returns a watcher blocked in watch_leases must get
  // kStoreReset (etcd: the poll retried after the outage plus one quorum read; SQLite: the
  // watch's file check runs every ~250 ms).
  virtual std::chrono::milliseconds reset_notice_bound() const {
    return std::chrono::milliseconds(2000);
  }
  // Called after more than history_limit() lease events were written, for stores whose history
  // is not bounded by a count: etcd v3 keeps every revision until compacted, so its harness
  // compacts here (as a cluster's auto-compaction would). Stores with a fixed window: nothing.
  virtual void drop_history() {}
};

struct ContractParam {
  std::string name;  // "Etcd", "Sqlite"
  std::function<std::unique_ptr<StoreHarness>()> make;
};

// Shown by gtest instead of a byte dump of the parameter.
inline void PrintTo(const ContractParam& p, std::ostream* os) { *os << p.name; }

inline std::string ContractParamName(const ::testing::TestParamInfo<ContractParam>& info) {
  return info.param.name;
}

class StoreContract : public ::testing::TestWithParam<ContractParam> {
 protected:
  void SetUp() override { harness_ = GetParam().make(); }
  void TearDown() override { harness_.reset(); }
  std::unique_ptr<StoreHarness> harness_;
};

}  // namespace flannel::testing
