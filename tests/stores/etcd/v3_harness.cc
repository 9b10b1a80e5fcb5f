// The Store contract suite against a real etcd with the v2 API disabled, through EtcdV3Store:
// one etcd per test process (started lazily), one fresh key prefix per test.
#include <memory>

#include "stores/etcd/v3_store.h"
#include "tests/stores/etcd/v3_support.h"
#include "tests/stores/store_contract.h"
#include "tests/support/etcd_server.h"

namespace flannel::testing {
namespace {

class EtcdV3Harness : public StoreHarness {
 public:
  EtcdV3Harness()
      : server_(EtcdServer::shared_v3()), prefix_(EtcdServer::unique_prefix("contract")) {}
  ~EtcdV3Harness() override { v3_delete_prefix(server_, prefix_); }
  std::unique_ptr<Store> connect() override {
    return EtcdV3Store::open(server_.client_options(prefix_));
  }
  // etcd v3 keeps every revision until compacted; drop_history() compacts after this many.
  size_t history_limit() const override { return 10; }
  void drop_history() override { v3_compact(server_); }
  void wipe_and_restart() override { server_.wipe_and_restart(); }

 private:
  EtcdServer& server_;
  std::string prefix_;
};

}  // namespace

INSTANTIATE_TEST_SUITE_P(EtcdV3, StoreContract,
                         ::testing::Values(ContractParam{
                             "EtcdV3", [] { return std::make_unique<EtcdV3Harness>(); }}),
                         ContractParamName);

}  // namespace flannel::testing
