// The benchmarks' own client of a lab's store: a Store opened the way flanneld opens it (etcd:
// call from a thread inside the lab hub namespace, where etcd listens).
#pragma once

#include <memory>

#include "stores/open_store.h"
#include "tests/support/lab_store.h"

namespace flannel::bench_util {

inline std::unique_ptr<Store> open_lab_store(const flannel::testing::LabStore& ls) {
  StoreSpec spec;
  EtcdOptions etcd;
  if (ls.is_etcd()) {
    spec.kind = StoreSpec::Kind::kEtcdV2;
    etcd.endpoints = {ls.endpoint()};
  } else {
    spec.kind = StoreSpec::Kind::kSqlite;
    spec.sqlite_path = ls.sqlite_path();
  }
  return open_store(spec, etcd, ls.prefix());
}

}  // namespace flannel::bench_util
