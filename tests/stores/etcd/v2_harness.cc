// The Store contract suite against a real etcd: one etcd per test process (started lazily),
// one fresh key prefix per test.
#include <memory>

#include "stores/etcd/v2_store.h"
#include "tests/stores/store_contract.h"
#include "tests/support/etcd_server.h"

namespace flannel::testing {
namespace {

class EtcdHarness : public StoreHarness {
 public:
  EtcdHarness() : server_(EtcdServer::shared()), prefix_(EtcdServer::unique_prefix("contract")) {}
  ~EtcdHarness() override {
    // Keep the shared etcd small; the prefix is never reused either way.
    server_.raw("DELETE", "/v2/keys" + prefix_ + "?recursive=true");
  }
  std::unique_ptr<Store> connect() override {
    return EtcdV2Store::open(server_.client_options(prefix_));
  }
  size_t history_limit() const override { return 1000; }  // etcd v2's fixed event history
  // Wipes the process-wide etcd: the other tests' prefixes are gone already (each harness
  // deletes its own), and later tests connect anew.
  void wipe_and_restart() override { server_.wipe_and_restart(); }

 private:
  EtcdServer& server_;
  std::string prefix_;
};

}  // namespace

INSTANTIATE_TEST_SUITE_P(Etcd, StoreContract,
                         ::testing::Values(ContractParam{
                             "Etcd", [] { return std::make_unique<EtcdHarness>(); }}),
                         ContractParamName);

}  // namespace flannel::testing
