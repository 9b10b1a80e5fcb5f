// RecordingBackend: a Backend that programs nothing and records every call, for unit tests of
// the agent. The record lives in a shared Journal, so the test keeps reading it after the agent
// took ownership of the backend through its factory. Thread-safe reads from the test thread.
// Peers in Journal::refuse fail every add, reported the way host-gw and vxlan report them
// (BatchErrors, so a PeerFailures naming them), as a peer whose gateway is unreachable would.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/batch_errors.h"

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
    std::set<IP4Net> refuse;        // adds of these fail, every time, one PeerFailures per call
    // When each subnet was added (or an add was tried), by sync or apply, in order.
    std::map<IP4Net, std::vector<std::chrono::steady_clock::time_point>> adds;
    std::vector<std::vector<IP4Net>> apply_batches;  // the subnets of each apply() call
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
    void set_refused(std::set<IP4Net> subnets) {
      std::lock_guard lock(mu);
      refuse = std::move(subnets);
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
    BatchErrors errors;
    for (const auto& p : peers) add_peer({PeerEvent::Type::kAdded, p}, &errors);
    errors.throw_if_any(peers.size());
  }
  void apply(const std::vector<PeerEvent>& batch) override {
    std::lock_guard lock(j_->mu);
    j_->applies++;
    if (j_->fail_applies > 0) {
      j_->fail_applies--;
      throw BackendError("recording backend: injected apply failure");
    }
    j_->apply_batches.emplace_back();
    BatchErrors errors;
    for (const auto& ev : batch) {
      j_->apply_batches.back().push_back(ev.lease.subnet);
      if (ev.type == PeerEvent::Type::kAdded) {
        add_peer(ev, &errors);
      } else {
        note_peer(ev.lease);
        j_->peers.erase(ev.lease.subnet);
      }
    }
    errors.throw_if_any(batch.size());
  }

 private:
  void add_peer(const PeerEvent& ev, BatchErrors* errors) {
    note_peer(ev.lease);
    j_->adds[ev.lease.subnet].push_back(std::chrono::steady_clock::now());
    if (j_->refuse.count(ev.lease.subnet)) {
      errors->add(ev, "netlink route replace: Network is unreachable (injected)");
    } else {
      j_->peers[ev.lease.subnet] = ev.lease;
    }
  }
  void note_peer(const Lease& p) {
    j_->ever.insert(p.subnet);
    if (!j_->acquired.empty() && p.subnet == j_->acquired.back()) j_->saw_own_subnet = true;
  }
  std::shared_ptr<Journal> j_;
};

}  // namespace flannel::testing
