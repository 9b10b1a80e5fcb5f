// alloc: allocation only. Holds a lease and publishes PublicIP, with no data plane and no peers
// (flannel v0.11 backend/alloc). MTU = the external interface MTU.
#pragma once

#include "backends/backend.h"

namespace flannel {

class AllocBackend : public Backend {
 public:
  std::string type() const override { return "alloc"; }
  BackendSetup setup(const Config& config, const ExternalInterface& iface) override;
  void lease_acquired(const Lease&) override {}
  bool wants_peers() const override { return false; }
  void sync(const std::vector<Lease>&) override {}
  void apply(const std::vector<PeerEvent>&) override {}
};

}  // namespace flannel
