// RecordingBackend: a Backend that programs nothing and records every call, for unit tests of
// the agent. The record lives in a shared Journal, so the test keeps reading it after the agent
// took ownership of the backend through its factory. Thread-safe reads from the test thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace flannel::testing {

class RecordingBackend : public Backend {
 public:
  struct Journal {
    mutable std::mutex mu;
    std::vector<IP4Net> acquired;   // lease_acquired() subnets, in order
    size_t syncs = 0;               // sync() calls
    size_t applies = 0;             // apply() calls
    std::map<IP4Net, Lease> peers;  // what the "kernel" holds after every call
    bool saw_own_subnet = false;    // a sync/apply ever named the lease we hold
    std::set<IP4Net> ever;          // every subnet a sync/apply ever named
    int fail_applies = 0;           // the next N apply() calls throw after recording
    std::string type = "vxlan";

    std::set<IP4Net> peer_set() const {
      std::lock_guard lock(mu);
      std::set<IP4Net> out;
      for (const auto& [s, l] : peers) out.insert(s);
      return out;
    }
    template <class F>
    auto read(F f) const {
      std::lock_guard lock(mu);
      return f(*this);
    }
    void fail_next_applies(int n) {
      std::lock_guard lock(mu);
      fail_applies = n;
    }
  };

  explicit RecordingBackend(std::shared_ptr<Journal> j) : j_(std::move(j)) {}

  std::string type() const override { return j_->type; }
  BackendSetup setup(const Config&, const ExternalInterface& iface) override {
    BackendSetup out;
    out.attrs.public_ip = iface.ext_addr;
    out.attrs.backend_type = j_->type;
    out.mtu = 1450;
    return out;
  }
  void lease_acquired(const Lease& ours) override {
    std::lock_guard lock(j_->mu);
    j_->acquired.push_back(ours.subnet);
  }
  bool wants_peers() const override { return true; }
  void sync(const std::vector<Lease>& peers) override {
    std::lock_guard lock(j_->mu);
    j_->syncs++;
    j_->peers.clear();
    for (const auto& p : peers) note_peer(p), j_->peers[p.subnet] = p;
  }
  void apply(const std::vector<PeerEvent>& batch) override {
    std::lock_guard lock(j_->mu);
    j_->applies++;
    if (j_->fail_applies > 0) {
      j_->fail_applies--;
      throw BackendError("recording backend: injected apply failure");
    }
    for (const auto& ev : batch) {
      note_peer(ev.lease);
      if (ev.type == PeerEvent::Type::kAdded) {
        j_->peers[ev.lease.subnet] = ev.lease;
      } else {
        j_->peers.erase(ev.lease.subnet);
      }
    }
  }

 private:
  void note_peer(const Lease& p) {
    j_->ever.insert(p.subnet);
    if (!j_->acquired.empty() && p.subnet == j_->acquired.back()) j_->saw_own_subnet = true;
  }
  std::shared_ptr<Journal> j_;
};

}  // namespace flannel::testing
