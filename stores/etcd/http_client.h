// HttpClient: the HTTP(S) client under EtcdV2Store (v2 keys API) and EtcdV3Store (v3 JSON gateway).
// libcurl, endpoint failover, TLS, basic auth, timeouts and cancellation; it knows nothing of keys
// or leases.
//
// Failover (as the etcd v2 Go client that flannel v0.11 uses): endpoints are tried in order
// starting at the "pinned" one; on a transport error or an HTTP 5xx the next one is tried, and
// whichever answers is pinned for the following requests.
//
// Retry safety: a request is either idempotent (GET, unconditional PUT of the config) or
// one-shot (compare-and-swap writes and deletes). An idempotent request fails over on any
// transport error or 5xx. A one-shot request fails over only when libcurl reports that not a
// single byte of the request was sent (DNS failure, connection refused, connect timeout, TLS
// handshake failure before the request): then the first server certainly did not apply it.
// Once the request may have reached a server, its outcome is unknown and the first error is
// returned (kUnavailable) instead of blindly replaying it elsewhere, where a replayed create would
// report "already exists" for the lease we just made, and a replayed renew "conflict". One-shot
// requests also use a fresh connection, because libcurl transparently resends a request once
// when a reused keep-alive connection turns out to be dead. An HTTP 5xx is a server answer, so
// a one-shot request that gets one is not repeated either (etcd may apply a proposal after
// answering "request timed out").
//
// Timeouts: every attempt has a connect timeout (dial_timeout) and a deadline (request_timeout
// for ordinary requests, the caller's timeout for a long-poll). etcd sends a long-poll's headers
// at once, so a long-poll without headers after request_timeout fails over to the next
// endpoint; one that timed out with no headers at all moves the pin on. A long-poll can be
// cancelled from another thread through a std::stop_token; the transfer is driven with
// curl_multi_poll and woken by curl_multi_wakeup, so cancellation takes effect within milliseconds.
//
// Thread safety: all methods may be called concurrently. Each request borrows its own libcurl
// handles from a small pool (which keeps connections alive for reuse), so a long-poll blocking
// in one thread never delays requests from others.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "core/thread_annotations.h"
#include "stores/etcd/options.h"

namespace flannel::etcd {

struct HttpRequest {
  std::string method = "GET";  // GET, PUT, DELETE, POST
  std::string path;            // "/v2/keys/coreos.com/network/config", already escaped
  std::string query;           // "quorum=true&recursive=false" (no '?'), may be empty
  std::string form_body;       // application/x-www-form-urlencoded body, sent when non-empty
  std::string json_body;       // application/json body (v3 gateway), sent when non-empty
  bool one_shot = false;       // see "Retry safety" above
  // Basic auth from EtcdOptions::username/password (the v2 API). The v3 gateway authenticates
  // with a token instead: basic_auth = false and `authorization` = the token ("" = none).
  bool basic_auth = true;
  std::string authorization;  // sent as "Authorization: <value>" when non-empty
  // Streaming body (the v3 watch): called with the whole body received so far after every
  // chunk; returning true ends the transfer there and it counts as a complete response (the
  // connection is closed, not reused). Combine with `deadline` for a stream that may stay quiet.
  // Like reject_headers, called only during send(), on the thread that called it: what either
  // captures must stay valid until send() returns, no longer.
  std::function<bool(std::string_view body)> stream_done;
  // Long-poll: the attempt deadline is this instead of request_timeout, and the request fails
  // over (it is a GET) but does not count as a dead endpoint when the deadline passes.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  // Long-poll only: called once when the response headers are complete, with X-Etcd-Index (if
  // any) and X-Etcd-Cluster-Id ("" if absent). Returning true ends the poll at once with
  // kTimeout and headers_rejected set, instead of waiting for the body (see v2_reset.h).
  std::function<bool(std::optional<uint64_t> index, const std::string& cluster_id)> reject_headers;
};

struct HttpResponse {
  enum class Outcome {
    kOk,         // an HTTP response (any status) arrived; see status/body
    kTransport,  // no usable response from any endpoint tried; see error
    kTimeout,    // long-poll deadline passed with no complete response (not an error);
                 // status/etcd_index hold the headers if they had arrived
    kCancelled,  // the stop token fired
  };
  Outcome outcome = Outcome::kOk;
  long status = 0;                     // HTTP status
  std::string body;                    // response body
  std::optional<uint64_t> etcd_index;  // X-Etcd-Index header, when present and numeric
  std::string cluster_id;              // X-Etcd-Cluster-Id header, "" when absent
  // When the response headers were complete (kTimeout: the body may still be missing).
  std::optional<std::chrono::steady_clock::time_point> headers_at;
  bool headers_rejected = false;  // kTimeout because reject_headers said so
  std::string endpoint;           // the endpoint that answered (or failed last)
  std::string error;              // kTransport: "etcd URL: problem" per endpoint, "; "
};

class HttpClient {
 public:
  // Validates the options (each endpoint an http:// or https:// URL, TLS files readable; a
  // client cert needs its key; positive timeouts) and throws std::invalid_argument naming the
  // problem otherwise. Loads libcurl first (curl_lib()), so a missing libcurl throws
  // std::runtime_error. Does not contact any endpoint.
  explicit HttpClient(EtcdOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `req` with failover. Never throws for network or server problems; returns kTransport
  // with a message naming every endpoint tried (only a failed libcurl handle allocation throws
  // std::runtime_error). `stop` may be a default (never-stopping) token; a stop already
  // requested, or a `deadline` already past, returns kCancelled / kTimeout without a request.
  // `req` is used only during the call. An HTTP 5xx is a failure (kTransport, the status not
  // kept), any other status a response (kOk).
  HttpResponse send(const HttpRequest& req, std::stop_token stop = {});

  const std::vector<std::string>& endpoints() const { return endpoints_; }
  const EtcdOptions& options() const { return options_; }

 private:
  struct Conn;  // one easy handle + the multi handle that drives it (and caches its connection)
  using ConnPtr = std::unique_ptr<Conn>;

  struct Attempt;
  class Transfer;  // the libcurl side of one attempt, as named steps (http_client.cc)
  Attempt attempt(Conn& conn, const std::string& endpoint, const HttpRequest& req,
                  std::stop_token stop);
  ConnPtr acquire() EXCLUDES(pool_mu_);
  void release(ConnPtr conn) EXCLUDES(pool_mu_);

  EtcdOptions options_;
  std::vector<std::string> endpoints_;  // trailing '/' removed
  std::atomic<size_t> pinned_{0};
  Mutex pool_mu_;
  std::vector<ConnPtr> pool_ GUARDED_BY(pool_mu_);  // idle handles
};

// Percent-encodes a string for a URL query or form body (RFC 3986 unreserved kept).
std::string url_escape(std::string_view s);
// Percent-encodes a key path segment by segment, keeping the '/' separators.
std::string escape_path(std::string_view path);

}  // namespace flannel::etcd
