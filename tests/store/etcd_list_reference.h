// The lease listing decoded the way EtcdStore did before etcd::decode_lease_list: a JSON tree of
// the whole answer, then lease_subnet and node_to_lease per child of node.nodes[]. The reference
// that the SAX decoder must agree with (its unit test, and the etcd v2 fuzz target).
#pragma once

#include <string>
#include <string_view>

#include "stores/etcd_decode.h"

namespace flannel::etcd::testing {

inline LeaseListBody decode_lease_list_with_a_tree(std::string_view text, const std::string& dir) {
  LeaseListBody out;
  nlohmann::json body = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) return out;
  out.json_object = true;
  static const nlohmann::json kNoNode = nlohmann::json::object();
  auto found = body.find("node");
  const nlohmann::json& node = found != body.end() ? *found : kNoNode;
  out.node_is_dir = is_dir(node);
  if (!out.node_is_dir) return out;
  if (auto it = node.find("nodes"); it != node.end() && it->is_array()) {
    for (const nlohmann::json& child : *it) {
      std::string key = child.is_object() ? str_field(child, "key") : std::string();
      std::string why;
      Lease lease;
      auto subnet = lease_subnet(dir, key, &why);
      if (subnet && node_to_lease(child, *subnet, &lease, &why)) {
        out.leases.push_back(std::move(lease));
      } else {
        out.warnings.push_back("ignoring bad subnet node " + key + ": " + why);
      }
    }
  }
  return out;
}

}  // namespace flannel::etcd::testing
