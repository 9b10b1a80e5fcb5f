// EtcdV2Store: the Store contract on the etcd v2 keys API, byte-compatible with flannel v0.11.
//
// Keys: `<prefix>/config` holds the network config; `<prefix>/subnets/A.B.C.D-N` one lease each,
// whose value is the LeaseAttrs JSON and whose TTL is the lease lifetime. The HTTP requests are
// the ones flannel v0.11 sends (facts §2.4), so old and new agents share one etcd, with two
// deliberate fixes: renew is a compare-and-swap on the lease's modifiedIndex (`prevIndex`)
// instead of an unconditional PUT, and a watch event that does not parse is skipped (the cursor
// moves past it) instead of being re-read forever.
//
// Revisions are etcd indexes: Lease::revision is the node's modifiedIndex, LeaseList::revision
// the X-Etcd-Index of the listing. etcd keeps the last 1000 events of the whole cluster (not just
// of this prefix); a watcher further behind gets kHistoryGone.
//
// Watch details:
// - One long-poll returns one event; once one is in hand, events etcd already holds are
//   collected with further quick polls (at most ~20 ms more, never past the timeout) and
//   returned as one batch.
// - A poll that times out moves WatchResult::revision up to the etcd index at which the poll
//   started, when etcd's answer proves that no lease changed up to there. An idle watcher thus
//   stays inside the 1000-event window while other users of the same etcd write.
// - Removing the whole subnets directory (or a parent) is one etcd event with no per-lease
//   removals; it is reported as kHistoryGone so the caller lists again.
// - Lease keys must be direct children of `<prefix>/subnets` with the canonical name
//   (`10.5.34.0-24`); anything else is skipped with a warning in list and watch (v0.11's
//   unanchored regex would accept "x10.5.34.0-24", which we could never renew or delete).
//
// Store reset (store.h): every answer's X-Etcd-Index and X-Etcd-Cluster-Id go through one
// ResetDetector (stores/etcd/v2_reset.h); a watch whose cursor is ahead of the etcd index by quorum
// (a reset another call of this Store already reported) gets kHistoryGone.
//
// Transport, failover, TLS and timeouts: see stores/etcd/http_client.h. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "stores/etcd/http_client.h"
#include "stores/etcd/options.h"
#include "stores/etcd/v2_reset.h"
#include "stores/store.h"

namespace flannel {

class EtcdV2Store : public Store {
 public:
  // Checks the options (endpoint URLs, readable TLS files) and throws std::invalid_argument
  // naming the problem (std::runtime_error when libcurl cannot be loaded). Does not contact etcd:
  // an unreachable etcd shows up as kUnavailable from the first operation.
  static std::unique_ptr<EtcdV2Store> open(const EtcdOptions& options);

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

  // The key prefix as normalize_key_prefix() spells it ("/coreos.com/network"; "" for the
  // root), for tests and logs.
  const std::string& prefix() const { return prefix_; }

 private:
  class Watch;  // one watch_leases() call, as named steps (v2_store.cc)

  explicit EtcdV2Store(const EtcdOptions& options);
  // "/v2/keys/<prefix>/<rel>", escaped for a URL.
  std::string url_path(const std::string& key) const;
  std::string lease_key(const LeaseKey& subnet) const;
  Status write_lease(const Lease& lease, std::chrono::seconds ttl, const std::string& query,
                     bool one_shot, Lease* out);

  // Every request goes through here: sends it, then judges the answer for a store reset
  // (v2_reset.h). kStoreReset when this answer reveals one; kUnavailable when a suspicious
  // answer could not be confirmed; otherwise Ok and *resp is the answer, whatever its outcome.
  Status exchange(const etcd::HttpRequest& req, etcd::HttpResponse* resp,
                  std::stop_token stop = {});
  // The X-Etcd-Index and cluster id of a quorum read (of the config key; a 404 answers too).
  Status quorum_read(etcd::Observation* out);

  etcd::HttpClient http_;
  etcd::ResetDetector detector_;
  std::string prefix_;       // path.Join-cleaned, leading '/', no trailing '/'
  std::string config_key_;   // prefix_ + "/config"
  std::string subnets_dir_;  // prefix_ + "/subnets"
};

namespace etcd {
// Parses an RFC 3339 timestamp as etcd writes node.expiration ("2019-01-02T15:04:05.123456789Z",
// or with a "+01:00" offset). nullopt when it does not parse or lies outside
// what system_clock holds (years 1678..2261). Pure; defined in v2_store.cc.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);
}  // namespace etcd

}  // namespace flannel
