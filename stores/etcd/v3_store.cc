#include "stores/etcd/v3_store.h"

#include <algorithm>
#include <stdexcept>

#include "stores/key_prefix.h"

namespace flannel {

using etcd::HttpRequest;
using etcd::HttpResponse;
using etcd_v3::json;

namespace {

constexpr size_t kMaxRememberedLeases = 100000;

std::string snippet(const std::string& body) {
  std::string s = body.substr(0, 200);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

const json* first_response(const json& txn, const char* kind) {
  auto it = txn.find("responses");
  if (it == txn.end() || !it->is_array() || it->empty()) return nullptr;
  auto r = (*it)[0].find(kind);
  if (r == (*it)[0].end() || !r->is_object()) return nullptr;
  return &*r;
}

bool has_kvs(const json* range) {
  if (!range) return false;
  auto it = range->find("kvs");
  return it != range->end() && it->is_array() && !it->empty();
}

}  // namespace

std::unique_ptr<EtcdV3Store> EtcdV3Store::open(const EtcdOptions& options) {
  return std::unique_ptr<EtcdV3Store>(new EtcdV3Store(options));
}

EtcdV3Store::EtcdV3Store(const EtcdOptions& options)
    : http_(options), prefix_(normalize_key_prefix(options.prefix)) {
  config_key_ = prefix_ + "/config";
  subnets_dir_ = prefix_ + "/subnets/";
  subnets_end_ = etcd_v3::prefix_range_end(subnets_dir_);
}

std::string EtcdV3Store::describe() const {
  std::string eps;
  for (const auto& e : http_.endpoints()) eps += (eps.empty() ? "" : ",") + e;
  return "etcd v3 [" + eps + "] prefix " + (prefix_.empty() ? "/" : prefix_);
}

std::string EtcdV3Store::token() {
  MutexLock lock(&mu_);
  return token_;
}

bool EtcdV3Store::needs_authentication() {
  if (http_.options().username.empty()) return false;
  MutexLock lock(&mu_);
  return !authenticated_;
}

Status EtcdV3Store::authenticate() {
  const EtcdOptions& o = http_.options();
  HttpRequest req;
  req.method = "POST";
  req.path = "/v3/auth/authenticate";
  req.basic_auth = false;
  req.json_body = json{{"name", o.username}, {"password", o.password}}.dump();
  HttpResponse resp = http_.send(req);
  if (resp.outcome != HttpResponse::Outcome::kOk) {
    return Status::Error(StoreCode::kUnavailable, resp.error);
  }
  json j = json::parse(resp.body, nullptr, false);
  auto err = etcd_v3::parse_error(j);
  if (resp.status == 200 && j.is_object() && j.contains("token") && j["token"].is_string()) {
    MutexLock lock(&mu_);
    token_ = j["token"].get<std::string>();
    authenticated_ = true;
    return Status::Ok();
  }
  if (err && err->code == etcd_v3::kGrpcFailedPrecondition &&
      err->message.find("not enabled") != std::string::npos) {
    MutexLock lock(&mu_);
    token_.clear();  // authentication is off in this etcd: plain requests work
    authenticated_ = true;
    return Status::Ok();
  }
  return Status::Error(StoreCode::kUnavailable,
                       "etcd " + resp.endpoint + ": authentication as user \"" + o.username +
                           "\" failed: " + (err ? err->message : snippet(resp.body)) +
                           " (check -etcd-username and -etcd-password)");
}

Status EtcdV3Store::call(const std::string& path, const json& body, bool one_shot, json* out,
                         bool check) {
  const bool with_auth = !http_.options().username.empty();
  for (int attempt = 0;; ++attempt) {
    if (attempt == 0 && needs_authentication()) {
      // First call: get a token (or learn that auth is off).
      if (Status a = authenticate(); !a.ok()) return a;
    }
    HttpRequest req;
    req.method = "POST";
    req.path = path;
    req.json_body = body.dump();
    req.one_shot = one_shot;
    req.basic_auth = false;
    req.authorization = token();
    HttpResponse resp = http_.send(req);
    if (resp.outcome != HttpResponse::Outcome::kOk) {
      return Status::Error(StoreCode::kUnavailable,
                           resp.error.empty() ? "etcd: no answer to " + path : resp.error);
    }
    json j = json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
    if (resp.status != 200) {
      auto err = j.is_discarded() ? std::nullopt : etcd_v3::parse_error(j);
      const int code = err ? err->code : 0;
      std::string msg = "etcd " + resp.endpoint + path + ": HTTP " + std::to_string(resp.status) +
                        ": " + (err ? err->message : snippet(resp.body));
      if ((code == etcd_v3::kGrpcUnauthenticated || resp.status == 401) && with_auth &&
          attempt == 0) {
        // Tokens expire; a rejected token means the request was not applied: retry once.
        if (Status a = authenticate(); !a.ok()) return a;
        continue;
      }
      if (code == etcd_v3::kGrpcNotFound) return Status::Error(StoreCode::kNotFound, msg);
      if (code == etcd_v3::kGrpcOutOfRange) return Status::Error(StoreCode::kHistoryGone, msg);
      const std::string text = err ? err->message : "";
      if (code == etcd_v3::kGrpcUnauthenticated || code == etcd_v3::kGrpcPermissionDenied ||
          resp.status == 401 || resp.status == 403 ||
          text.find("user name is empty") != std::string::npos ||
          text.find("authentication failed") != std::string::npos) {
        return Status::Error(StoreCode::kUnavailable,
                             msg + " (check -etcd-username/-etcd-password and the user's role)");
      }
      if (resp.status == 404 && !err) {
        msg += " (no etcd v3 gateway here: etcd older than 3.4, or not an etcd endpoint)";
      }
      return Status::Error(StoreCode::kInvalid, msg);
    }
    if (!j.is_object()) {
      return Status::Error(StoreCode::kInvalid, "etcd " + resp.endpoint + path +
                                                    ": answer is not JSON: " + snippet(resp.body));
    }
    etcd_v3::Header h;
    try {
      h = etcd_v3::parse_header(j);
    } catch (const std::exception& e) {
      return Status::Error(StoreCode::kInvalid,
                           "etcd " + resp.endpoint + path + ": bad response header: " + e.what());
    }
    if (check) {
      if (Status s = check_header(h); !s.ok()) return s;
    }
    *out = std::move(j);
    return Status::Ok();
  }
}

Status EtcdV3Store::check_header(const etcd_v3::Header& h) {
  if (h.cluster_id == 0 && h.revision == 0) return Status::Ok();
  MutexLock lock(&mu_);
  if (cluster_id_ == 0) {
    cluster_id_ = h.cluster_id;
    max_revision_ = std::max(max_revision_, h.revision);
    return Status::Ok();
  }
  const bool other_cluster = h.cluster_id != 0 && h.cluster_id != cluster_id_;
  const bool went_back = h.revision != 0 && h.revision < max_revision_;
  if (!other_cluster && !went_back) {
    max_revision_ = std::max(max_revision_, h.revision);
    return Status::Ok();
  }
  if (!other_cluster) {
    // A lower revision is normal for an answer that was overtaken (a concurrent request of
    // this Store saw a later write first) or that comes from a lagging member. Only a
    // linearizable read started now, after the higher revision was seen, can prove a reset.
    const uint64_t seen = max_revision_;
    lock.unlock();
    json r;
    json range = etcd_v3::range_request(config_key_);
    range["count_only"] = true;
    if (Status s = call("/v3/kv/range", range, false, &r, /*check=*/false); !s.ok()) return s;
    etcd_v3::Header now;
    try {
      now = etcd_v3::parse_header(r);
    } catch (const std::exception& e) {
      return Status::Error(StoreCode::kInvalid, std::string("etcd range: ") + e.what());
    }
    lock.lock();
    if (max_revision_ < seen) return Status::Ok();  // another call reported this reset already
    if (now.cluster_id == cluster_id_ && now.revision >= seen) {
      max_revision_ = std::max(max_revision_, now.revision);
      return Status::Ok();
    }
    return reset_locked(now);
  }
  return reset_locked(h);
}

Status EtcdV3Store::reset_locked(const etcd_v3::Header& h) {
  const bool other_cluster = h.cluster_id != 0 && h.cluster_id != cluster_id_;
  std::string what = other_cluster ? "cluster id changed from " + std::to_string(cluster_id_) +
                                         " to " + std::to_string(h.cluster_id)
                                   : "revision went back from " + std::to_string(max_revision_) +
                                         " to " + std::to_string(h.revision);
  if (h.cluster_id != 0) cluster_id_ = h.cluster_id;
  max_revision_ = h.revision;
  expiries_.clear();
  return Status::Error(StoreCode::kStoreReset,
                       "etcd store reset (" + what +
                           "): everything read before is void; re-read the config and the leases");
}

void EtcdV3Store::remember(int64_t id, Clock::time_point expires) {
  MutexLock lock(&mu_);
  if (expiries_.size() >= kMaxRememberedLeases) {
    const auto now = Clock::now();
    std::erase_if(expiries_, [&](const auto& kv) { return kv.second < now; });
    if (expiries_.size() >= kMaxRememberedLeases) expiries_.clear();
  }
  expiries_[id] = expires;
}

void EtcdV3Store::forget(int64_t id) {
  MutexLock lock(&mu_);
  expiries_.erase(id);
}

Status EtcdV3Store::grant(std::chrono::seconds ttl, int64_t* id, Clock::time_point* expires) {
  const auto t0 = Clock::now();
  json r;
  if (Status s = call("/v3/lease/grant", json{{"TTL", std::to_string(ttl.count())}}, false, &r);
      !s.ok()) {
    return s;
  }
  try {
    *id = etcd_v3::get_int(r, "ID");
    *expires = t0 + std::chrono::seconds(etcd_v3::get_int(r, "TTL"));
  } catch (const std::exception& e) {
    return Status::Error(StoreCode::kInvalid, std::string("etcd lease grant: ") + e.what());
  }
  if (*id == 0) {
    return Status::Error(StoreCode::kUnavailable,
                         "etcd lease grant: no lease id in the answer " + snippet(r.dump()));
  }
  remember(*id, *expires);
  return Status::Ok();
}

void EtcdV3Store::revoke(int64_t id) {
  forget(id);
  json r;
  // A failure leaves the lease to expire on its own: nothing to do about it here.
  (void)call("/v3/lease/revoke", json{{"ID", std::to_string(id)}}, false, &r);
}

Status EtcdV3Store::lease_expiry(int64_t id, std::optional<Clock::time_point>* expiry) {
  json r;
  const auto now = Clock::now();
  if (Status s = call("/v3/lease/timetolive", json{{"ID", std::to_string(id)}}, false, &r);
      !s.ok()) {
    if (s.code == StoreCode::kNotFound) {  // some versions answer not-found instead of TTL -1
      expiry->reset();
      return Status::Ok();
    }
    return s;
  }
  int64_t ttl = 0;
  try {
    ttl = etcd_v3::get_int(r, "TTL");
  } catch (const std::exception& e) {
    return Status::Error(StoreCode::kInvalid, std::string("etcd lease timetolive: ") + e.what());
  }
  if (ttl < 0) {
    forget(id);
    expiry->reset();
    return Status::Ok();
  }
  *expiry = now + std::chrono::seconds(ttl);
  remember(id, **expiry);
  return Status::Ok();
}

Status EtcdV3Store::expiration_for(int64_t lease_id, bool ask,
                                   std::optional<Clock::time_point>* out) {
  if (lease_id == 0) {  // a key without a lease: a reservation
    out->reset();
    return Status::Ok();
  }
  {
    MutexLock lock(&mu_);
    if (auto it = expiries_.find(lease_id); it != expiries_.end()) {
      *out = it->second;
      return Status::Ok();
    }
  }
  if (!ask) {
    *out = kUnknownExpiry;
    return Status::Ok();
  }
  std::optional<Clock::time_point> e;
  if (Status s = lease_expiry(lease_id, &e); !s.ok()) return s;
  *out = e ? *e : Clock::now();  // the lease is gone: etcd is deleting the key right now
  return Status::Ok();
}

std::string EtcdV3Store::lease_key(const LeaseKey& subnet) const {
  return subnets_dir_ + subnet_key(subnet);
}

bool EtcdV3Store::subnet_of(const std::string& key, LeaseKey* subnet, std::string* why) const {
  std::string_view name(key);
  if (name.starts_with(subnets_dir_)) {
    name.remove_prefix(subnets_dir_.size());
    auto net = parse_subnet_key(name);
    if (net && subnet_key(*net) == name) {
      *subnet = *net;
      return true;
    }
  }
  *why = "key \"" + key + "\" is not a lease (want " + subnets_dir_ + "A.B.C.D-N or " +
         subnets_dir_ + "A.B.C.D-N&<ipv6>-M, canonical and in lowercase)";
  return false;
}

bool EtcdV3Store::lease_of(const etcd_v3::KeyValue& kv, bool ask, Lease* out, std::string* why,
                           Status* failed) {
  Lease l;
  LeaseKey k;
  if (!subnet_of(kv.key, &k, why)) return false;
  l.subnet = k.subnet;
  l.ipv6_subnet = k.ipv6_subnet;
  try {
    l.attrs = decode_lease_attrs(kv.value);
  } catch (const std::exception& e) {
    *why = "key \"" + kv.key + "\": value is not lease JSON: " + e.what();
    return false;
  }
  if (Status s = expiration_for(kv.lease, ask, &l.expiration); !s.ok()) {
    *failed = s;
    return false;
  }
  l.revision = static_cast<uint64_t>(kv.mod_revision);
  l.created = static_cast<uint64_t>(kv.create_revision);
  *out = std::move(l);
  return true;
}

Status EtcdV3Store::get_config(std::string* out) {
  json r;
  if (Status s = call("/v3/kv/range", etcd_v3::range_request(config_key_), false, &r); !s.ok()) {
    return s;
  }
  auto kvs = r.find("kvs");
  if (kvs == r.end() || !kvs->is_array() || kvs->empty()) {
    return Status::Error(StoreCode::kNotFound, "no network config at " + config_key_ +
                                                   " in etcd v3 (" + describe() +
                                                   "); write it with ETCDCTL_API=3 etcdctl put " +
                                                   config_key_ + " '{\"Network\": ...}'");
  }
  try {
    *out = etcd_v3::parse_kv((*kvs)[0]).value;
  } catch (const std::exception& e) {
    return Status::Error(StoreCode::kInvalid, "etcd " + config_key_ + ": " + e.what());
  }
  return Status::Ok();
}

Status EtcdV3Store::set_config(const std::string& text) {
  json r;
  return call("/v3/kv/put", etcd_v3::put_request(config_key_, text, 0, false), false, &r);
}

Status EtcdV3Store::list_leases(LeaseList* out) {
  json r;
  if (Status s =
          call("/v3/kv/range", etcd_v3::range_request(subnets_dir_, subnets_end_), false, &r);
      !s.ok()) {
    return s;
  }
  LeaseList list;
  try {
    list.revision = etcd_v3::parse_header(r).revision;
  } catch (const std::exception& e) {
    return Status::Error(StoreCode::kInvalid, std::string("etcd range: ") + e.what());
  }
  if (auto kvs = r.find("kvs"); kvs != r.end() && kvs->is_array()) {
    list.leases.reserve(kvs->size());
    for (const json& item : *kvs) {
      std::string why;
      try {
        etcd_v3::KeyValue kv = etcd_v3::parse_kv(item);
        Lease l;
        Status failed;  // never set without asking etcd
        if (lease_of(kv, /*ask=*/false, &l, &why, &failed)) {
          list.leases.push_back(std::move(l));
          continue;
        }
      } catch (const std::exception& e) { why = std::string("unreadable key-value: ") + e.what(); }
      list.warnings.push_back("skipped " + why);
    }
  }
  *out = std::move(list);
  return Status::Ok();
}

Status EtcdV3Store::get_lease(const LeaseKey& subnet, Lease* out) {
  json r;
  const std::string key = lease_key(subnet);
  if (Status s = call("/v3/kv/range", etcd_v3::range_request(key), false, &r); !s.ok()) return s;
  auto kvs = r.find("kvs");
  if (kvs == r.end() || !kvs->is_array() || kvs->empty()) {
    return Status::Error(StoreCode::kNotFound, "no lease for " + subnet.str() + " (" + key + ")");
  }
  std::string why;
  Status failed;
  try {
    if (lease_of(etcd_v3::parse_kv((*kvs)[0]), /*ask=*/true, out, &why, &failed))
      return Status::Ok();
  } catch (const std::exception& e) { why = e.what(); }
  if (!failed.ok()) return failed;
  return Status::Error(StoreCode::kInvalid, why);
}

Status EtcdV3Store::write_lease(const Lease& lease, std::chrono::seconds ttl, const json& compare,
                                bool renew, Lease* out) {
  if (ttl.count() < 0) {
    return Status::Error(StoreCode::kInvalid,
                         "ttl " + std::to_string(ttl.count()) + " s: must be 0 or positive");
  }
  const std::string key = lease_key(lease.key());
  int64_t id = 0;
  Clock::time_point expires{};
  if (ttl.count() > 0) {
    if (Status s = grant(ttl, &id, &expires); !s.ok()) return s;
  }
  json txn = {
      {"compare", json::array({compare})},
      {"success",
       json::array(
           {json{{"request_put", etcd_v3::put_request(key, etcd_v3::encode_lease_value(lease.attrs),
                                                      id, /*prev_kv=*/renew)}}})},
      {"failure", json::array({json{{"request_range", etcd_v3::range_request(key)}}})},
  };
  json r;
  if (Status s = call("/v3/kv/txn", txn, /*one_shot=*/true, &r); !s.ok()) {
    // The outcome is unknown (the put may be applied, with this lease): keep the lease, it
    // expires on its own if unused.
    return s;
  }
  if (!etcd_v3::get_true(r, "succeeded")) {
    if (id != 0) revoke(id);
    if (renew && !has_kvs(first_response(r, "response_range"))) {
      return Status::Error(StoreCode::kNotFound, "no lease for " + lease.key().str() +
                                                     " any more (" + key +
                                                     "): it expired or was deleted");
    }
    return Status::Error(StoreCode::kConflict,
                         renew ? "lease " + lease.key().str() + " was changed since revision " +
                                     std::to_string(lease.revision) + " (" + key + ")"
                               : "lease " + lease.key().str() + " already exists (" + key + ")");
  }
  Lease w = lease;
  w.expiration = id != 0 ? std::optional<Clock::time_point>(expires) : std::nullopt;
  w.revision = etcd_v3::parse_header(r).revision;
  w.created = renew ? 0 : w.revision;  // a renewal: the key's create_revision, from prev_kv
  if (renew) {
    int64_t old = 0;
    if (const json* put = first_response(r, "response_put")) {
      if (auto prev = put->find("prev_kv"); prev != put->end()) {
        try {
          old = etcd_v3::get_int(*prev, "lease");
        } catch (const std::exception&) { old = 0; }
        try {
          w.created = etcd_v3::get_uint(*prev, "create_revision");
        } catch (const std::exception&) { w.created = 0; }
      }
    }
    if (old != 0 && old != id) revoke(old);  // as flannel leaves it to expire; we clean up
  }
  if (out) *out = std::move(w);  // callers may pass nullptr when they do not need it
  return Status::Ok();
}

Status EtcdV3Store::create_lease(const Lease& lease, std::chrono::seconds ttl, Lease* created) {
  return write_lease(lease, ttl, etcd_v3::compare_equal(lease_key(lease.key()), "VERSION", 0),
                     /*renew=*/false, created);
}

Status EtcdV3Store::renew_lease(const Lease& lease, std::chrono::seconds ttl, Lease* renewed) {
  if (lease.revision == 0) {
    return Status::Error(StoreCode::kInvalid, "renew of " + lease.key().str() +
                                                  ": revision 0 (the lease was never read)");
  }
  return write_lease(
      lease, ttl,
      etcd_v3::compare_equal(lease_key(lease.key()), "MOD", static_cast<int64_t>(lease.revision)),
      /*renew=*/true, renewed);
}

Status EtcdV3Store::delete_lease(const LeaseKey& subnet, uint64_t expected_revision) {
  const std::string key = lease_key(subnet);
  json r;
  if (expected_revision == 0) {
    if (Status s = call("/v3/kv/deleterange", etcd_v3::range_request(key), true, &r); !s.ok()) {
      return s;
    }
    int64_t deleted = 0;
    try {
      deleted = etcd_v3::get_int(r, "deleted");
    } catch (const std::exception& e) {
      return Status::Error(StoreCode::kInvalid, "etcd deleterange " + key + ": " + e.what());
    }
    if (deleted == 0) {
      return Status::Error(StoreCode::kNotFound, "no lease for " + subnet.str() + " (" + key + ")");
    }
    return Status::Ok();
  }
  json txn = {
      {"compare",
       json::array({etcd_v3::compare_equal(key, "MOD", static_cast<int64_t>(expected_revision))})},
      {"success", json::array({json{{"request_delete_range", etcd_v3::range_request(key)}}})},
      {"failure", json::array({json{{"request_range", etcd_v3::range_request(key)}}})},
  };
  if (Status s = call("/v3/kv/txn", txn, true, &r); !s.ok()) return s;
  if (etcd_v3::get_true(r, "succeeded")) return Status::Ok();
  if (!has_kvs(first_response(r, "response_range"))) {
    return Status::Error(StoreCode::kNotFound, "no lease for " + subnet.str() + " (" + key + ")");
  }
  return Status::Error(
      StoreCode::kConflict,
      "lease " + subnet.str() + " was changed since revision " + std::to_string(expected_revision));
}

}  // namespace flannel
