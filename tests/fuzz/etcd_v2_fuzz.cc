// Fuzzes the decoding of etcd v2 answers (stores/etcd/v2_decode.h) as EtcdV2Store does it for a
// lease listing (node.nodes[], decoded as it is read, which must agree with a tree of the answer),
// a single lease (node) and a watch event (node, prevNode), plus an error body: arbitrary bytes
// must give leases, warnings or errors, never a crash or a throw.
// The etcd v3 gateway's answers have their own target next to this one (etcd_v3_fuzz.cc).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "stores/etcd/v2_decode.h"
#include "stores/etcd/v2_store.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/stores/etcd/v2_list_reference.h"

namespace etcd = flannel::etcd;
using nlohmann::json;

namespace {
const std::string kDir = "/coreos.com/network/subnets";

void decode_node(const json& node) {
  if (!node.is_object()) return;
  std::string why;
  std::string key = etcd::str_field(node, "key");
  if (auto subnet = etcd::lease_subnet(kDir, key, &why)) {
    FUZZ_CHECK(kDir + "/" + flannel::subnet_key(*subnet) == key);
    flannel::Lease lease;
    if (etcd::node_to_lease(node, *subnet, &lease, &why)) {
      FUZZ_CHECK(lease.subnet == *subnet);
    } else {
      FUZZ_CHECK(!why.empty());
    }
  } else {
    FUZZ_CHECK(!why.empty());
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // The listing decoded as it is read agrees with the tree it replaced.
  etcd::LeaseListBody sax = etcd::decode_lease_list(text, kDir);
  etcd::LeaseListBody tree = etcd::testing::decode_lease_list_with_a_tree(text, kDir);
  FUZZ_CHECK(sax.json_object == tree.json_object && sax.node_is_dir == tree.node_is_dir);
  FUZZ_CHECK(sax.leases == tree.leases && sax.warnings == tree.warnings);
  (void)etcd::decode_error(text);
  (void)etcd::parse_rfc3339(text);
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return 0;
  json node = body.value("node", json::object());
  decode_node(node);
  decode_node(body.value("prevNode", json::object()));
  (void)etcd::is_dir(node);
  (void)etcd::index_field(node, "modifiedIndex");
  if (node.is_object()) {
    if (auto it = node.find("nodes"); it != node.end() && it->is_array()) {
      for (const json& child : *it) decode_node(child);
    }
  }
  return 0;
}
