// Network config decoding and validation, following subnet/config.go (ParseConfig) of v0.11.
#include "core/config.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/json_util.h"

namespace flannel {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& msg) { throw ConfigError(msg); }

std::string raw(std::string_view v) { return std::string(v); }

// A JSON string holding an IPv4 CIDR; `what` names the key for the error.
IP4Net decode_network(std::string_view value) {
  json v = json::parse(value);
  if (!v.is_string()) {
    fail("Network must be a CIDR string like \"10.5.0.0/16\", got " + raw(value));
  }
  std::string text = v.get<std::string>();
  if (auto n = IP4Net::try_parse(text)) return *n;
  if (IP6Net::try_parse(text)) {
    fail("Network " + raw(value) + " is an IPv6 network; only IPv4 networks are supported, e.g. "
         "\"10.5.0.0/16\"");
  }
  fail("invalid CIDR address for Network: " + raw(value) + " (expected e.g. \"10.5.0.0/16\")");
}

// SubnetMin / SubnetMax: a JSON string holding a dotted quad.
IP4 decode_ip(std::string_view key, std::string_view value) {
  json v = json::parse(value);
  if (v.is_string()) {
    std::string text = v.get<std::string>();
    if (auto ip = IP4::try_parse(text)) return *ip;
    if (IP6::try_parse(text)) {
      fail(std::string(key) + " " + raw(value) + " is an IPv6 address; only IPv4 is supported");
    }
  }
  // v0.11's text is "Invalid IP address format".
  fail("Invalid IP address format for " + std::string(key) + ": " + raw(value) +
       " (expected a dotted quad string like \"10.5.1.0\")");
}

// SubnetLen: a non-negative JSON integer (Go uint); null leaves it unset.
uint64_t decode_subnet_len(std::string_view value) {
  json v = json::parse(value);
  if (v.is_null()) return 0;
  if (!v.is_number_unsigned()) {
    fail("SubnetLen must be a non-negative integer like 24, got " + raw(value));
  }
  return v.get<uint64_t>();
}

// Returns {type, compact raw JSON} of the Backend object.
std::pair<std::string, std::string> decode_backend(std::string_view value) {
  json v = json::parse(value);
  if (!v.is_object()) {
    fail("error decoding Backend property of config: expected an object like "
         "{\"Type\":\"vxlan\"}, got " + raw(value));
  }
  std::optional<std::string_view> type;
  for (const auto& m : json_util::object_members(value)) {
    if (json_util::iequals(m.key, "Type")) type = m.value;
  }
  std::string t;
  if (type) {
    json tv = json::parse(*type);
    if (tv.is_string()) t = tv.get<std::string>();
    else if (!tv.is_null())
      fail("error decoding Backend property of config: Type must be a string, got " + raw(*type));
  }
  if (t.empty()) {
    // v0.11 fails later with "unknown backend type: "; say what is wrong here instead.
    fail("Backend Type is missing or empty in " + raw(value) +
         "; expected e.g. {\"Backend\":{\"Type\":\"vxlan\"}}");
  }
  std::transform(t.begin(), t.end(), t.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return {t, json_util::compact(value, false)};
}

}  // namespace

Config parse_config(std::string_view text) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("invalid network config JSON: " + json_util::describe(e));
  } catch (const json::exception& e) {  // e.g. a number too large for a double
    fail("invalid network config JSON: " + json_util::describe(e));
  }
  if (!doc.is_object()) {
    fail(std::string("network config must be a JSON object like {\"Network\":\"10.5.0.0/16\"}, got ") +
         doc.type_name());
  }
  // Go's decoder: names match case-insensitively, the last matching member wins.
  std::optional<std::string_view> network, subnet_len, subnet_min, subnet_max, backend;
  for (const auto& m : json_util::object_members(text)) {
    if (json_util::iequals(m.key, "Network")) network = m.value;
    else if (json_util::iequals(m.key, "SubnetLen")) subnet_len = m.value;
    else if (json_util::iequals(m.key, "SubnetMin")) subnet_min = m.value;
    else if (json_util::iequals(m.key, "SubnetMax")) subnet_max = m.value;
    else if (json_util::iequals(m.key, "Backend")) backend = m.value;
  }

  Config c;
  if (!network) fail("Network is missing from the config; expected e.g. {\"Network\":\"10.5.0.0/16\"}");
  c.network = decode_network(*network);
  const int p = c.network.prefix;
  const std::string net = c.network.str();

  const uint64_t len = subnet_len ? decode_subnet_len(*subnet_len) : 0;
  if (len > 30) {
    fail("SubnetLen must be less than /31 (got SubnetLen " + std::to_string(len) +
         " for Network " + net + ")");
  }
  c.subnet_len = static_cast<int>(len);
  if (c.subnet_len > 0) {
    if (c.subnet_len < p + 2) {
      fail("Network must be able to accommodate at least four subnets (SubnetLen " +
           std::to_string(c.subnet_len) + " with Network " + net + "; SubnetLen must be at least " +
           std::to_string(p + 2) + (p + 2 > 30 ? ", which is more than 30: use a larger Network)" : ")"));
    }
  } else {
    if (p > 28) {
      fail("Network is too small. Minimum useful network prefix is /28 (got Network " + net + ")");
    }
    c.subnet_len = p <= 22 ? 24 : p + 2;
  }

  const uint64_t size = uint64_t{1} << (32 - c.subnet_len);
  const uint64_t base = c.network.ip.value;
  const std::string len_text = std::to_string(c.subnet_len);

  c.subnet_min = IP4{static_cast<uint32_t>(base + size)};
  if (subnet_min) {
    c.subnet_min = decode_ip("SubnetMin", *subnet_min);
    if (!c.network.contains(c.subnet_min)) {
      fail("SubnetMin is not in the range of the Network (SubnetMin " + c.subnet_min.str() +
           ", Network " + net + ")");
    }
  }
  c.subnet_max = IP4{static_cast<uint32_t>(base + c.network.size() - size)};
  if (subnet_max) {
    c.subnet_max = decode_ip("SubnetMax", *subnet_max);
    if (!c.network.contains(c.subnet_max)) {
      fail("SubnetMax is not in the range of the Network (SubnetMax " + c.subnet_max.str() +
           ", Network " + net + ")");
    }
  }

  const uint32_t host_mask = static_cast<uint32_t>(size - 1);
  if (c.subnet_min.value & host_mask) {
    fail("SubnetMin is not on a SubnetLen boundary: " + c.subnet_min.str() + " (SubnetLen " +
         len_text + "; e.g. " + IP4{c.subnet_min.value & ~host_mask}.str() + ")");
  }
  if (c.subnet_max.value & host_mask) {
    fail("SubnetMax is not on a SubnetLen boundary: " + c.subnet_max.str() + " (SubnetLen " +
         len_text + "; e.g. " + IP4{c.subnet_max.value & ~host_mask}.str() + ")");
  }
  if (c.subnet_min > c.subnet_max) {
    // v0.11 accepts this and fails later with "out of subnets".
    fail("SubnetMin " + c.subnet_min.str() + " is greater than SubnetMax " + c.subnet_max.str() +
         ": no subnet could ever be allocated in Network " + net);
  }

  if (backend) {
    auto [type, raw_json] = decode_backend(*backend);
    c.backend_type = std::move(type);
    c.backend_json = std::move(raw_json);
  } else {
    c.backend_type = "udp";
  }
  return c;
}

uint64_t subnet_count(const Config& c) {
  if (c.subnet_min > c.subnet_max || c.subnet_len < 0 || c.subnet_len > 32) return 0;
  uint64_t size = uint64_t{1} << (32 - c.subnet_len);
  return (uint64_t{c.subnet_max.value} - c.subnet_min.value) / size + 1;
}

std::string Config::str() const {
  return "Network=" + network.str() + " SubnetLen=" + std::to_string(subnet_len) +
         " SubnetMin=" + subnet_min.str() + " SubnetMax=" + subnet_max.str() +
         " Backend=" + (backend_type.empty() ? std::string("(none)") : backend_type);
}

}  // namespace flannel
