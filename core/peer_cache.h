// The daemon's view of the other hosts' leases, turning store events into backend events.
//
// Fixes two v0.11 weaknesses (facts §7.5-6): a resync diffs full attributes (a peer whose
// VtepMAC or PublicIP changed is removed with its old attrs and added with the new ones), and a
// renewal that changes nothing but the expiration produces no backend work. Our own subnet is
// never passed to the backend. Peers are identified by their whole lease key (IPv4 subnet and,
// for dual-stack and IPv6-only leases, IPv6 subnet): `10.5.1.0-24` and `10.5.1.0-24&fc00::-64`
// are two different peers, and IPv6-only leases all share the v4 part 0.0.0.0/0. With admission
// rules set (set_rules), a lease that check_peer_lease() refuses never becomes a peer: it is kept
// aside with its reason (never deleted from the store: it is not ours), and a peer whose new value
// is refused is removed from the backend. Pure logic.
//
// Thread safety: none; the agent's loop owns it and calls it from one thread.
#pragma once

#include <map>
#include <optional>
#include <vector>

#include "core/admission.h"
#include "core/lease_event.h"

namespace flannel {

class PeerCache {
 public:
  // Events for `own` (our lease key) are dropped; change it when the lease moves. A peer cached
  // under `own` is erased without a kRemoved event (the agent follows with a full backend sync,
  // which drops it from the kernel). With rules set, rules.own follows it (peers that now
  // overlap it are refused at the next resync).
  void set_own(std::optional<LeaseKey> own);
  // Admission from now on (rules.own is replaced by set_own's key). Without rules every lease is
  // admitted (unit tests of the cache's bookkeeping). Leases already cached are judged again at
  // the next resync.
  void set_rules(AdmissionRules rules);

  struct Refused {
    Lease lease;
    Refusal refusal;
  };
  // Leases refused and still in the store, by key.
  const std::map<LeaseKey, Refused>& refused() const { return refused_; }
  // Refusals since the last call: a key refused for the first time, or for a new reason. The
  // caller logs each once; a lease refused again for the same reason is not reported again.
  std::vector<Refused> take_new_refusals();

  // Applies incremental store events and returns what the backend must do, in order. A peer
  // that shares an IPv4 or IPv6 subnet with a removed one is added again at the end (the
  // removal took the shared subnet's route with it).
  std::vector<PeerEvent> apply(const std::vector<LeaseEvent>& events);

  // Replaces the cache with a full snapshot (start, or after history was lost) and returns the
  // difference as backend events: removals first, then additions.
  std::vector<PeerEvent> resync(const std::vector<Lease>& snapshot);

  size_t size() const { return peers_.size(); }
  // Peers whose lease has an IPv6 subnet (kept up to date, O(1)).
  size_t ipv6_peers() const { return ipv6_peers_; }
  // The cache itself, not a copy: valid as long as the PeerCache, and changed by the next
  // set_own, apply or resync.
  const std::map<LeaseKey, Lease>& peers() const { return peers_; }

 private:
  void upsert(const Lease& lease, std::vector<PeerEvent>* out);
  // Admission of `lease`: true when it may be a peer. When refused, records it in refused_ and,
  // if it was a peer, removes it (a kRemoved event with its old attrs into *out).
  bool admit(const Lease& lease, std::vector<PeerEvent>* out);
  std::map<LeaseKey, Lease>::iterator erase(std::map<LeaseKey, Lease>::iterator it);

  std::optional<LeaseKey> own_;
  std::optional<AdmissionRules> rules_;
  std::map<LeaseKey, Refused> refused_;
  std::vector<Refused> new_refusals_;
  std::map<LeaseKey, Lease> peers_;
  size_t ipv6_peers_ = 0;
};

}  // namespace flannel
