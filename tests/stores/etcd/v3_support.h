// Helpers for the etcd v3 store tests: raw v3 gateway calls that bypass the Store (to write data
// the way another agent or etcdctl would, and to read back exactly what is stored), and
// compaction.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "stores/etcd/v3_codec.h"
#include "tests/support/etcd_server.h"

namespace flannel::testing {

// POSTs `body` to `path` on `server`'s v3 gateway and parses the answer; an empty object when
// the answer is not JSON (the test then fails on what it expected).
inline nlohmann::json v3_call(const EtcdServer& server, const std::string& path,
                              const nlohmann::json& body) {
  EtcdServer::RawResponse r = server.raw("POST", path, body.dump());
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_discarded() ? nlohmann::json::object() : j;
}

inline void v3_put(const EtcdServer& server, const std::string& key, const std::string& value) {
  v3_call(server, "/v3/kv/put", etcd_v3::put_request(key, value, 0, false));
}

// The stored key-value, or nullopt when absent.
inline std::optional<etcd_v3::KeyValue> v3_get(const EtcdServer& server, const std::string& key) {
  auto j = v3_call(server, "/v3/kv/range", etcd_v3::range_request(key));
  if (!j.contains("kvs") || j["kvs"].empty()) return std::nullopt;
  return etcd_v3::parse_kv(j["kvs"][0]);
}

inline uint64_t v3_revision(const EtcdServer& server) {
  auto j = v3_call(server, "/v3/kv/range", etcd_v3::range_request(std::string(1, '\0')));
  return etcd_v3::parse_header(j).revision;
}

// Compacts the whole history up to the current revision (as `etcdctl compact`).
inline void v3_compact(const EtcdServer& server) {
  v3_call(server, "/v3/kv/compaction",
          {{"revision", std::to_string(v3_revision(server))}, {"physical", true}});
}

inline void v3_delete_prefix(const EtcdServer& server, const std::string& prefix) {
  v3_call(server, "/v3/kv/deleterange",
          etcd_v3::range_request(prefix + "/", etcd_v3::prefix_range_end(prefix + "/")));
}

}  // namespace flannel::testing
