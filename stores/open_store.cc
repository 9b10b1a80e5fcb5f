#include "stores/open_store.h"

#include <stdexcept>

#include "stores/etcd_store.h"
#include "stores/sqlite_store.h"

namespace flannel {

StoreSpec parse_store_spec(const std::string& value) {
  StoreSpec spec;
  if (value == "etcd") return spec;
  const std::string sqlite = "sqlite:";
  if (value.rfind(sqlite, 0) == 0 && value.size() > sqlite.size()) {
    spec.kind = StoreSpec::Kind::kSqlite;
    spec.sqlite_path = value.substr(sqlite.size());
    return spec;
  }
  throw std::invalid_argument("invalid store \"" + value +
                              "\": use \"etcd\" (with the -etcd-* flags) or \"sqlite:PATH\" "
                              "(e.g. sqlite:/var/lib/flannel/store.db)");
}

std::unique_ptr<Store> open_store(const StoreSpec& spec, const EtcdOptions& etcd,
                                  const std::string& prefix) {
  if (spec.kind == StoreSpec::Kind::kSqlite) {
    SqliteOptions o;
    o.path = spec.sqlite_path;
    o.prefix = prefix;
    return SqliteStore::open(o);
  }
  EtcdOptions o = etcd;
  o.prefix = prefix;
  return EtcdStore::open(o);
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
