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
    fail("Network " + raw(value) +
         " is an IPv6 network; Network holds the IPv4 network, e.g. "
         "\"10.5.0.0/16\" (an IPv6 network goes in IPv6Network, with \"EnableIPv6\":true)");
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
uint64_t decode_subnet_len(std::string_view key, std::string_view value) {
  json v = json::parse(value);
  if (v.is_null()) return 0;
  if (!v.is_number_unsigned()) {
    fail(std::string(key) + " must be a non-negative integer like " +
         (key == "SubnetLen" ? "24" : "64") + ", got " + raw(value));
  }
  return v.get<uint64_t>();
}

// EnableIPv4 / EnableIPv6 / EnableNFTables: a JSON bool; null leaves the default (Go's decoder).
bool decode_bool(std::string_view key, std::string_view value, bool dflt) {
  json v = json::parse(value);
  if (v.is_null()) return dflt;
  if (!v.is_boolean()) fail(std::string(key) + " must be true or false, got " + raw(value));
  return v.get<bool>();
}

// IPv6Network: a JSON string holding an IPv6 CIDR (host bits cleared, as net.ParseCIDR).
IP6Net decode_network6(std::string_view value) {
  json v = json::parse(value);
  if (v.is_string()) {
    std::string text = v.get<std::string>();
    if (IP4Net::try_parse(text)) {
      fail("IPv6Network " + raw(value) +
           " is an IPv4 network; expected an IPv6 CIDR like \"fc00::/48\" "
           "(the IPv4 network goes in Network)");
    }
    if (auto n = IP6Net::try_parse(text)) return *n;
  }
  fail("invalid CIDR address for IPv6Network: " + raw(value) + " (expected e.g. \"fc00::/48\")");
}

// IPv6SubnetMin / IPv6SubnetMax: a JSON string holding an IPv6 address; null = unset.
std::optional<IP6> decode_ip6(std::string_view key, std::string_view value) {
  json v = json::parse(value);
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) {
    std::string text = v.get<std::string>();
    if (IP4::try_parse(text)) {
      fail(std::string(key) + " " + raw(value) +
           " is an IPv4 address; expected an IPv6 address like "
           "\"fc00:0:0:1::\"");
    }
    if (auto ip = IP6::try_parse(text)) return *ip;
  }
  // Current flannel's text is "invalid IP address format".
  fail("invalid IP address format for " + std::string(key) + ": " + raw(value) +
       " (expected an IPv6 address string like \"fc00:0:0:1::\")");
}

// Returns {type, compact raw JSON} of the Backend object.
std::pair<std::string, std::string> decode_backend(std::string_view value) {
  json v = json::parse(value);
  if (!v.is_object()) {
    fail(
        "error decoding Backend property of config: expected an object like "
        "{\"Type\":\"vxlan\"}, got " +
        raw(value));
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

using Member = std::optional<std::string_view>;

// The IPv4 fields (v0.11's rules).
void check_ipv4(Config& c, Member network, Member subnet_len, Member subnet_min,
                Member subnet_max) {
  if (!network)
    fail("Network is missing from the config; expected e.g. {\"Network\":\"10.5.0.0/16\"}");
  c.network = decode_network(*network);
  const int p = c.network.prefix;
  const std::string net = c.network.str();

  const uint64_t len = subnet_len ? decode_subnet_len("SubnetLen", *subnet_len) : 0;
  if (len > 30) {
    fail("SubnetLen must be less than /31 (got SubnetLen " + std::to_string(len) + " for Network " +
         net + ")");
  }
  c.subnet_len = static_cast<int>(len);
  if (c.subnet_len > 0) {
    if (c.subnet_len < p + 2) {
      fail("Network must be able to accommodate at least four subnets (SubnetLen " +
           std::to_string(c.subnet_len) + " with Network " + net + "; SubnetLen must be at least " +
           std::to_string(p + 2) +
           (p + 2 > 30 ? ", which is more than 30: use a larger Network)" : ")"));
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
}

// The IPv6 fields (current flannel's CheckNetworkConfig, extended with values in the messages).
void check_ipv6(Config& c, Member network, Member subnet_len, Member subnet_min,
                Member subnet_max) {
  if (!network) {
    fail(
        "please define a correct IPv6Network parameter in the flannel config: EnableIPv6 is true "
        "but "
        "IPv6Network is missing; expected e.g. "
        "{\"EnableIPv6\":true,\"IPv6Network\":\"fc00::/48\"}");
  }
  c.ipv6_network = decode_network6(*network);
  const int p = c.ipv6_network.prefix;
  const std::string net = c.ipv6_network.str();
  const uint64_t len = subnet_len ? decode_subnet_len("IPv6SubnetLen", *subnet_len) : 0;
  if (len > 0) {
    if (len > 126) {
      fail("IPv6SubnetLen must be less than /127 (got IPv6SubnetLen " + std::to_string(len) +
           " for IPv6Network " + net + ")");
    }
    if (static_cast<int>(len) < p + 2) {
      fail("IPv6Network must be able to accommodate at least four subnets (IPv6SubnetLen " +
           std::to_string(len) + " with IPv6Network " + net + "; IPv6SubnetLen must be at least " +
           std::to_string(p + 2) +
           (p + 2 > 126 ? ", which is more than 126: use a larger IPv6Network)" : ")"));
    }
    c.ipv6_subnet_len = static_cast<int>(len);
  } else {
    if (p > 124) {
      fail("IPv6Network is too small. Minimum useful network prefix is /124 (got IPv6Network " +
           net + ")");
    }
    c.ipv6_subnet_len = p <= 62 ? 64 : p + 2;
  }
  const U128 size = U128{1} << (128 - c.ipv6_subnet_len);
  const U128 base = ip6_to_u128(c.ipv6_network.ip);
  const U128 net_size = p == 0 ? 0 : U128{1} << (128 - p);  // 2^128 wraps to 0: same sum below
  const std::string len_text = std::to_string(c.ipv6_subnet_len);

  c.ipv6_subnet_min = ip6_from_u128(base + size);
  if (subnet_min) {
    if (auto ip = decode_ip6("IPv6SubnetMin", *subnet_min)) {
      c.ipv6_subnet_min = *ip;
      if (!c.ipv6_network.contains(*ip)) {
        fail("IPv6SubnetMin is not in the range of the IPv6Network (IPv6SubnetMin " + ip->str() +
             ", IPv6Network " + net + ")");
      }
    }
  }
  c.ipv6_subnet_max = ip6_from_u128(base + net_size - size);
  if (subnet_max) {
    if (auto ip = decode_ip6("IPv6SubnetMax", *subnet_max)) {
      c.ipv6_subnet_max = *ip;
      if (!c.ipv6_network.contains(*ip)) {
        fail("IPv6SubnetMax is not in the range of the IPv6Network (IPv6SubnetMax " + ip->str() +
             ", IPv6Network " + net + ")");
      }
    }
  }
  const U128 host_mask = size - 1;
  if (ip6_to_u128(c.ipv6_subnet_min) & host_mask) {
    fail("IPv6SubnetMin is not on a SubnetLen boundary: " + c.ipv6_subnet_min.str() +
         " (IPv6SubnetLen " + len_text + "; e.g. " +
         ip6_from_u128(ip6_to_u128(c.ipv6_subnet_min) & ~host_mask).str() + ")");
  }
  if (ip6_to_u128(c.ipv6_subnet_max) & host_mask) {
    fail("IPv6SubnetMax is not on a SubnetLen boundary: " + c.ipv6_subnet_max.str() +
         " (IPv6SubnetLen " + len_text + "; e.g. " +
         ip6_from_u128(ip6_to_u128(c.ipv6_subnet_max) & ~host_mask).str() + ")");
  }
  if (c.ipv6_subnet_min > c.ipv6_subnet_max) {
    // Current flannel accepts this and fails later with "out of subnets".
    fail("IPv6SubnetMin " + c.ipv6_subnet_min.str() + " is greater than IPv6SubnetMax " +
         c.ipv6_subnet_max.str() + ": no IPv6 subnet could ever be allocated in IPv6Network " +
         net);
  }
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
    fail(std::string(
             "network config must be a JSON object like {\"Network\":\"10.5.0.0/16\"}, got ") +
         doc.type_name());
  }
  // Go's decoder: names match case-insensitively, the last matching member wins.
  Member network, subnet_len, subnet_min, subnet_max, backend, enable_ipv4, enable_ipv6,
      enable_nftables, ipv6_network, ipv6_subnet_len, ipv6_subnet_min, ipv6_subnet_max;
  for (const auto& m : json_util::object_members(text)) {
    if (json_util::iequals(m.key, "Network")) network = m.value;
    else if (json_util::iequals(m.key, "EnableIPv4")) enable_ipv4 = m.value;
    else if (json_util::iequals(m.key, "EnableIPv6")) enable_ipv6 = m.value;
    else if (json_util::iequals(m.key, "EnableNFTables")) enable_nftables = m.value;
    else if (json_util::iequals(m.key, "IPv6Network")) ipv6_network = m.value;
    else if (json_util::iequals(m.key, "IPv6SubnetLen")) ipv6_subnet_len = m.value;
    else if (json_util::iequals(m.key, "IPv6SubnetMin")) ipv6_subnet_min = m.value;
    else if (json_util::iequals(m.key, "IPv6SubnetMax")) ipv6_subnet_max = m.value;
    else if (json_util::iequals(m.key, "SubnetLen")) subnet_len = m.value;
    else if (json_util::iequals(m.key, "SubnetMin")) subnet_min = m.value;
    else if (json_util::iequals(m.key, "SubnetMax")) subnet_max = m.value;
    else if (json_util::iequals(m.key, "Backend")) backend = m.value;
  }

  Config c;
  if (enable_ipv4) c.enable_ipv4 = decode_bool("EnableIPv4", *enable_ipv4, true);
  if (enable_ipv6) c.enable_ipv6 = decode_bool("EnableIPv6", *enable_ipv6, false);
  if (enable_nftables) c.enable_nftables = decode_bool("EnableNFTables", *enable_nftables, false);
  if (!c.enable_ipv4 && !c.enable_ipv6) {
    // Current flannel's text is "none defined stack".
    fail(
        "EnableIPv4 and EnableIPv6 are both false: no IP family is enabled (set EnableIPv4 to true "
        "for an IPv4 network, EnableIPv6 to true for an IPv6 network, or both)");
  }
  if (c.enable_ipv4) check_ipv4(c, network, subnet_len, subnet_min, subnet_max);
  if (c.enable_ipv6) check_ipv6(c, ipv6_network, ipv6_subnet_len, ipv6_subnet_min, ipv6_subnet_max);

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

uint64_t ipv6_subnet_count(const Config& c) {
  if (!c.enable_ipv6 || c.ipv6_subnet_min > c.ipv6_subnet_max || c.ipv6_subnet_len < 0 ||
      c.ipv6_subnet_len > 128) {
    return 0;
  }
  const U128 span = (ip6_to_u128(c.ipv6_subnet_max) - ip6_to_u128(c.ipv6_subnet_min)) >>
                    (128 - c.ipv6_subnet_len);
  return span >= U128{UINT64_MAX} ? UINT64_MAX : static_cast<uint64_t>(span) + 1;
}

std::string Config::str() const {
  std::string out = enable_ipv4
                        ? "Network=" + network.str() + " SubnetLen=" + std::to_string(subnet_len) +
                              " SubnetMin=" + subnet_min.str() + " SubnetMax=" + subnet_max.str()
                        : std::string("EnableIPv4=false");
  if (enable_ipv6) {
    out += " IPv6Network=" + ipv6_network.str() +
           " IPv6SubnetLen=" + std::to_string(ipv6_subnet_len) +
           " IPv6SubnetMin=" + ipv6_subnet_min.str() + " IPv6SubnetMax=" + ipv6_subnet_max.str();
  }
  out += " Backend=" + (backend_type.empty() ? std::string("(none)") : backend_type);
  return enable_nftables ? out + " EnableNFTables=true" : out;
}

}  // namespace flannel
