// ResetDetector: notices that the etcd cluster behind an EtcdV2Store lost its data (wiped and
// restarted, restored from an old backup) or was replaced by another cluster, from what every
// etcd v2 answer carries: X-Etcd-Index and X-Etcd-Cluster-Id. See "Store reset" in store.h.
//
// A reset is either
//   - a changed X-Etcd-Cluster-Id (another cluster answers at the same address), or
//   - an X-Etcd-Index lower than the highest index seen before the request was sent, confirmed
//     by a quorum read (a lagging member after a failover answers non-quorum reads such as
//     watches with an older index; a quorum read goes through the leader and is current).
// After reporting a reset the detector re-bases (forgets the highest index, adopts the new
// cluster id) and starts a new epoch: answers to requests sent before it are neither judged nor
// recorded, so one reset is reported exactly once per detector.
//
// Limitation: a wiped etcd that already made more writes than we had seen, and has the same
// cluster id (same member names, peer URLs and cluster token), is indistinguishable by headers.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/thread_annotations.h"

namespace flannel::etcd {

// The headers of one answer that matter for reset detection.
struct Observation {
  std::optional<uint64_t> index;  // X-Etcd-Index
  std::string cluster_id;         // X-Etcd-Cluster-Id, "" if absent
};

class ResetDetector {
 public:
  // What the detector knew when a request was sent; pass it back with the answer.
  struct Ticket {
    uint64_t epoch = 0;
    uint64_t highest = 0;
  };
  enum class Verdict {
    kFine,     // nothing wrong (or the answer belongs to an epoch already closed)
    kSuspect,  // the index went back: confirm with a quorum read, then call confirm()
    kReset,    // the store was reset; the detector has re-based; *why says how it was noticed
  };

  Ticket ticket() const EXCLUDES(mu_);
  // A quick look, without recording anything: would observe() say kSuspect or kReset? Lets a
  // long-poll stop waiting for its body as soon as its headers reveal a problem.
  bool alarming(const Ticket& t, const Observation& answer) const EXCLUDES(mu_);
  // Judges a normal answer to a request sent with `t`. *why is written only for kReset.
  Verdict observe(const Ticket& t, const Observation& answer, std::string* why) EXCLUDES(mu_);
  // Judges the quorum read made after kSuspect: kReset or kFine, never kSuspect. *why as above.
  Verdict confirm(const Ticket& t, const Observation& quorum, std::string* why) EXCLUDES(mu_);

 private:
  // Cluster id check and adoption; kReset (and re-base on `o`) when it changed.
  bool cluster_changed(const Observation& o, std::string* why) REQUIRES(mu_);
  void rebase(const Observation& o) REQUIRES(mu_);

  mutable Mutex mu_;
  uint64_t epoch_ GUARDED_BY(mu_) = 0;
  uint64_t highest_ GUARDED_BY(mu_) = 0;    // highest X-Etcd-Index seen in this epoch
  std::string cluster_id_ GUARDED_BY(mu_);  // "" until the first answer that carries one
};

}  // namespace flannel::etcd
