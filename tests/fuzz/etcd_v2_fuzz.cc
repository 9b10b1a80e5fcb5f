// Fuzzes the decoding of etcd v2 answers (stores/etcd_decode.h) as EtcdStore does it for a lease
// listing (node.nodes[]), a single lease (node) and a watch event (node, prevNode), plus an
// error body: arbitrary bytes must give leases, warnings or errors, never a crash or a throw.
// The etcd v3 gateway's answers have their own target next to this one (etcd_v3_fuzz.cc).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "stores/etcd_decode.h"
#include "stores/etcd_store.h"
#include "tests/fuzz/fuzz_check.h"

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
