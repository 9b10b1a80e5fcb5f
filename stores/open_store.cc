#include "stores/open_store.h"

#include <stdexcept>

#include "stores/etcd/detect_store.h"
#include "stores/etcd/v2_store.h"
#include "stores/etcd/v3_store.h"
#include "stores/sqlite/sqlite_store.h"

namespace flannel {

StoreSpec parse_store_spec(const std::string& value) {
  StoreSpec spec;
  if (value == "etcd") return spec;
  if (value == "etcdv2") {
    spec.kind = StoreSpec::Kind::kEtcdV2;
    return spec;
  }
  if (value == "etcdv3") {
    spec.kind = StoreSpec::Kind::kEtcdV3;
    return spec;
  }
  const std::string sqlite = "sqlite:";
  if (value.rfind(sqlite, 0) == 0 && value.size() > sqlite.size()) {
    spec.kind = StoreSpec::Kind::kSqlite;
    spec.sqlite_path = value.substr(sqlite.size());
    return spec;
  }
  throw std::invalid_argument("invalid store \"" + value +
                              "\": use \"etcd\" (with the -etcd-* flags; v2 or v3 API detected), "
                              "\"etcdv2\" or \"etcdv3\" (that API only), or \"sqlite:PATH\" "
                              "(e.g. sqlite:/var/lib/flannel/store.db)");
}

std::unique_ptr<Store> open_store(const StoreSpec& spec, const EtcdOptions& etcd,
                                  const std::string& prefix, StoreLog log) {
  if (spec.kind == StoreSpec::Kind::kSqlite) {
    SqliteOptions o;
    o.path = spec.sqlite_path;
    o.prefix = prefix;
    return SqliteStore::open(o);
  }
  EtcdOptions o = etcd;
  o.prefix = prefix;
  std::string eps;
  for (const auto& e : o.endpoints) eps += (eps.empty() ? "" : ",") + e;
  switch (spec.kind) {
    case StoreSpec::Kind::kEtcdV2:
      if (log) log("Using etcd v2 API at " + eps + " (-store=etcdv2)");
      return EtcdV2Store::open(o);
    case StoreSpec::Kind::kEtcdV3:
      if (log) log("Using etcd v3 API at " + eps + " (-store=etcdv3)");
      return EtcdV3Store::open(o);
    default: return EtcdDetectStore::open(o, std::move(log));
  }
}

const char* to_string(StoreCode code) {
  switch (code) {
    case StoreCode::kOk: return "ok";
    case StoreCode::kNotFound: return "not found";
    case StoreCode::kConflict: return "conflict";
    case StoreCode::kUnavailable: return "unavailable";
    case StoreCode::kHistoryGone: return "history gone";
    case StoreCode::kTimeout: return "timeout";
    case StoreCode::kCancelled: return "cancelled";
    case StoreCode::kInvalid: return "invalid";
    case StoreCode::kStoreReset: return "store reset";
  }
  return "unknown";
}

}  // namespace flannel
