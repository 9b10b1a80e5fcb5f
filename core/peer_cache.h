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
// is refused is removed from the backend. Peers never overlap: of two leases that share an
// address (a hostile /23 over two /24s, or two dual-stack keys that raced for one IPv6 subnet),
// the one created first is kept (wins_overlap) and the other is refused as overlaps_peer, the
// same choice on every host whatever order the events came in; when the winner goes, the leases
// it held back are judged again. Pure logic.
//
// Thread safety: none; the agent's loop owns it and calls it from one thread.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <vector>

#include "core/admission.h"
#include "core/disjoint_spans.h"
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

  // Applies incremental store events and returns what the backend must do, in order. An event
  // that changes who wins an overlap (a lease older than the peers it overlaps, or the removal
  // of a peer that held another lease back) ends with the result of judging every known lease
  // again (as resync() of them would), appended.
  std::vector<PeerEvent> apply(const std::vector<LeaseEvent>& events);

  // Replaces the cache with a full snapshot (start, or after history was lost) and returns the
  // difference as backend events: removals first, then additions. Of overlapping leases the
  // first created is kept, whatever the snapshot's order.
  std::vector<PeerEvent> resync(const std::vector<Lease>& snapshot);

  size_t size() const { return peers_.size(); }
  // Peers whose lease has an IPv6 subnet (kept up to date, O(1)).
  size_t ipv6_peers() const { return ipv6_peers_; }
  // The cache itself, not a copy: valid as long as the PeerCache, and changed by the next
  // set_own, apply or resync.
  const std::map<LeaseKey, Lease>& peers() const { return peers_; }

 private:
  // One added lease; true when every known lease must be judged again (see apply()).
  bool upsert(const Lease& lease, std::vector<PeerEvent>* out);
  // Admission of `lease`: true when it may be a peer. When refused, refuse()s it.
  bool admit(const Lease& lease, std::vector<PeerEvent>* out);
  // Records `lease` as refused (a new refusal when the key or reason is new) and, if it was a
  // peer, removes it (a kRemoved event with its old attrs into *out).
  void refuse(const Lease& lease, Refusal refusal, std::vector<PeerEvent>* out);
  void set_refused(const LeaseKey& key, Refused r);
  void clear_refused(const LeaseKey& key);
  // resync()'s steps: admission of each lease (indexes into `snapshot` of those admitted, in
  // order; the keys refused into *refused), then the overlap losers among them set aside.
  std::vector<size_t> admit_all(const std::vector<Lease>& snapshot, std::set<LeaseKey>* refused,
                                std::vector<PeerEvent>* out);
  std::vector<size_t> drop_overlap_losers(const std::vector<Lease>& snapshot,
                                          std::vector<size_t> admitted, std::set<LeaseKey>* refused,
                                          std::vector<PeerEvent>* out);
  // resync() of every lease known (peers and refused), after an event that changed an overlap.
  std::vector<PeerEvent> judge_again();
  // The first-created peer sharing an address with `key` (itself excepted); nullptr if none.
  const Lease* oldest_overlap(const LeaseKey& key) const;
  // Calls f(key) for each peer whose IPv4 subnet shares an address with `subnet`.
  template <class F>
  void for_each_v4_overlap(const IP4Net& subnet, F&& f) const;

  void insert_peer(const Lease& lease);
  std::map<LeaseKey, Lease>::iterator erase(std::map<LeaseKey, Lease>::iterator it);

  std::optional<LeaseKey> own_;
  std::optional<AdmissionRules> rules_;
  std::map<LeaseKey, Refused> refused_;
  size_t overlap_losers_ = 0;  // entries of refused_ refused as kOverlapsPeer
  std::vector<Refused> new_refusals_;
  std::map<LeaseKey, Lease> peers_;
  // The peers' IPv6 subnets (disjoint: that is what the overlap rule keeps). Their IPv4
  // subnets need no index of their own: peers_ is ordered by them (for_each_v4_overlap).
  DisjointSpans<U128, LeaseKey> v6_spans_;
  size_t ipv6_peers_ = 0;
};

}  // namespace flannel
