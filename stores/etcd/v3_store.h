// EtcdV3Store: the Store contract on etcd's v3 API, through its JSON gateway (etcd 3.4+:
// POST /v3/kv/range, /v3/kv/txn, /v3/kv/deleterange, /v3/lease/grant, /v3/lease/revoke,
// /v3/lease/timetolive, the streaming /v3/watch and /v3/auth/authenticate). No gRPC.
//
// Layout and bytes are current flannel's (v0.13+, etcd mode), so its hosts and ours share one
// cluster: the config at `<prefix>/config` (raw JSON), one key per lease at
// `<prefix>/subnets/10.5.34.0-24` whose value is the lease attrs JSON as current flannel writes
// it (v3_codec.h: v0.11's JSON plus "PublicIPv6":null), attached to a v3 lease granted with
// the TTL. A reservation (ttl 0) is a key with no v3 lease.
//
// Contract mapping:
//   revision        Lease::revision = the key's mod_revision; LeaseList::revision = the range
//                   response's header.revision.
//   create          grant(ttl), then txn [version(key) == 0] put(key, value, lease); when the
//                   compare fails the fresh lease is revoked and kConflict returned.
//   renew           grant(ttl), then txn [mod_revision(key) == lease.revision] put with the new
//                   lease (prev_kv); on success the old v3 lease is revoked; on failure the new
//                   one is revoked and a range in the failure branch tells kNotFound from
//                   kConflict. Unlike current flannel (unconditional put), a renewal never
//                   resurrects or overwrites a lease someone else replaced, and a reservation
//                   renewed with ttl 0 stays without a lease.
//   delete          deleterange, or with an expected revision a txn [mod_revision == expected].
//                   The key's v3 lease is left to expire (revoking it would make watchers
//                   take the removal for an expiry, see below).
//   expiry          etcd deletes the keys of an expired v3 lease: every watcher sees a DELETE.
//                   The watch asks for prev_kv; a DELETE whose previous value was attached to a
//                   v3 lease that no longer exists (timetolive answers TTL -1) is reported as
//                   expired. An explicit delete leaves the lease alive, so it is not.
//   history         a watch from a revision etcd has compacted away answers kHistoryGone
//                   (compact_revision in the watch response).
//   store reset     every answer's header is checked: a cluster_id other than the one seen
//                   before, or a revision lower than the highest seen, confirmed by a
//                   linearizable range started after that (a lower revision alone is normal
//                   for an answer overtaken by a concurrent request of this Store, or from a
//                   lagging member), returns kStoreReset once and re-bases on the new cluster.
//
// Expirations without one timetolive per lease: a v3 key carries only its lease id. This Store
// remembers the expiry of every lease it granted itself (grant time + granted TTL) and of every
// lease it asked timetolive about, by lease id. get_lease asks timetolive for an id it does not
// know (one call; its failure fails the call); a watch PUT event does the same (a failure ends
// the watch with kUnavailable, cursor not advanced past that event) (as current flannel does per
// event; renewals are rare). list_leases never does: a listing of 10,000 leases is one range
// request, and a leased key whose id this Store does not know is listed with expiration =
// kUnknownExpiry
// (= kUnknownExpiration of store.h: present, so it is not mistaken for a reservation, but with
// no time). Nothing needs more:
// the allocator and lease keeper only test whether an expiration is present (reservation or
// not), the agent renews its own lease from the expiration that its own create/renew returned,
// and flannelctl prints "unknown" for kUnknownExpiry.
//
// Watch: one streaming /v3/watch request per watch_leases() call, from after_revision + 1,
// ended as soon as a response with well-formed events arrives (or at the timeout, or on
// cancel). The cursor is the highest mod_revision delivered or skipped (never header.revision,
// which may run ahead of events still to come in the stream). An idle watch keeps its cursor:
// the gateway gives no progress notice without a bidirectional stream.
//
// Dual-stack keys "10.5.34.0-24&fc00::-64" (current flannel's) are leases like any other.
// Malformed entries under `<prefix>/subnets/` (a key that is not a canonical subnet name, a
// value that is not lease JSON) are skipped with a warning in list and watch, the watch cursor
// moves past them, and they are never deleted.
//
// Auth: with EtcdOptions::username set, a token from /v3/auth/authenticate is sent as the
// Authorization header and renewed once when etcd rejects it (tokens expire). If etcd says
// authentication is not enabled, requests go without a token. TLS, failover, timeouts:
// stores/etcd/http_client.h (txn writes are one-shot requests; range, grant, revoke, timetolive and
// the watch fail over). Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/thread_annotations.h"
#include "stores/etcd/http_client.h"
#include "stores/etcd/options.h"
#include "stores/etcd/v3_codec.h"
#include "stores/store.h"

namespace flannel {

class EtcdV3Store : public Store {
 public:
  // "Has a TTL, time unknown": see "Expirations" above.
  static constexpr Clock::time_point kUnknownExpiry = kUnknownExpiration;

  // Checks the options (endpoint URLs, readable TLS files) and throws std::invalid_argument
  // naming the problem (std::runtime_error when libcurl cannot be loaded). Does not contact etcd.
  static std::unique_ptr<EtcdV3Store> open(const EtcdOptions& options);

  std::string describe() const override;
  Status get_config(std::string* json) override;
  Status set_config(const std::string& json) override;
  Status list_leases(LeaseList* out) override;
  Status get_lease(const LeaseKey& subnet, Lease* out) override;
  Status create_lease(const Lease& lease, std::chrono::seconds ttl, Lease* created) override;
  Status renew_lease(const Lease& lease, std::chrono::seconds ttl, Lease* renewed) override;
  Status delete_lease(const LeaseKey& subnet, uint64_t expected_revision = 0) override;
  WatchResult watch_leases(uint64_t after_revision, std::chrono::milliseconds timeout,
                           std::stop_token stop) override;

  const std::string& prefix() const { return prefix_; }
  const std::vector<std::string>& endpoints() const { return http_.endpoints(); }

 private:
  class Watch;  // one watch_leases() call, as named steps (v3_watch.cc)

  explicit EtcdV3Store(const EtcdOptions& options);

  // One unary gateway call: POST `body` to `path` (with the auth token), parse the JSON, map
  // errors to a Status, check the header for a store reset. On success *out is the response.
  // `check` = false skips the reset check (the confirmation read of check_header).
  Status call(const std::string& path, const etcd_v3::json& body, bool one_shot, etcd_v3::json* out,
              bool check = true);
  Status authenticate() EXCLUDES(mu_);
  std::string token() EXCLUDES(mu_);
  bool needs_authentication() EXCLUDES(mu_);  // username set and no authenticate() yet
  // Store-reset detection on one response header (see the top): a changed cluster id is a
  // reset; a lower revision is one only if a linearizable read started afterwards confirms it.
  Status check_header(const etcd_v3::Header& h) EXCLUDES(mu_);
  // Re-bases on `h` and describes the reset.
  Status reset_locked(const etcd_v3::Header& h) REQUIRES(mu_);
  Status grant(std::chrono::seconds ttl, int64_t* id, Clock::time_point* expires);
  void revoke(int64_t id);
  // TTL of a v3 lease via timetolive: its expiry, or nullopt when the lease no longer exists.
  Status lease_expiry(int64_t id, std::optional<Clock::time_point>* expiry);
  // The expiration to report for a key attached to `lease_id` (0 = reservation); `ask` allows
  // one timetolive call for an unknown id (whose failure is returned), else kUnknownExpiry.
  Status expiration_for(int64_t lease_id, bool ask, std::optional<Clock::time_point>* out)
      EXCLUDES(mu_);
  void remember(int64_t id, Clock::time_point expires) EXCLUDES(mu_);
  void forget(int64_t id) EXCLUDES(mu_);
  // Lease from a key-value under subnets_dir_; false with *why when malformed, false with
  // *failed when asking etcd for the expiration failed.
  bool subnet_of(const std::string& key, LeaseKey* subnet, std::string* why) const;
  bool lease_of(const etcd_v3::KeyValue& kv, bool ask, Lease* out, std::string* why,
                Status* failed);
  std::string lease_key(const LeaseKey& subnet) const;
  // Shared by create and renew: grant, txn [compare] put, failure branch reads the key.
  Status write_lease(const Lease& lease, std::chrono::seconds ttl, const etcd_v3::json& compare,
                     bool renew, Lease* out);

  etcd::HttpClient http_;
  std::string prefix_;       // cleaned: leading '/', no trailing '/'
  std::string config_key_;   // prefix_ + "/config"
  std::string subnets_dir_;  // prefix_ + "/subnets/"
  std::string subnets_end_;  // range end of subnets_dir_

  Mutex mu_;
  std::string token_ GUARDED_BY(mu_);
  // authenticate() succeeded once (a token, or auth is off)
  bool authenticated_ GUARDED_BY(mu_) = false;
  uint64_t cluster_id_ GUARDED_BY(mu_) = 0;    // 0 = no answer yet
  uint64_t max_revision_ GUARDED_BY(mu_) = 0;  // highest header revision seen
  // v3 lease id -> expiry
  std::unordered_map<int64_t, Clock::time_point> expiries_ GUARDED_BY(mu_);
};

}  // namespace flannel
