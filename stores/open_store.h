// Opening a Store from the command-line view of it: `-store=etcd` (with the -etcd-* flags: the
// v2 or v3 API, detected from where the config is, see stores/etcd/detect_store.h),
// `-store=etcdv2` / `-store=etcdv3` (one API, forced) or `-store=sqlite:PATH`. Shared by flanneld and flannelctl so both accept exactly the same flags.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stores/store.h"

namespace flannel {

struct EtcdOptions {
  // Each entry a URL with scheme, e.g. "https://10.0.0.1:2379". Tried in order, with failover:
  // the first endpoint that answers is pinned until it fails.
  std::vector<std::string> endpoints{"http://127.0.0.1:4001", "http://127.0.0.1:2379"};
  std::string prefix = "/coreos.com/network";
  std::string keyfile, certfile, cafile;  // TLS client key/cert and CA bundle ("" = unset)
  // v2: HTTP basic auth; v3: a token from /v3/auth/authenticate ("" = none)
  std::string username, password;
  std::chrono::milliseconds dial_timeout{1000};      // TCP connect per endpoint
  std::chrono::milliseconds request_timeout{10000};  // whole non-watch request
};

struct SqliteOptions {
  std::string path;                          // database file; created if missing
  std::string prefix = "/coreos.com/network";  // one file can hold several networks
  std::chrono::milliseconds busy_timeout{5000};
  // Lease events kept for watchers; a watcher further behind gets kHistoryGone (as etcd's 1000).
  size_t history_limit = 1000;
};

// Parses a -store value: "etcd", "etcdv2", "etcdv3" or "sqlite:PATH". Throws
// std::invalid_argument naming the bad value and the valid forms.
struct StoreSpec {
  // kEtcd detects the API; kEtcdV2 / kEtcdV3 force one.
  enum class Kind { kEtcd, kEtcdV2, kEtcdV3, kSqlite } kind = Kind::kEtcd;
  std::string sqlite_path;
};
StoreSpec parse_store_spec(const std::string& value);

// Where a store reports what it decided (the etcd API chosen, the APIs probed); one line each.
using StoreLog = std::function<void(const std::string& line)>;

// Opens the store. Throws std::runtime_error with an actionable message when the store cannot be
// opened at all (unreadable or foreign SQLite file, bad TLS files). Does not contact etcd: an
// unreachable etcd shows up as kUnavailable from the first operation. A forced etcd API is
// logged at once ("Using etcd v3 API at ..."), a detected one when detection decides.
std::unique_ptr<Store> open_store(const StoreSpec& spec, const EtcdOptions& etcd,
                                  const std::string& prefix, StoreLog log = {});

}  // namespace flannel
