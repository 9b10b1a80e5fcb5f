#include "stores/etcd/v2_store.h"

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "stores/etcd/v2_decode.h"
#include "stores/key_prefix.h"

namespace flannel {

using etcd::HttpRequest;
using etcd::HttpResponse;
using etcd::index_field;
using etcd::is_dir;
using etcd::lease_subnet;
using etcd::node_to_lease;
using etcd::str_field;
using nlohmann::json;

namespace etcd {

namespace {
bool read_int(std::string_view s, size_t pos, size_t len, int* out) {
  if (pos + len > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}
}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view s) {
  using namespace std::chrono;
  int y, mo, d, h, mi, sec;
  if (!read_int(s, 0, 4, &y) || s.size() < 20 || s[4] != '-' || !read_int(s, 5, 2, &mo) ||
      s[7] != '-' || !read_int(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
      !read_int(s, 11, 2, &h) || s[13] != ':' || !read_int(s, 14, 2, &mi) || s[16] != ':' ||
      !read_int(s, 17, 2, &sec)) {
    return std::nullopt;
  }
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  size_t pos = 19;
  nanoseconds frac{0};
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t ns = 0;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 9) {
        ns = ns * 10 + (s[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 9; ++i) ns *= 10;
    frac = nanoseconds{ns};
  }
  minutes offset{0};
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!read_int(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !read_int(s, pos + 4, 2, &om)) {
      return std::nullopt;
    }
    offset = hours{oh} + minutes{om};
    if (s[pos] == '-') offset = -offset;
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  // In seconds first: system_clock counts nanoseconds in 64 bits (years 1678..2261), and a year
  // such as 9999 overflowed the conversion (undefined behaviour; found by
  // tests/fuzz/etcd_v2_fuzz.cc). A time outside that range is not one etcd writes for a lease
  // (now + TTL), and clamping it would only move the overflow to whoever subtracts from it.
  sys_seconds whole = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} - offset;
  constexpr auto kMax = duration_cast<seconds>(system_clock::duration::max()) - seconds{1};
  constexpr auto kMin = duration_cast<seconds>(system_clock::duration::min()) + seconds{1};
  if (whole.time_since_epoch() > kMax || whole.time_since_epoch() < kMin) return std::nullopt;
  return time_point_cast<system_clock::duration>(whole) +
         duration_cast<system_clock::duration>(frac);
}

}  // namespace etcd

namespace {

using SteadyClock = std::chrono::steady_clock;

// How long a watch keeps collecting events that etcd already holds after the first one arrived.
// Events in history come back in well under a millisecond on a LAN; this only bounds the wait
// when the guess that more are available was wrong (writes elsewhere in the cluster).
constexpr std::chrono::milliseconds kDrainWindow{20};
constexpr size_t kMaxBatch = 1024;
// How long a long-poll must stay silent after its headers before its X-Etcd-Index is trusted as
// "nothing happened up to here" (a replayed event follows the headers within microseconds).
constexpr std::chrono::milliseconds kQuietProof{250};
// How long a watch waits before polling again a member whose index is behind ours.
constexpr std::chrono::milliseconds kLagPause{100};

// Turns a non-transport answer that is not a success into a Status. `key` is the etcd key the
// request was about, for the message.
Status error_status(const HttpResponse& resp, const std::string& key) {
  etcd::ErrorBody err = etcd::decode_error(resp.body);
  std::string msg = "etcd " + resp.endpoint + ": " + key + ": ";
  if (err.code == 0) {
    std::string text = resp.body.substr(0, 200);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
      text.pop_back();
    }
    msg += "HTTP " + std::to_string(resp.status) + (text.empty() ? "" : ": " + text);
    if (resp.status == 401 || resp.status == 403) {
      msg += " (check -etcd-username/-etcd-password)";
    }
    return Status::Error(StoreCode::kUnavailable, msg);
  }
  msg += err.message.empty() ? "error" : err.message;
  if (!err.cause.empty()) msg += " (" + err.cause + ")";
  msg += " [errorCode " + std::to_string(err.code) + "]";
  StoreCode code = StoreCode::kUnavailable;
  switch (err.code) {
    case etcd::kEcodeKeyNotFound: code = StoreCode::kNotFound; break;
    case etcd::kEcodeTestFailed:
    case etcd::kEcodeNodeExist: code = StoreCode::kConflict; break;
    case etcd::kEcodeEventIndexCleared: code = StoreCode::kHistoryGone; break;
    case etcd::kEcodeUnauthorized:
      // Unavailable, not invalid: the daemon keeps retrying while an operator fixes the
      // credentials or the etcd roles.
      msg += " (check -etcd-username/-etcd-password and the user's etcd roles)";
      break;
    default:
      // 102..108: not a file, not a dir, root read-only, dir not empty...; 2xx: bad request.
      if ((err.code > 100 && err.code < 200) || (err.code >= 200 && err.code < 300)) {
        code = StoreCode::kInvalid;
      }
      break;
  }
  return Status::Error(code, msg);
}

Status transport_status(const HttpResponse& resp) {
  return Status::Error(StoreCode::kUnavailable, resp.error);
}

// Parses a 2xx JSON body; kInvalid naming the endpoint when it is not JSON.
Status not_etcd_json(const HttpResponse& resp) {
  return Status::Error(
      StoreCode::kInvalid,
      "etcd " + resp.endpoint + ": response is not etcd JSON: " + resp.body.substr(0, 200));
}

Status parse_body(const HttpResponse& resp, json* out) {
  *out = json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded() || !out->is_object()) return not_etcd_json(resp);
  return Status::Ok();
}

std::string ttl_form(std::chrono::seconds ttl, const std::string& value) {
  std::string body;
  if (ttl.count() > 0) body = "ttl=" + std::to_string(ttl.count()) + "&";
  body += "value=" + etcd::url_escape(value);
  return body;
}

}  // namespace

std::unique_ptr<EtcdV2Store> EtcdV2Store::open(const EtcdOptions& options) {
  return std::unique_ptr<EtcdV2Store>(new EtcdV2Store(options));
}

EtcdV2Store::EtcdV2Store(const EtcdOptions& options)
    : http_(options),
      prefix_(normalize_key_prefix(options.prefix)),
      config_key_(prefix_ + "/config"),
      subnets_dir_(prefix_ + "/subnets") {}

std::string EtcdV2Store::describe() const {
  std::string eps;
  for (const auto& ep : http_.endpoints()) {
    if (!eps.empty()) eps += ", ";
    eps += ep;
  }
  return "etcd [" + eps + "] prefix " + (prefix_.empty() ? "/" : prefix_);
}

std::string EtcdV2Store::url_path(const std::string& key) const {
  return "/v2/keys" + etcd::escape_path(key);
}

std::string EtcdV2Store::lease_key(const LeaseKey& subnet) const {
  return subnets_dir_ + "/" + subnet_key(subnet);
}

Status EtcdV2Store::quorum_read(etcd::Observation* out) {
  HttpRequest req;
  req.path = url_path(config_key_);
  req.query = "quorum=true&recursive=false&sorted=false";
  HttpResponse resp = http_.send(req);
  if (resp.outcome != HttpResponse::Outcome::kOk) return transport_status(resp);
  if (!resp.etcd_index) {
    return Status::Error(StoreCode::kUnavailable, "etcd " + resp.endpoint + ": quorum read of " +
                                                      config_key_ + " has no X-Etcd-Index");
  }
  *out = {resp.etcd_index, resp.cluster_id};
  return Status::Ok();
}

Status EtcdV2Store::exchange(const HttpRequest& req, HttpResponse* resp, std::stop_token stop) {
  using Verdict = etcd::ResetDetector::Verdict;
  const etcd::ResetDetector::Ticket ticket = detector_.ticket();
  if (req.deadline) {
    // A long-poll's headers arrive at once, its body maybe never (a wiped etcd will not reach
    // our waitIndex for a long time): judge the headers as soon as they are there.
    HttpRequest poll = req;
    poll.reject_headers = [this, &ticket, outer = req.reject_headers](
                              std::optional<uint64_t> index, const std::string& cluster_id) {
      return detector_.alarming(ticket, {index, cluster_id}) || (outer && outer(index, cluster_id));
    };
    *resp = http_.send(poll, stop);
  } else {
    *resp = http_.send(req, stop);
  }
  if (resp->outcome != HttpResponse::Outcome::kOk &&
      resp->outcome != HttpResponse::Outcome::kTimeout) {
    return Status::Ok();  // no answer, nothing to judge
  }
  std::string why;
  Verdict verdict = detector_.observe(ticket, {resp->etcd_index, resp->cluster_id}, &why);
  if (verdict == Verdict::kSuspect) {
    etcd::Observation quorum;
    if (Status s = quorum_read(&quorum); !s.ok()) {
      s.message = "etcd " + resp->endpoint + " answered with index " +
                  std::to_string(resp->etcd_index.value_or(0)) + ", below the " +
                  std::to_string(ticket.highest) +
                  " already seen, and the quorum read to tell a reset from a lagging member "
                  "failed: " +
                  s.message;
      return s;
    }
    verdict = detector_.confirm(ticket, quorum, &why);
  }
  if (verdict == Verdict::kReset) {
    return Status::Error(StoreCode::kStoreReset, "etcd " + resp->endpoint + ": store reset: " +
                                                     why + "; everything read before is void");
  }
  return Status::Ok();
}

Status EtcdV2Store::get_config(std::string* out) {
  HttpRequest req;
  req.path = url_path(config_key_);
  req.query = "quorum=true&recursive=false&sorted=false";
  HttpResponse resp;
  if (Status s = exchange(req, &resp); !s.ok()) return s;
  if (resp.outcome != HttpResponse::Outcome::kOk) return transport_status(resp);
  if (resp.status != 200) return error_status(resp, config_key_);
  json body;
  if (Status s = parse_body(resp, &body); !s.ok()) return s;
  const json& node = body.contains("node") ? body["node"] : json();
  if (!node.is_object() || is_dir(node)) {
    return Status::Error(StoreCode::kInvalid, "etcd " + resp.endpoint + ": " + config_key_ +
                                                  " is a directory, not a config value");
  }
  *out = str_field(node, "value");
  return Status::Ok();
}

Status EtcdV2Store::set_config(const std::string& value) {
  HttpRequest req;
  req.method = "PUT";
  req.path = url_path(config_key_);
  req.form_body = "value=" + etcd::url_escape(value);
  // An unconditional PUT of the same value is idempotent: it may fail over freely.
  HttpResponse resp;
  if (Status s = exchange(req, &resp); !s.ok()) return s;
  if (resp.outcome != HttpResponse::Outcome::kOk) return transport_status(resp);
  if (resp.status != 200 && resp.status != 201) return error_status(resp, config_key_);
  return Status::Ok();
}

Status EtcdV2Store::list_leases(LeaseList* out) {
  HttpRequest req;
  req.path = url_path(subnets_dir_);
  req.query = "quorum=true&recursive=true&sorted=false";
  HttpResponse resp;
  if (Status s = exchange(req, &resp); !s.ok()) return s;
  if (resp.outcome != HttpResponse::Outcome::kOk) return transport_status(resp);
  LeaseList list;
  if (resp.status != 200) {
    etcd::ErrorBody err = etcd::decode_error(resp.body);
    if (err.code == etcd::kEcodeKeyNotFound) {
      // No lease was ever written: an empty list, watched from the index of this answer.
      list.revision = err.index.value_or(resp.etcd_index.value_or(0));
      *out = std::move(list);
      return Status::Ok();
    }
    return error_status(resp, subnets_dir_);
  }
  // Decoded as it is read: no JSON tree of every lease (v2_list_decode.cc).
  etcd::LeaseListBody body = etcd::decode_lease_list(resp.body, subnets_dir_);
  if (!body.json_object) return not_etcd_json(resp);
  if (!resp.etcd_index) {
    return Status::Error(StoreCode::kInvalid,
                         "etcd " + resp.endpoint + ": answer has no X-Etcd-Index header");
  }
  list.revision = *resp.etcd_index;
  if (!body.node_is_dir) {
    return Status::Error(StoreCode::kInvalid, "etcd " + resp.endpoint + ": " + subnets_dir_ +
                                                  " is a value, not a directory of leases");
  }
  list.leases = std::move(body.leases);
  list.warnings = std::move(body.warnings);
  *out = std::move(list);
  return Status::Ok();
}

Status EtcdV2Store::get_lease(const LeaseKey& subnet, Lease* out) {
  HttpRequest req;
  req.path = url_path(lease_key(subnet));
  req.query = "quorum=true&recursive=false&sorted=false";
  HttpResponse resp;
  if (Status s = exchange(req, &resp); !s.ok()) return s;
  if (resp.outcome != HttpResponse::Outcome::kOk) return transport_status(resp);
  if (resp.status != 200) return error_status(resp, lease_key(subnet));
  json body;
  if (Status s = parse_body(resp, &body); !s.ok()) return s;
  std::string why;
  if (!node_to_lease(body.value("node", json::object()), subnet, out, &why)) {
    return Status::Error(StoreCode::kInvalid,
                         "etcd " + resp.endpoint + ": lease " + lease_key(subnet) + ": " + why);
  }
  return Status::Ok();
}

Status EtcdV2Store::write_lease(const Lease& lease, std::chrono::seconds ttl,
                                const std::string& query, bool one_shot, Lease* out) {
  if (ttl.count() < 0) {
    return Status::Error(StoreCode::kInvalid, "lease TTL must not be negative");
  }
  HttpRequest req;
  req.method = "PUT";
  req.path = url_path(lease_key(lease.key()));
  req.query = query;
  req.form_body = ttl_form(ttl, encode_lease_attrs(lease.attrs));
  req.one_shot = one_shot;
  HttpResponse resp;
  if (Status s = exchange(req, &resp); !s.ok()) return s;
  if (resp.outcome != HttpResponse::Outcome::kOk) return transport_status(resp);
  if (resp.status != 200 && resp.status != 201) return error_status(resp, lease_key(lease.key()));
  json body;
  if (Status s = parse_body(resp, &body); !s.ok()) return s;
  const json node = body.value("node", json::object());
  Lease written = lease;
  written.expiration.reset();
  std::string exp = str_field(node, "expiration");
  if (!exp.empty()) written.expiration = etcd::parse_rfc3339(exp);
  written.revision = index_field(node, "modifiedIndex");
  written.created = index_field(node, "createdIndex");
  if (ttl.count() > 0 && !written.expiration) {
    // The write is done; failing now would make the caller retry into a conflict with itself.
    // etcd always sends the expiration, so this is a guess for a misbehaving proxy at most.
    written.expiration = Clock::now() + ttl;
  }
  if (out) *out = std::move(written);
  return Status::Ok();
}

Status EtcdV2Store::create_lease(const Lease& lease, std::chrono::seconds ttl, Lease* created) {
  return write_lease(lease, ttl, "prevExist=false", /*one_shot=*/true, created);
}

Status EtcdV2Store::renew_lease(const Lease& lease, std::chrono::seconds ttl, Lease* renewed) {
  if (lease.revision == 0) {
    // prevIndex=0 means "no condition" to etcd: that would be v0.11's unconditional PUT.
    return Status::Error(StoreCode::kInvalid,
                         "renew of " + lease.key().str() + " needs the lease's revision");
  }
  return write_lease(lease, ttl, "prevIndex=" + std::to_string(lease.revision),
                     /*one_shot=*/true, renewed);
}

Status EtcdV2Store::delete_lease(const LeaseKey& subnet, uint64_t expected_revision) {
  HttpRequest req;
  req.method = "DELETE";
  req.path = url_path(lease_key(subnet));
  if (expected_revision != 0) req.query = "prevIndex=" + std::to_string(expected_revision);
  req.one_shot = true;
  HttpResponse resp;
  if (Status s = exchange(req, &resp); !s.ok()) return s;
  if (resp.outcome != HttpResponse::Outcome::kOk) return transport_status(resp);
  if (resp.status != 200) return error_status(resp, lease_key(subnet));
  return Status::Ok();
}

// One watch_leases() call: a run of long-polls from the cursor until a batch of events, the
// deadline, a stop or an error. Lives on the caller's stack for that call; the store must
// outlive it.
class EtcdV2Store::Watch {
 public:
  Watch(EtcdV2Store& store, uint64_t after_revision, std::chrono::milliseconds timeout,
        std::stop_token stop)
      : store_(store),
        after_(after_revision),
        timeout_(timeout),
        deadline_(SteadyClock::now() + timeout),
        stop_(std::move(stop)) {
    r_.revision = after_revision;
  }

  WatchResult run();

 private:
  // What to do after one poll: poll again, return the events in hand (status ok), or return r_
  // as it is (its status says why).
  enum class Next { kPoll, kBatchDone, kReturn };

  HttpRequest request() const;
  Next after_response(const HttpResponse& resp);
  bool store_behind_cursor(const HttpResponse& resp);
  Next after_lagging_member();
  Next after_no_answer(const HttpResponse& resp);
  Next after_empty_answer();
  Next after_http_error(const HttpResponse& resp);
  Next take_answer(const HttpResponse& resp);
  Next lease_dir_removed(const HttpResponse& resp, const std::string& key, uint64_t index);
  void add_event(const json& body, const json& node, const std::string& action,
                 const std::string& key, uint64_t index, bool removal);
  Next after_event(const HttpResponse& resp);
  Status timed_out() const {
    return Status::Error(StoreCode::kTimeout,
                         "no lease change within " + std::to_string(timeout_.count()) + " ms");
  }

  EtcdV2Store& store_;
  const uint64_t after_;
  const std::chrono::milliseconds timeout_;
  const SteadyClock::time_point deadline_;
  const std::stop_token stop_;
  bool draining_ = false;  // at least one event in hand: only pick up what etcd already has
  WatchResult r_;
};

WatchResult EtcdV2Store::watch_leases(uint64_t after_revision, std::chrono::milliseconds timeout,
                                      std::stop_token stop) {
  return Watch(*this, after_revision, timeout, std::move(stop)).run();
}

WatchResult EtcdV2Store::Watch::run() {
  for (;;) {
    HttpResponse resp;
    if (Status s = store_.exchange(request(), &resp, stop_); !s.ok()) {
      r_.events.clear();  // a reset voids them; kUnavailable: re-read from the same cursor
      r_.revision = after_;
      r_.status = std::move(s);
      return std::move(r_);
    }
    Next next = after_response(resp);
    if (next == Next::kPoll) continue;
    if (next == Next::kBatchDone) r_.status = Status::Ok();
    return std::move(r_);
  }
}

// One long-poll for the next event after the cursor. While draining, it only waits a moment:
// what etcd already has comes back at once.
HttpRequest EtcdV2Store::Watch::request() const {
  HttpRequest req;
  req.path = store_.url_path(store_.subnets_dir_);
  req.query = "recursive=true&wait=true&waitIndex=" + std::to_string(r_.revision + 1);
  req.deadline = draining_ ? std::min(deadline_, SteadyClock::now() + kDrainWindow) : deadline_;
  req.reject_headers = [cursor = r_.revision](std::optional<uint64_t> index, const std::string&) {
    return index && *index < cursor;  // judged by after_response()
  };
  return req;
}

EtcdV2Store::Watch::Next EtcdV2Store::Watch::after_response(const HttpResponse& resp) {
  if (!draining_ && store_behind_cursor(resp)) return Next::kReturn;
  if (resp.headers_rejected) return after_lagging_member();
  if (draining_ && resp.outcome != HttpResponse::Outcome::kOk) {
    return Next::kBatchDone;  // return the batch; a persistent problem shows up on the next call
  }
  if (resp.outcome != HttpResponse::Outcome::kOk) return after_no_answer(resp);
  if (resp.status == 200 && resp.body.empty()) return after_empty_answer();
  if (resp.status != 200) return after_http_error(resp);
  return take_answer(resp);
}

// Our cursor is ahead of this member. A lagging member catches up and the poll goes on; a store
// that is behind by quorum lost the history our cursor came from (a reset that this Store
// object already reported through another call): true, with r_.status kHistoryGone.
bool EtcdV2Store::Watch::store_behind_cursor(const HttpResponse& resp) {
  if (!resp.etcd_index || *resp.etcd_index >= r_.revision) return false;
  etcd::Observation quorum;
  if (!store_.quorum_read(&quorum).ok() || !quorum.index || *quorum.index >= r_.revision) {
    return false;
  }
  r_.status = Status::Error(StoreCode::kHistoryGone,
                            "etcd " + resp.endpoint + ": revision " + std::to_string(r_.revision) +
                                " is ahead of the etcd index " + std::to_string(*quorum.index) +
                                " (the store was reset); list the leases again");
  return true;
}

// Suspicious headers that were neither a reset nor a stale cursor: a lagging member. Poll again
// after a pause (it catches up within moments).
EtcdV2Store::Watch::Next EtcdV2Store::Watch::after_lagging_member() {
  if (draining_) return Next::kBatchDone;
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait_for(lock, stop_,
              std::min<SteadyClock::duration>(kLagPause, deadline_ - SteadyClock::now()),
              [] { return false; });
  if (stop_.stop_requested()) {
    r_.status = Status::Error(StoreCode::kCancelled, "watch cancelled");
    return Next::kReturn;
  }
  if (SteadyClock::now() >= deadline_) {
    r_.status = timed_out();
    return Next::kReturn;
  }
  return Next::kPoll;
}

// The poll ended without an answer: cancelled, timed out or failed.
EtcdV2Store::Watch::Next EtcdV2Store::Watch::after_no_answer(const HttpResponse& resp) {
  if (resp.outcome == HttpResponse::Outcome::kCancelled) {
    r_.status = Status::Error(StoreCode::kCancelled, "watch cancelled");
  } else if (resp.outcome == HttpResponse::Outcome::kTimeout) {
    // etcd flushes the headers of a long-poll as soon as its watcher is registered, with
    // X-Etcd-Index = the cluster index at that moment. Had a lease changed between our cursor
    // and that index, etcd would have written the event right behind the headers (it replays
    // it from its history). Headers long past with no body byte therefore mean no lease changed
    // up to that index, and the cursor may move there. This keeps an idle watcher inside etcd's
    // 1000-event window while the rest of a shared etcd is busy; otherwise every poll after a
    // quiet spell would end in kHistoryGone and a full resync.
    if (resp.status == 200 && resp.body.empty() && resp.etcd_index &&
        *resp.etcd_index > r_.revision && resp.headers_at &&
        SteadyClock::now() - *resp.headers_at >= kQuietProof) {
      r_.revision = *resp.etcd_index;
    }
    r_.status = timed_out();
  } else {
    r_.status = transport_status(resp);
  }
  return Next::kReturn;
}

// etcd closed the long-poll without an event (e.g. its watcher was dropped): reissue it.
EtcdV2Store::Watch::Next EtcdV2Store::Watch::after_empty_answer() {
  if (SteadyClock::now() < deadline_) return Next::kPoll;
  if (draining_) return Next::kBatchDone;
  r_.status = Status::Error(StoreCode::kTimeout, "no lease change");
  return Next::kReturn;
}

EtcdV2Store::Watch::Next EtcdV2Store::Watch::after_http_error(const HttpResponse& resp) {
  if (draining_) return Next::kBatchDone;
  r_.status = error_status(resp, store_.subnets_dir_);
  if (r_.status.code == StoreCode::kHistoryGone) {
    r_.status.message += ": revision " + std::to_string(after_) +
                         " is older than etcd's event history; list the leases again";
  }
  return Next::kReturn;
}

// One event of the lease directory: the cursor moves to it, whether it was usable or not.
EtcdV2Store::Watch::Next EtcdV2Store::Watch::take_answer(const HttpResponse& resp) {
  json body = json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  const json node = body.is_object() ? body.value("node", json::object()) : json::object();
  const json prev = body.is_object() ? body.value("prevNode", json::object()) : json::object();
  const std::string action = body.is_object() ? str_field(body, "action") : std::string();
  const std::string key = str_field(node, "key");
  uint64_t index = index_field(node, "modifiedIndex");
  if (index <= r_.revision) {
    // Never happens with a sane etcd; moving on by one keeps a broken answer from stalling us.
    r_.warnings.push_back("etcd " + resp.endpoint +
                          ": watch answer without a usable "
                          "modifiedIndex, skipped: " +
                          resp.body.substr(0, 200));
    index = r_.revision + 1;
  }
  const bool removal = action == "delete" || action == "expire" || action == "compareAndDelete";
  const std::string& dir = store_.subnets_dir_;
  if (removal && (is_dir(node) || is_dir(prev)) &&
      (key == dir || dir.starts_with(key + "/") || key == "/")) {
    return lease_dir_removed(resp, key, index);
  }
  add_event(body, node, action, key, index, removal);
  r_.revision = index;
  return after_event(resp);
}

// The whole lease directory went away with one event: there is no per-lease removal to report,
// so the caller must resync from a fresh list (after the events in hand, if any).
EtcdV2Store::Watch::Next EtcdV2Store::Watch::lease_dir_removed(const HttpResponse& resp,
                                                               const std::string& key,
                                                               uint64_t index) {
  if (!r_.events.empty()) return Next::kBatchDone;
  r_.revision = index;
  r_.status =
      Status::Error(StoreCode::kHistoryGone, "etcd " + resp.endpoint + ": " + key +
                                                 " was removed as a whole; list the leases again");
  return Next::kReturn;
}

// The lease event of one answer, or a warning naming it when it is not one (a bad key or value:
// skipped, never fatal).
void EtcdV2Store::Watch::add_event(const json& body, const json& node, const std::string& action,
                                   const std::string& key, uint64_t index, bool removal) {
  std::string why;
  std::optional<LeaseKey> subnet = lease_subnet(store_.subnets_dir_, key, &why);
  if (!body.is_object() || action.empty()) {
    why = "not an etcd event";
    subnet.reset();
  }
  if (subnet) {
    LeaseEvent ev;
    if (removal) {
      ev.type = LeaseEventType::kRemoved;
      ev.lease.subnet = subnet->subnet;
      ev.lease.ipv6_subnet = subnet->ipv6_subnet;
      ev.lease.revision = index;
      ev.expired = action == "expire";
      r_.events.push_back(std::move(ev));
    } else if (node_to_lease(node, *subnet, &ev.lease, &why)) {
      ev.type = LeaseEventType::kAdded;
      ev.lease.revision = index;
      r_.events.push_back(std::move(ev));
    } else {
      subnet.reset();
    }
  }
  if (!subnet) {
    r_.warnings.push_back("ignoring bad subnet event " + action + " " + key + " at index " +
                          std::to_string(index) + ": " + why);
  }
}

// With events in hand, keep polling only while etcd already knows more (up to kMaxBatch);
// without, until the deadline or a stop.
EtcdV2Store::Watch::Next EtcdV2Store::Watch::after_event(const HttpResponse& resp) {
  if (!r_.events.empty()) {
    draining_ = true;
    // X-Etcd-Index of a watch answer is etcd's index when the watch started: beyond this
    // event means more writes were already known, so a next poll likely returns at once.
    bool more_known = resp.etcd_index && *resp.etcd_index > r_.revision;
    if (!more_known || r_.events.size() >= kMaxBatch) return Next::kBatchDone;
  }
  if (SteadyClock::now() >= deadline_) {
    if (draining_) return Next::kBatchDone;
    r_.status = timed_out();
    return Next::kReturn;
  }
  if (stop_.stop_requested()) {
    if (draining_) return Next::kBatchDone;
    r_.status = Status::Error(StoreCode::kCancelled, "watch cancelled");
    return Next::kReturn;
  }
  return Next::kPoll;
}

}  // namespace flannel
