// The JSON of etcd's v3 gateway (etcd 3.4+, `/v3/...`), as plain functions: keys and values are
// base64 strings, int64/uint64 fields are decimal strings (numbers are accepted too), fields
// at their default value (0, false, PUT) are left out. Also the value bytes current flannel
// (v0.13+) writes for a lease in etcd v3 mode. No I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/lease.h"

namespace flannel::etcd_v3 {

using nlohmann::json;

std::string base64_encode(std::string_view bytes);
// nullopt when `text` is not standard base64 (padding optional).
std::optional<std::string> base64_decode(std::string_view text);

// The range_end that selects every key starting with `prefix` ("a/b/" -> "a/b0").
std::string prefix_range_end(std::string_view prefix);

// An int64 field of a gateway object: a decimal string or a number; absent -> 0. Throws
// std::invalid_argument naming the field when it is neither.
int64_t get_int(const json& object, const char* field);
uint64_t get_uint(const json& object, const char* field);

// ResponseHeader: every gateway answer carries one ("header").
struct Header {
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;
  uint64_t revision = 0;  // 0 = absent (a compacted watch's cancel message has none)
  uint64_t raft_term = 0;
};
// All zero when "header" is absent; throws std::invalid_argument (get_uint) when one of its
// fields is not an integer.
Header parse_header(const json& response);

// mvccpb.KeyValue, key and value decoded.
struct KeyValue {
  std::string key, value;
  int64_t create_revision = 0, mod_revision = 0, version = 0;
  int64_t lease = 0;  // v3 lease id the key is attached to; 0 = none
};
// Throws std::invalid_argument when a field is malformed (not base64, not an integer).
KeyValue parse_kv(const json& kv);

// A boolean field ("succeeded" of a txn, "canceled" of a watch response): true only when it is
// the JSON value true (absent, null or any other type is false). Never throws.
bool get_true(const json& object, const char* field);

// A string field; "" when absent, null or not a string. Never throws.
std::string get_string(const json& object, const char* field);

// One event of a WatchResponse ("events"[i]): {"type": "DELETE"?, "kv": {...}, "prev_kv": {...}?}.
struct WatchEvent {
  bool is_delete = false;  // type "DELETE" (or 1); absent, "PUT" or 0 is a put
  KeyValue kv;
  // The v3 lease the key had before this event (prev_kv.lease); 0 when none or unreadable.
  int64_t prev_lease = 0;
};
// Throws std::invalid_argument when the event is not an object, its kv is malformed or its type
// is neither PUT nor DELETE; the caller skips such an event with a warning.
WatchEvent parse_watch_event(const json& event);

// Request bodies.
json range_request(std::string_view key, std::string_view range_end = {});
json put_request(std::string_view key, std::string_view value, int64_t lease, bool prev_kv);
// A txn compare: target "VERSION" or "MOD", result "EQUAL".
json compare_equal(std::string_view key, const char* target, int64_t value);

// An error answer: {"error": "...", "message": "...", "code": N} (gRPC status code), or inside a
// watch stream {"error": {"grpc_code": N, "message": "..."}}. nullopt when `body` is not one.
struct GatewayError {
  int code = 0;
  std::string message;
};
std::optional<GatewayError> parse_error(const json& body);
// gRPC status codes the store distinguishes.
constexpr int kGrpcFailedPrecondition = 9;
constexpr int kGrpcNotFound = 5;
constexpr int kGrpcOutOfRange = 11;
constexpr int kGrpcPermissionDenied = 7;
constexpr int kGrpcUnauthenticated = 16;

// The value current flannel writes for a lease: Go's json.Marshal of its LeaseAttrs, i.e. the
// v0.11 JSON with "PublicIPv6":null after PublicIP, e.g.
// {"PublicIP":"10.0.0.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{...}};
// with IPv6 attrs, PublicIPv6 holds the address and BackendV6Data follows BackendData.
// Reading uses core's decode_lease_attrs. Throws std::invalid_argument as encode_lease_attrs
// does (BackendData that is not JSON).
std::string encode_lease_value(const LeaseAttrs& attrs);

}  // namespace flannel::etcd_v3
