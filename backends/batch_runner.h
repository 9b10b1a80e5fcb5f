// BatchRunner: one pass of a route-programming backend (host-gw, vxlan) over a batch of peer
// events, the part both share so they treat foreign peers, failures and stale entries alike.
// The backend reads the kernel (its own business), then drives the runner in this order:
//   1. queue_peers(step): step(i) queues the requests of event i, tagged i, into requests();
//      events of another BackendType are skipped with one note each (backend.h: a bad peer is
//      skipped, never fatal). A step that cannot queue calls fail(i, why) and carries on.
//   2. The backend queues removals of stale entries (what no lease holds) with the tags
//      first_stale_tag() + k, naming the k-th in *stale().
//   3. commit(forget): sends the requests; the first failure of each peer is recorded and
//      forget(i) lets the backend drop what it recorded for peer i, so the next sync retries it;
//      a failed stale removal is recorded too. stale_removed() then names what did go.
//   4. finish(): throws one PeerFailures naming every failure (BatchErrors), if any.
// Not thread-safe; lives for one apply_batch() call. `session` and `events` must outlive it
// (both are kept by reference); `note` is called on the caller's thread during queue_peers().
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "backends/batch_errors.h"
#include "backends/netlink/batch.h"

namespace flannel {

class BatchRunner {
 public:
  using Note = std::function<void(const std::string& line)>;

  // `type`: the BackendType this backend programs ("host-gw", "vxlan"); `note`: the backend's
  // note(), for the peers skipped.
  BatchRunner(NetlinkSession& session, const std::vector<PeerEvent>& events, std::string type,
              Note note)
      : events_(events),
        type_(std::move(type)),
        note_(std::move(note)),
        requests_(session),
        failed_(events.size(), false) {}

  NetlinkBatch& requests() { return requests_; }
  BatchErrors& errors() { return errors_; }

  // Step 1. Calls step(i) for every event whose peer has our BackendType, in order; returns how
  // many were skipped for another type (each with one note).
  template <class Step>
  size_t queue_peers(Step&& step) {
    size_t skipped = 0;
    for (size_t i = 0; i < events_.size(); ++i) {
      if (skip_if_foreign(events_[i].lease)) {
        ++skipped;
        continue;
      }
      step(i);
    }
    return skipped;
  }
  // Records that the requests of event i could not be queued. Every call adds a reason; a step
  // that wants only the first checks failed(i) first.
  void fail(size_t i, const std::string& why) {
    failed_[i] = true;
    errors_.add(events_[i], why);
  }
  bool failed(size_t i) const { return failed_[i]; }

  // Step 2. Stale removals are tagged after the events, so commit() tells them apart.
  size_t first_stale_tag() const { return events_.size(); }
  std::vector<std::string>* stale() { return &stale_; }

  // Step 3. Sends every queued request; calls forget(i) once for each peer i the kernel refused
  // (after recording its first refusal), in the order the refusals come.
  template <class Forget>
  void commit(Forget&& forget) {
    stale_failed_.assign(stale_.size(), false);
    for (const auto& f : requests_.commit()) {
      if (f.tag >= events_.size()) {
        size_t k = f.tag - events_.size();
        stale_failed_[k] = true;
        errors_.add("removing stale " + stale_[k] + ": " + f.message());
        continue;
      }
      if (failed_[f.tag]) continue;  // one reason per peer: the first
      failed_[f.tag] = true;
      errors_.add(events_[f.tag], f.message());
      forget(f.tag);
    }
  }
  // After commit(): what stale entries were removed, in queue order.
  std::vector<std::string> stale_removed() const {
    std::vector<std::string> out;
    for (size_t k = 0; k < stale_.size(); ++k)
      if (k >= stale_failed_.size() || !stale_failed_[k]) out.push_back(stale_[k]);
    return out;
  }

  // Step 4. Throws PeerFailures "n of <events> peer changes failed: ..." if anything failed.
  void finish() const { errors_.throw_if_any(events_.size()); }

 private:
  // Every host of a network must run the same backend; a peer that does not is left out (its
  // routes would point at a device or gateway that does not carry its traffic).
  bool skip_if_foreign(const Lease& peer) const {
    if (peer.attrs.backend_type == type_) return false;
    note_(type_ + ": ignoring peer " + peer.subnet.str() + " (" + peer.attrs.public_ip.str() +
          ") with BackendType \"" + peer.attrs.backend_type + "\"; every host must use " + type_);
    return true;
  }

  const std::vector<PeerEvent>& events_;
  std::string type_;
  Note note_;
  NetlinkBatch requests_;
  BatchErrors errors_;
  std::vector<bool> failed_;
  std::vector<std::string> stale_;  // stale_[k]: what the removal tagged first_stale_tag() + k is
  std::vector<bool> stale_failed_;
};

}  // namespace flannel
