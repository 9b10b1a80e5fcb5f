// The pure part of the etcd v2 store: decoding etcd's JSON answers into leases, with no HTTP.
// EtcdV2Store (stores/etcd/v2_store.cc) calls these on every answer; tests/fuzz/etcd_v2_fuzz.cc
// feeds them arbitrary bytes. Nothing here throws for bad input: malformed answers give an
// empty ErrorBody, nullopt or false with *why saying what is wrong.
// (An etcd v3 store keeps its own decoder next to it, e.g. stores/etcd/v3_codec.h, fuzzed by its
// own tests/fuzz/etcd_v3_fuzz.cc.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/ip.h"
#include "core/lease.h"

namespace flannel::etcd {

// etcd v2 error codes (etcd/error/error.go).
constexpr int kEcodeKeyNotFound = 100;
constexpr int kEcodeTestFailed = 101;
constexpr int kEcodeNodeExist = 105;
constexpr int kEcodeUnauthorized = 110;
constexpr int kEcodeEventIndexCleared = 401;

// An etcd error answer: {"errorCode":100,"message":"Key not found","cause":"/x","index":7}.
struct ErrorBody {
  int code = 0;  // 0 = the body was not an etcd error
  std::string message;
  std::string cause;
  std::optional<uint64_t> index;
};
ErrorBody decode_error(std::string_view body);

// Fields of an etcd node object; "" / 0 / false when absent or of another JSON type.
std::string str_field(const nlohmann::json& node, const char* name);
uint64_t index_field(const nlohmann::json& node, const char* name);
bool is_dir(const nlohmann::json& node);

// The lease named by `key` if it is a direct child of `dir` whose name is a canonical subnet key
// ("10.5.34.0-24"). Otherwise nullopt and *why says what is wrong (*why is written only then).
std::optional<LeaseKey> lease_subnet(const std::string& dir, const std::string& key,
                                     std::string* why);

// Fills a lease from an etcd node (key checked by the caller): value = LeaseAttrs JSON,
// expiration (RFC 3339), modifiedIndex = revision. false + *why when malformed; *out is then
// unchanged.
bool node_to_lease(const nlohmann::json& node, const LeaseKey& subnet, Lease* out,
                   std::string* why);

// A recursive GET of the subnets directory `dir`, decoded as it is read (nlohmann's SAX
// interface): only one child node at a time is a JSON value, never the tree of the whole answer
// (10,000 leases: ~2 MB of text, a tree many times that). Same results as parsing the body and
// passing each of node.nodes[] to lease_subnet and node_to_lease (a bad child is a warning, as
// "ignoring bad subnet node KEY: WHY"); duplicate keys resolve as the tree would (last wins).
// No leases or warnings unless the answer is an object whose node is a directory.
struct LeaseListBody {
  bool json_object = false;  // false: not JSON, or not an object (the caller says so)
  bool node_is_dir = false;  // the answer's node is a directory (else: not a listing)
  std::vector<Lease> leases;
  std::vector<std::string> warnings;
};
LeaseListBody decode_lease_list(std::string_view body, const std::string& dir);
// One child of a listing into `out`: a lease, or the warning that says why it is not one.
void add_listed_node(const nlohmann::json& child, const std::string& dir, LeaseListBody* out);

}  // namespace flannel::etcd
