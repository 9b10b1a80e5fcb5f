// EtcdV3Store::watch_leases: one streaming POST /v3/watch per call (see etcd3_store.h, "Watch").
#include <algorithm>

#include "stores/etcd/v3_store.h"

namespace flannel {

using etcd::HttpRequest;
using etcd::HttpResponse;
using etcd3::json;

namespace {

// What the stream said so far; filled by the body callback, line by line.
struct StreamState {
  size_t parsed = 0;   // bytes of the body already consumed (complete lines)
  bool finished = false;
  Status status;       // non-ok: an error, history gone, a reset (ends the watch)
  bool auth_error = false;
};

}  // namespace

WatchResult EtcdV3Store::watch_leases(uint64_t after_revision, std::chrono::milliseconds timeout,
                                      std::stop_token stop) {
  WatchResult r;
  r.revision = after_revision;
  if (stop.stop_requested()) {
    r.status = Status::Error(StoreCode::kCancelled, "watch cancelled");
    return r;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const bool with_auth = !http_.options().username.empty();

  // One message of the stream: {"result": WatchResponse} or {"error": {...}}.
  auto on_message = [&](StreamState& st, const json& msg) {
    if (!msg.is_object()) {
      st.status = Status::Error(StoreCode::kInvalid, "etcd watch: stream message is not JSON");
      return;
    }
    if (auto err = etcd3::parse_error(msg)) {
      st.auth_error = err->code == etcd3::kGrpcUnauthenticated;
      st.status = Status::Error(StoreCode::kUnavailable, "etcd watch: " + err->message);
      return;
    }
    auto res = msg.find("result");
    if (res == msg.end() || !res->is_object()) return;
    try {
      const etcd3::Header h = etcd3::parse_header(*res);
      if (Status s = check_header(h); !s.ok()) {
        st.status = s;
        return;
      }
      if (h.revision != 0 && h.revision < after_revision) {
        // Our cursor is ahead of this answer. A lagging member catches up; a store that is
        // behind by a linearizable read lost the history the cursor came from (a reset this
        // Store already reported through another call): list again rather than wait.
        json range = etcd3::range_request(config_key_);
        range["count_only"] = true;
        json now;
        if (call("/v3/kv/range", range, false, &now, /*check=*/false).ok() &&
            etcd3::parse_header(now).revision < after_revision) {
          st.status = Status::Error(
              StoreCode::kHistoryGone,
              "etcd watch: revision " + std::to_string(after_revision) +
                  " is ahead of the store's revision " + std::to_string(h.revision) +
                  " (the store was reset); list the leases again");
          return;
        }
      }
      if (uint64_t compacted = etcd3::get_uint(*res, "compact_revision"); compacted != 0) {
        st.status = Status::Error(
            StoreCode::kHistoryGone,
            "etcd watch from revision " + std::to_string(after_revision + 1) +
                ": history compacted up to " + std::to_string(compacted) + "; list again");
        return;
      }
    } catch (const std::exception& e) {
      st.status = Status::Error(StoreCode::kInvalid, std::string("etcd watch: ") + e.what());
      return;
    }
    if (etcd3::get_true(*res, "canceled")) {
      st.status = Status::Error(StoreCode::kUnavailable,
                                "etcd cancelled the watch: " + etcd3::get_string(*res, "cancel_reason"));
      return;
    }
    auto events = res->find("events");
    if (events == res->end() || !events->is_array()) return;
    for (const json& ev : *events) {
      etcd3::WatchEvent event;
      try {
        event = etcd3::parse_watch_event(ev);
      } catch (const std::exception& e) {
        r.warnings.push_back(std::string("skipped unreadable watch event: ") + e.what());
        continue;
      }
      const etcd3::KeyValue& kv = event.kv;
      r.revision = std::max<uint64_t>(r.revision, static_cast<uint64_t>(kv.mod_revision));
      std::string why;
      LeaseEvent out;
      if (event.is_delete) {
        out.type = LeaseEventType::kRemoved;
        LeaseKey k;
        if (!subnet_of(kv.key, &k, &why)) {
          r.warnings.push_back("skipped removal: " + why);
          continue;
        }
        out.lease.subnet = k.subnet;
        out.lease.ipv6_subnet = k.ipv6_subnet;
        out.lease.revision = static_cast<uint64_t>(kv.mod_revision);
        // Expired = the key's v3 lease is gone (etcd deleted the key because it expired, or
        // someone revoked it); an explicit delete leaves the lease alive.
        if (event.prev_lease != 0) {
          std::optional<Clock::time_point> expiry;
          out.expired = lease_expiry(event.prev_lease, &expiry).ok() && !expiry;
        }
      } else if (Status failed; !lease_of(kv, /*ask=*/true, &out.lease, &why, &failed)) {
        if (!failed.ok()) {  // etcd did not answer timetolive: retry this event later
          st.status = failed;
          r.revision = std::max(after_revision, static_cast<uint64_t>(kv.mod_revision) - 1);
          return;
        }
        r.warnings.push_back("skipped " + why);
        continue;
      }
      r.events.push_back(std::move(out));
    }
    if (!r.events.empty()) st.finished = true;
  };

  for (int attempt = 0;; ++attempt) {
    StreamState st;
    json create = {{"key", etcd3::base64_encode(subnets_dir_)},
                   {"range_end", etcd3::base64_encode(subnets_end_)},
                   {"start_revision", std::to_string(after_revision + 1)},
                   {"prev_kv", true}};
    HttpRequest req;
    req.method = "POST";
    req.path = "/v3/watch";
    req.json_body = json{{"create_request", create}}.dump();
    req.basic_auth = false;
    if (attempt == 0 && needs_authentication()) {
      if (Status a = authenticate(); !a.ok()) {
        r.status = a;
        return r;
      }
    }
    req.authorization = token();
    req.deadline = deadline;
    req.stream_done = [&](std::string_view body) {
      size_t nl;
      while (!st.finished && st.status.ok() &&
             (nl = body.find('\n', st.parsed)) != std::string_view::npos) {
        std::string_view line = body.substr(st.parsed, nl - st.parsed);
        st.parsed = nl + 1;
        if (line.find_first_not_of(" \r\t") == std::string_view::npos) continue;
        on_message(st, json::parse(line, nullptr, /*allow_exceptions=*/false));
      }
      return st.finished || !st.status.ok();
    };
    HttpResponse resp = http_.send(req, stop);

    if (!st.status.ok()) {
      if (st.auth_error && with_auth && attempt == 0) {
        if (Status a = authenticate(); !a.ok()) {
          r.status = a;
          return r;
        }
        continue;
      }
      if (!r.events.empty() && st.status.code == StoreCode::kUnavailable) {
        return r;  // deliver what came before the failure; the cursor stops before it
      }
      r.status = st.status;
      if (st.status.code == StoreCode::kHistoryGone || st.status.code == StoreCode::kStoreReset) {
        r.events.clear();
        r.revision = after_revision;
      }
      return r;
    }
    if (!r.events.empty()) return r;  // kOk
    switch (resp.outcome) {
      case HttpResponse::Outcome::kCancelled:
        r.status = Status::Error(StoreCode::kCancelled, "watch cancelled");
        return r;
      case HttpResponse::Outcome::kTimeout:
        r.status = Status::Error(StoreCode::kTimeout, "no lease change");
        return r;
      case HttpResponse::Outcome::kTransport:
        r.status = Status::Error(StoreCode::kUnavailable, resp.error);
        return r;
      case HttpResponse::Outcome::kOk:
        break;
    }
    if (resp.status != 200) {
      json j = json::parse(resp.body, nullptr, false);
      auto err = j.is_discarded() ? std::nullopt : etcd3::parse_error(j);
      if ((resp.status == 401 || (err && err->code == etcd3::kGrpcUnauthenticated)) &&
          with_auth && attempt == 0) {
        if (Status a = authenticate(); !a.ok()) {
          r.status = a;
          return r;
        }
        continue;
      }
      r.status = Status::Error(StoreCode::kUnavailable,
                               "etcd " + resp.endpoint + "/v3/watch: HTTP " +
                                   std::to_string(resp.status) + ": " +
                                   (err ? err->message : resp.body.substr(0, 200)));
      return r;
    }
    r.status = Status::Error(StoreCode::kUnavailable,
                             "etcd " + resp.endpoint + " closed the watch stream");
    return r;
  }
}

}  // namespace flannel
