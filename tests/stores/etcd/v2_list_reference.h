// The lease listing decoded the way EtcdV2Store did before etcd::decode_lease_list: a JSON tree of
// the whole answer, then each child of node.nodes[] (add_listed_node, as the SAX decoder does
// with each child it builds). The reference that the SAX decoder's walk of the answer must agree
// with (its unit test, and the etcd v2 fuzz target).
#pragma once

#include <string>
#include <string_view>

#include "stores/etcd/v2_decode.h"

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
    for (const nlohmann::json& child : *it) add_listed_node(child, dir, &out);
  }
  return out;
}

}  // namespace flannel::etcd::testing
