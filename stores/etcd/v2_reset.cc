#include "stores/etcd/v2_reset.h"

#include <algorithm>

namespace flannel::etcd {

ResetDetector::Ticket ResetDetector::ticket() const {
  MutexLock lock(&mu_);
  return {epoch_, highest_};
}

bool ResetDetector::alarming(const Ticket& t, const Observation& answer) const {
  MutexLock lock(&mu_);
  if (t.epoch != epoch_) return false;
  if (!answer.cluster_id.empty() && !cluster_id_.empty() && answer.cluster_id != cluster_id_) {
    return true;
  }
  return answer.index && *answer.index < t.highest;
}

void ResetDetector::rebase(const Observation& o) {
  ++epoch_;
  highest_ = o.index.value_or(0);
  if (!o.cluster_id.empty()) cluster_id_ = o.cluster_id;
}

bool ResetDetector::cluster_changed(const Observation& o, std::string* why) {
  if (o.cluster_id.empty()) return false;
  if (cluster_id_.empty()) {
    cluster_id_ = o.cluster_id;
    return false;
  }
  if (o.cluster_id == cluster_id_) return false;
  *why = "etcd cluster id changed from " + cluster_id_ + " to " + o.cluster_id +
         ": another etcd cluster answers at this address";
  rebase(o);
  return true;
}

ResetDetector::Verdict ResetDetector::observe(const Ticket& t, const Observation& answer,
                                              std::string* why) {
  MutexLock lock(&mu_);
  if (t.epoch != epoch_) return Verdict::kFine;
  if (cluster_changed(answer, why)) return Verdict::kReset;
  if (!answer.index) return Verdict::kFine;
  if (*answer.index < t.highest) return Verdict::kSuspect;
  highest_ = std::max(highest_, *answer.index);
  return Verdict::kFine;
}

ResetDetector::Verdict ResetDetector::confirm(const Ticket& t, const Observation& quorum,
                                              std::string* why) {
  MutexLock lock(&mu_);
  if (t.epoch != epoch_) return Verdict::kFine;
  if (cluster_changed(quorum, why)) return Verdict::kReset;
  if (!quorum.index) return Verdict::kFine;
  if (*quorum.index < t.highest) {
    *why = "etcd index went back from " + std::to_string(t.highest) + " to " +
           std::to_string(*quorum.index) +
           " (confirmed by a quorum read): etcd lost its data (wiped, or restored from a backup)";
    rebase(quorum);
    return Verdict::kReset;
  }
  highest_ = std::max(highest_, *quorum.index);
  return Verdict::kFine;
}

}  // namespace flannel::etcd
