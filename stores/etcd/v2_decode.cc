#include "stores/etcd/v2_decode.h"

#include <exception>
#include <utility>

#include "stores/etcd/v2_store.h"  // etcd::parse_rfc3339

namespace flannel::etcd {

using nlohmann::json;

ErrorBody decode_error(std::string_view body) {
  ErrorBody err;
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return err;
  if (auto it = j.find("errorCode"); it != j.end() && it->is_number_integer()) {
    err.code = it->get<int>();
  }
  if (auto it = j.find("message"); it != j.end() && it->is_string()) err.message = *it;
  if (auto it = j.find("cause"); it != j.end() && it->is_string()) err.cause = *it;
  if (auto it = j.find("index"); it != j.end() && it->is_number_unsigned()) {
    err.index = it->get<uint64_t>();
  }
  return err;
}

std::string str_field(const json& node, const char* name) {
  auto it = node.find(name);
  return it != node.end() && it->is_string() ? it->get<std::string>() : std::string();
}

uint64_t index_field(const json& node, const char* name) {
  auto it = node.find(name);
  return it != node.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

bool is_dir(const json& node) {
  auto it = node.find("dir");
  return it != node.end() && it->is_boolean() && it->get<bool>();
}

std::optional<LeaseKey> lease_subnet(const std::string& dir, const std::string& key,
                                     std::string* why) {
  if (!key.starts_with(dir + "/") || key.find('/', dir.size() + 1) != std::string::npos) {
    *why = "not a direct child of " + dir;
    return std::nullopt;
  }
  std::string_view name = std::string_view(key).substr(dir.size() + 1);
  std::optional<LeaseKey> subnet;
  try {
    subnet = parse_subnet_key(name);
  } catch (const std::exception&) { subnet.reset(); }
  if (!subnet) {
    *why = "the name is not a subnet key like 10.5.34.0-24 or 10.5.34.0-24&fc00:0:0:1::-64";
    return std::nullopt;
  }
  if (subnet_key(*subnet) != name) {
    // flannel's regex would find a subnet inside e.g. "x10.5.34.0-24", but every write we make
    // goes to the canonical key, so such a lease could never be renewed or deleted.
    *why = "the name is not the canonical key " + subnet_key(*subnet);
    return std::nullopt;
  }
  return subnet;
}

bool node_to_lease(const json& node, const LeaseKey& subnet, Lease* out, std::string* why) {
  if (is_dir(node)) {
    *why = "it is a directory";
    return false;
  }
  Lease lease;
  lease.subnet = subnet.subnet;
  lease.ipv6_subnet = subnet.ipv6_subnet;
  try {
    lease.attrs = decode_lease_attrs(str_field(node, "value"));
  } catch (const std::exception& e) {
    *why = std::string("bad lease value: ") + e.what();
    return false;
  }
  std::string exp = str_field(node, "expiration");
  if (!exp.empty()) {
    lease.expiration = etcd::parse_rfc3339(exp);
    if (!lease.expiration) {
      *why = "bad expiration '" + exp + "'";
      return false;
    }
  }
  lease.revision = index_field(node, "modifiedIndex");
  lease.created = index_field(node, "createdIndex");
  *out = std::move(lease);
  return true;
}

void add_listed_node(const json& child, const std::string& dir, LeaseListBody* out) {
  std::string key = child.is_object() ? str_field(child, "key") : std::string();
  std::string why;
  Lease lease;
  auto subnet = lease_subnet(dir, key, &why);
  if (subnet && node_to_lease(child, *subnet, &lease, &why)) {
    out->leases.push_back(std::move(lease));
  } else {
    out->warnings.push_back("ignoring bad subnet node " + key + ": " + why);
  }
}

}  // namespace flannel::etcd
