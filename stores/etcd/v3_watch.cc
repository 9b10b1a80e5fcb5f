// EtcdV3Store::watch_leases: one streaming POST /v3/watch per call (see v3_store.h, "Watch").
#include <algorithm>

#include "stores/etcd/v3_store.h"

namespace flannel {

using etcd::HttpRequest;
using etcd::HttpResponse;
using etcd_v3::json;

namespace {

// What the stream said so far; filled by the body callback, line by line.
struct StreamState {
  size_t parsed = 0;  // bytes of the body already consumed (complete lines)
  bool finished = false;
  Status status;  // non-ok: an error, history gone, a reset (ends the watch)
  bool auth_error = false;
};

}  // namespace

// One watch_leases() call: its cursor, deadline and stop token, and the result it gathers over
// at most two streams (the second only after re-authenticating once). Lives on the caller's
// stack for that call; the store must outlive it.
class EtcdV3Store::Watch {
 public:
  Watch(EtcdV3Store& store, uint64_t after_revision, std::chrono::milliseconds timeout,
        std::stop_token stop)
      : store_(store),
        after_(after_revision),
        deadline_(std::chrono::steady_clock::now() + timeout),
        stop_(std::move(stop)),
        with_auth_(!store.http_.options().username.empty()) {
    r_.revision = after_revision;
  }

  WatchResult run();

 private:
  // What to do once a stream has ended.
  enum class Next { kReturn, kRetry };

  HttpRequest request(StreamState* st);
  bool read_lines(StreamState* st, std::string_view body);
  void on_message(StreamState* st, const json& msg);
  Status check_result(const json& res);
  bool store_behind_cursor();
  void take_events(StreamState* st, const json& res);
  bool take_event(StreamState* st, const json& ev);
  bool removal_of(const etcd_v3::WatchEvent& event, LeaseEvent* out, std::string* why);
  Next after_stream_error(const StreamState& st, int attempt);
  Next after_response(const HttpResponse& resp, int attempt);
  Next after_http_error(const HttpResponse& resp, int attempt);
  Next reauthenticate();

  EtcdV3Store& store_;
  const uint64_t after_;
  const std::chrono::steady_clock::time_point deadline_;
  const std::stop_token stop_;
  const bool with_auth_;
  WatchResult r_;
};

WatchResult EtcdV3Store::watch_leases(uint64_t after_revision, std::chrono::milliseconds timeout,
                                      std::stop_token stop) {
  return Watch(*this, after_revision, timeout, std::move(stop)).run();
}

// Opens the stream and waits for events, an error or the deadline. A token refused on the
// first stream (expired, or auth enabled since) is renewed once and the stream opened again.
WatchResult EtcdV3Store::Watch::run() {
  if (stop_.stop_requested()) {
    r_.status = Status::Error(StoreCode::kCancelled, "watch cancelled");
    return r_;
  }
  for (int attempt = 0;; ++attempt) {
    if (attempt == 0 && store_.needs_authentication()) {
      if (Status a = store_.authenticate(); !a.ok()) {
        r_.status = a;
        return r_;
      }
    }
    StreamState st;
    HttpResponse resp = store_.http_.send(request(&st), stop_);
    Next next = st.status.ok() ? after_response(resp, attempt) : after_stream_error(st, attempt);
    if (next == Next::kReturn) return std::move(r_);
  }
}

// The watch's create request, from after_ + 1 with the previous value of each key (a removal
// names the v3 lease the key had). The body is read as it arrives; *st must outlive the send.
HttpRequest EtcdV3Store::Watch::request(StreamState* st) {
  json create = {{"key", etcd_v3::base64_encode(store_.subnets_dir_)},
                 {"range_end", etcd_v3::base64_encode(store_.subnets_end_)},
                 {"start_revision", std::to_string(after_ + 1)},
                 {"prev_kv", true}};
  HttpRequest req;
  req.method = "POST";
  req.path = "/v3/watch";
  req.json_body = json{{"create_request", create}}.dump();
  req.basic_auth = false;
  req.authorization = store_.token();
  req.deadline = deadline_;
  req.stream_done = [this, st](std::string_view body) { return read_lines(st, body); };
  return req;
}

// The stream is one JSON message per line; true (stop reading) once events or an error came.
bool EtcdV3Store::Watch::read_lines(StreamState* st, std::string_view body) {
  size_t nl;
  while (!st->finished && st->status.ok() &&
         (nl = body.find('\n', st->parsed)) != std::string_view::npos) {
    std::string_view line = body.substr(st->parsed, nl - st->parsed);
    st->parsed = nl + 1;
    if (line.find_first_not_of(" \r\t") == std::string_view::npos) continue;
    on_message(st, json::parse(line, nullptr, /*allow_exceptions=*/false));
  }
  return st->finished || !st->status.ok();
}

// One message of the stream: {"result": WatchResponse} or {"error": {...}}.
void EtcdV3Store::Watch::on_message(StreamState* st, const json& msg) {
  if (!msg.is_object()) {
    st->status = Status::Error(StoreCode::kInvalid, "etcd watch: stream message is not JSON");
    return;
  }
  if (auto err = etcd_v3::parse_error(msg)) {
    st->auth_error = err->code == etcd_v3::kGrpcUnauthenticated;
    st->status = Status::Error(StoreCode::kUnavailable, "etcd watch: " + err->message);
    return;
  }
  auto res = msg.find("result");
  if (res == msg.end() || !res->is_object()) return;
  if (Status s = check_result(*res); !s.ok()) {
    st->status = s;
    return;
  }
  take_events(st, *res);
}

// Whether the watch may go on: a reset, a cursor the store no longer has history for, or a
// watch etcd cancelled ends it.
Status EtcdV3Store::Watch::check_result(const json& res) {
  try {
    const etcd_v3::Header h = etcd_v3::parse_header(res);
    if (Status s = store_.check_header(h); !s.ok()) return s;
    if (h.revision != 0 && h.revision < after_ && store_behind_cursor()) {
      return Status::Error(StoreCode::kHistoryGone,
                           "etcd watch: revision " + std::to_string(after_) +
                               " is ahead of the store's revision " + std::to_string(h.revision) +
                               " (the store was reset); list the leases again");
    }
    if (uint64_t compacted = etcd_v3::get_uint(res, "compact_revision"); compacted != 0) {
      return Status::Error(StoreCode::kHistoryGone, "etcd watch from revision " +
                                                        std::to_string(after_ + 1) +
                                                        ": history compacted up to " +
                                                        std::to_string(compacted) + "; list again");
    }
  } catch (const std::exception& e) {
    return Status::Error(StoreCode::kInvalid, std::string("etcd watch: ") + e.what());
  }
  if (etcd_v3::get_true(res, "canceled")) {
    return Status::Error(StoreCode::kUnavailable,
                         "etcd cancelled the watch: " + etcd_v3::get_string(res, "cancel_reason"));
  }
  return Status::Ok();
}

// Our cursor is ahead of an answer. A lagging member catches up; a store that is behind by a
// linearizable read lost the history the cursor came from (a reset this Store already reported
// through another call): list again rather than wait. May throw (caught by check_result()).
bool EtcdV3Store::Watch::store_behind_cursor() {
  json range = etcd_v3::range_request(store_.config_key_);
  range["count_only"] = true;
  json now;
  return store_.call("/v3/kv/range", range, false, &now, /*check=*/false).ok() &&
         etcd_v3::parse_header(now).revision < after_;
}

// The events of one WatchResponse; the stream ends after the first message that had any.
void EtcdV3Store::Watch::take_events(StreamState* st, const json& res) {
  auto events = res.find("events");
  if (events == res.end() || !events->is_array()) return;
  for (const json& ev : *events) {
    if (!take_event(st, ev)) return;
  }
  if (!r_.events.empty()) st->finished = true;
}

// One event into r_ (an unreadable one is skipped with a warning). False when etcd could not
// say when the lease expires: the watch ends with that error and the cursor stops before the
// event, so the next watch retries it.
bool EtcdV3Store::Watch::take_event(StreamState* st, const json& ev) {
  etcd_v3::WatchEvent event;
  try {
    event = etcd_v3::parse_watch_event(ev);
  } catch (const std::exception& e) {
    r_.warnings.push_back(std::string("skipped unreadable watch event: ") + e.what());
    return true;
  }
  const etcd_v3::KeyValue& kv = event.kv;
  r_.revision = std::max<uint64_t>(r_.revision, static_cast<uint64_t>(kv.mod_revision));
  std::string why;
  LeaseEvent out;
  if (event.is_delete) {
    if (!removal_of(event, &out, &why)) {
      r_.warnings.push_back("skipped removal: " + why);
      return true;
    }
  } else if (Status failed; !store_.lease_of(kv, /*ask=*/true, &out.lease, &why, &failed)) {
    if (!failed.ok()) {  // etcd did not answer timetolive: retry this event later
      st->status = failed;
      r_.revision = std::max(after_, static_cast<uint64_t>(kv.mod_revision) - 1);
      return false;
    }
    r_.warnings.push_back("skipped " + why);
    return true;
  }
  r_.events.push_back(std::move(out));
  return true;
}

// The removal event of a deleted key; false with *why when the key names no subnet.
bool EtcdV3Store::Watch::removal_of(const etcd_v3::WatchEvent& event, LeaseEvent* out,
                                    std::string* why) {
  const etcd_v3::KeyValue& kv = event.kv;
  out->type = LeaseEventType::kRemoved;
  LeaseKey k;
  if (!store_.subnet_of(kv.key, &k, why)) return false;
  out->lease.subnet = k.subnet;
  out->lease.ipv6_subnet = k.ipv6_subnet;
  out->lease.revision = static_cast<uint64_t>(kv.mod_revision);
  // Expired = the key's v3 lease is gone (etcd deleted the key because it expired, or someone
  // revoked it); an explicit delete leaves the lease alive.
  if (event.prev_lease != 0) {
    std::optional<Clock::time_point> expiry;
    out->expired = store_.lease_expiry(event.prev_lease, &expiry).ok() && !expiry;
  }
  return true;
}

// The stream said something that ends the watch.
EtcdV3Store::Watch::Next EtcdV3Store::Watch::after_stream_error(const StreamState& st,
                                                                int attempt) {
  if (st.auth_error && with_auth_ && attempt == 0) return reauthenticate();
  if (!r_.events.empty() && st.status.code == StoreCode::kUnavailable) {
    return Next::kReturn;  // deliver what came before the failure; the cursor stops before it
  }
  r_.status = st.status;
  if (st.status.code == StoreCode::kHistoryGone || st.status.code == StoreCode::kStoreReset) {
    r_.events.clear();
    r_.revision = after_;
  }
  return Next::kReturn;
}

// The stream ended without an error message: events, cancellation, the deadline, a failed
// transfer, an HTTP error, or the server closing it.
EtcdV3Store::Watch::Next EtcdV3Store::Watch::after_response(const HttpResponse& resp, int attempt) {
  if (!r_.events.empty()) return Next::kReturn;  // kOk
  switch (resp.outcome) {
    case HttpResponse::Outcome::kCancelled:
      r_.status = Status::Error(StoreCode::kCancelled, "watch cancelled");
      return Next::kReturn;
    case HttpResponse::Outcome::kTimeout:
      r_.status = Status::Error(StoreCode::kTimeout, "no lease change");
      return Next::kReturn;
    case HttpResponse::Outcome::kTransport:
      r_.status = Status::Error(StoreCode::kUnavailable, resp.error);
      return Next::kReturn;
    case HttpResponse::Outcome::kOk: break;
  }
  if (resp.status != 200) return after_http_error(resp, attempt);
  r_.status =
      Status::Error(StoreCode::kUnavailable, "etcd " + resp.endpoint + " closed the watch stream");
  return Next::kReturn;
}

// A refused token is renewed once; any other HTTP error ends the watch with etcd's message.
EtcdV3Store::Watch::Next EtcdV3Store::Watch::after_http_error(const HttpResponse& resp,
                                                              int attempt) {
  json j = json::parse(resp.body, nullptr, false);
  auto err = j.is_discarded() ? std::nullopt : etcd_v3::parse_error(j);
  if ((resp.status == 401 || (err && err->code == etcd_v3::kGrpcUnauthenticated)) && with_auth_ &&
      attempt == 0) {
    return reauthenticate();
  }
  r_.status =
      Status::Error(StoreCode::kUnavailable, "etcd " + resp.endpoint + "/v3/watch: HTTP " +
                                                 std::to_string(resp.status) + ": " +
                                                 (err ? err->message : resp.body.substr(0, 200)));
  return Next::kReturn;
}

EtcdV3Store::Watch::Next EtcdV3Store::Watch::reauthenticate() {
  if (Status a = store_.authenticate(); !a.ok()) {
    r_.status = a;
    return Next::kReturn;
  }
  return Next::kRetry;
}

}  // namespace flannel
