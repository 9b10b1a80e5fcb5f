// Opening a Store from the command-line view of it: `-store=etcd` (with the -etcd-* flags: the
// v2 or v3 API, detected from where the config is, see stores/etcd/detect_store.h),
// `-store=etcdv2` / `-store=etcdv3` (one API, forced) or `-store=sqlite:PATH`. Shared by flanneld
// and flannelctl so both accept exactly the same flags.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "stores/etcd/options.h"
#include "stores/sqlite/options.h"
#include "stores/store.h"

namespace flannel {

// Parses a -store value: "etcd", "etcdv2", "etcdv3" or "sqlite:PATH". Throws
// std::invalid_argument naming the bad value and the valid forms.
struct StoreSpec {
  // kEtcd detects the API; kEtcdV2 / kEtcdV3 force one.
  enum class Kind { kEtcd, kEtcdV2, kEtcdV3, kSqlite } kind = Kind::kEtcd;
  std::string sqlite_path;
};
StoreSpec parse_store_spec(const std::string& value);

// Opens the store. Throws with an actionable message when the store cannot be opened at all:
// std::runtime_error for an unusable or foreign SQLite file or a libcurl that cannot be loaded,
// but std::invalid_argument (not a runtime_error) for bad etcd options (an endpoint that is not
// a URL, unreadable TLS files); callers catch std::exception. Does not contact etcd: an
// unreachable etcd shows up as kUnavailable from the first operation. A forced etcd API is
// logged at once ("Using etcd v3 API at ..."), a detected one when detection decides; `log` is
// kept by the store for that (see StoreLog in store.h).
std::unique_ptr<Store> open_store(const StoreSpec& spec, const EtcdOptions& etcd,
                                  const std::string& prefix, StoreLog log = {});

}  // namespace flannel
