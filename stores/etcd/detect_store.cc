#include "stores/etcd/detect_store.h"

namespace flannel {

std::unique_ptr<EtcdDetectStore> EtcdDetectStore::open(const EtcdOptions& options, StoreLog log) {
  return std::unique_ptr<EtcdDetectStore>(new EtcdDetectStore(options, std::move(log)));
}

EtcdDetectStore::EtcdDetectStore(const EtcdOptions& options, StoreLog log)
    : v2_(EtcdV2Store::open(options)), v3_(EtcdV3Store::open(options)), log_(std::move(log)) {
  for (const auto& e : v3_->endpoints()) endpoints_ += (endpoints_.empty() ? "" : ",") + e;
}

std::string EtcdDetectStore::describe() const {
  if (Store* s = chosen()) return s->describe();
  return "etcd [" + endpoints_ + "] prefix " + (v3_->prefix().empty() ? "/" : v3_->prefix()) +
         " (v2 or v3 API: detecting from where the config is)";
}

Store* EtcdDetectStore::chosen() const {
  MutexLock lock(&mu_);
  return chosen_;
}

void EtcdDetectStore::choose(Store* store, const char* api, const char* why) {
  {
    MutexLock lock(&mu_);
    if (chosen_) return;
    chosen_ = store;
  }
  if (log_) log_(std::string("Using etcd ") + api + " API at " + endpoints_ + " (" + why + ")");
}

Status EtcdDetectStore::probe(std::string* json) {
  Status s2 = v2_->get_config(json);
  if (s2.ok()) {
    choose(v2_.get(), "v2", "config found in the v2 keys API");
    return s2;
  }
  Status s3 = v3_->get_config(json);
  if (s3.ok()) {
    choose(v3_.get(), "v3", "config found in v3; not in the v2 keys API");
    return s3;
  }
  auto said = [](const Status& s) {
    return s.code == StoreCode::kNotFound ? std::string("answers, no config")
                                          : std::string(to_string(s.code)) + ": " + s.message;
  };
  const std::string summary = "probed etcd at " + endpoints_ + " for " + v3_->prefix() +
                              "/config: v2 keys API " + said(s2) + "; v3 API " + said(s3);
  bool first = false;
  {
    MutexLock lock(&mu_);
    first = !probe_logged_;
    probe_logged_ = true;
  }
  if (first && log_) log_(summary + "; waiting for the config in either");
  // Not found if either API answered (the caller waits); else the transport trouble.
  if (s2.code == StoreCode::kNotFound || s3.code == StoreCode::kNotFound) {
    return Status::Error(StoreCode::kNotFound, summary);
  }
  return Status::Error(s3.code == StoreCode::kStoreReset ? StoreCode::kUnavailable : s3.code,
                       summary);
}

Store& EtcdDetectStore::target() {
  if (Store* s = chosen()) return *s;
  std::string ignored;
  if (probe(&ignored).ok()) return *chosen();
  // Provisional: v2 when its keys API answers, else v3.
  Status s2 = v2_->get_config(&ignored);
  if (s2.ok() || s2.code == StoreCode::kNotFound) return *v2_;
  return *v3_;
}

Status EtcdDetectStore::get_config(std::string* json) {
  if (Store* s = chosen()) return s->get_config(json);
  return probe(json);
}

Status EtcdDetectStore::set_config(const std::string& json) {
  Store& t = target();
  Status s = t.set_config(json);
  if (s.ok()) {
    choose(&t, &t == v2_.get() ? "v2" : "v3",
           &t == v2_.get() ? "config written to the v2 keys API, which answers"
                           : "config written to v3; the v2 keys API does not answer");
  }
  return s;
}

Status EtcdDetectStore::list_leases(LeaseList* out) { return target().list_leases(out); }
Status EtcdDetectStore::get_lease(const LeaseKey& subnet, Lease* out) {
  return target().get_lease(subnet, out);
}
Status EtcdDetectStore::create_lease(const Lease& lease, std::chrono::seconds ttl, Lease* out) {
  return target().create_lease(lease, ttl, out);
}
Status EtcdDetectStore::renew_lease(const Lease& lease, std::chrono::seconds ttl, Lease* out) {
  return target().renew_lease(lease, ttl, out);
}
Status EtcdDetectStore::delete_lease(const LeaseKey& subnet, uint64_t expected_revision) {
  return target().delete_lease(subnet, expected_revision);
}
WatchResult EtcdDetectStore::watch_leases(uint64_t after_revision,
                                          std::chrono::milliseconds timeout, std::stop_token stop) {
  return target().watch_leases(after_revision, timeout, stop);
}

}  // namespace flannel
