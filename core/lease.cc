// Lease key naming and the LeaseAttrs JSON codec, byte-compatible with flannel v0.11.
#include "core/lease.h"

#include <nlohmann/json.hpp>

#include "core/json_util.h"

namespace flannel {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Length of the digit run at key[i].
size_t digits_at(std::string_view key, size_t i) {
  size_t n = 0;
  while (i + n < key.size() && is_digit(key[i + n])) ++n;
  return n;
}

// Matches \d+\.\d+\.\d+\.\d+-\d+ starting exactly at key[i]; returns the match length or 0.
// Digit runs and separators are disjoint, so greedy matching needs no backtracking.
size_t match_key_at(std::string_view key, size_t i) {
  size_t p = i;
  for (int part = 0; part < 5; ++part) {
    size_t n = digits_at(key, p);
    if (n == 0) return 0;
    p += n;
    if (part == 4) break;
    char sep = part < 3 ? '.' : '-';
    if (p >= key.size() || key[p] != sep) return 0;
    ++p;
  }
  return p - i;
}

// Current flannel's IPv6 part "([a-f\d:]+)-(\d+)$" of the key, after the "&". Prefix lengths
// are ParseUint(s, 10, 7): at most 127.
std::optional<IP6Net> parse_v6_part(std::string_view part) {
  size_t dash = part.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == part.size()) return std::nullopt;
  std::string_view addr = part.substr(0, dash), len = part.substr(dash + 1);
  for (char c : addr) {
    if (!is_digit(c) && !(c >= 'a' && c <= 'f') && c != ':') return std::nullopt;
  }
  int n = 0;
  for (char c : len) {
    if (!is_digit(c)) return std::nullopt;
    n = n * 10 + (c - '0');
    if (n > 127) return std::nullopt;
  }
  auto ip = IP6::try_parse(addr);
  if (!ip) return std::nullopt;
  return IP6Net{*ip, n};
}

}  // namespace

std::string LeaseKey::str() const {
  if (!ipv6_subnet) return subnet.str();
  if (!has_ipv4()) return ipv6_subnet->str();
  return subnet.str() + " " + ipv6_subnet->str();
}

std::string subnet_key(const LeaseKey& key) {
  // Appended piece by piece: `"&" + std::string` trips GCC 12's -Wrestrict false positive at -O3.
  std::string out = key.subnet.ip.str();
  out += '-';
  out += std::to_string(key.subnet.prefix);
  if (key.ipv6_subnet) {
    out += '&';
    out += key.ipv6_subnet->ip.str();
    out += '-';
    out += std::to_string(key.ipv6_subnet->prefix);
  }
  return out;
}

std::optional<LeaseKey> parse_subnet_key(std::string_view key) {
  // Like flannel's unanchored regex, take the leftmost match. A match can only start at a digit
  // that does not follow another digit (otherwise the match one to the left would be leftmost).
  for (size_t i = 0; i < key.size(); ++i) {
    if (!is_digit(key[i]) || (i > 0 && is_digit(key[i - 1]))) continue;
    size_t len = match_key_at(key, i);
    if (len == 0) continue;
    std::string_view m = key.substr(i, len);
    size_t dash = m.rfind('-');
    auto ip = IP4::try_parse(m.substr(0, dash));
    std::string_view prefix = m.substr(dash + 1);
    // flannel gives up (rather than searching further) when the leftmost match is out of range.
    if (!ip) return std::nullopt;
    int n = 0;
    for (char c : prefix) {
      n = n * 10 + (c - '0');
      if (n > 32) return std::nullopt;
    }
    LeaseKey out{IP4Net{*ip, n}};
    if (i + len < key.size() && key[i + len] == '&') {
      out.ipv6_subnet = parse_v6_part(key.substr(i + len + 1));
      if (!out.ipv6_subnet) return std::nullopt;
    }
    return out;
  }
  return std::nullopt;
}

namespace {

// Go compacts and HTML-escapes a json.RawMessage when marshalling; invalid raw JSON is a
// programming error in the backend that produced it, never user input.
std::string raw_member(const char* name, const std::string& raw) {
  if (!nlohmann::json::accept(raw)) {
    throw std::invalid_argument(std::string("lease ") + name + " is not valid JSON: " + raw);
  }
  return std::string(",\"") + name + "\":" + json_util::compact(raw);
}

}  // namespace

std::string encode_lease_attrs(const LeaseAttrs& attrs) {
  // Current flannel's form only when there is something IPv6 to say: IPv4-only leases stay
  // byte-identical to v0.11's.
  const bool v6 = attrs.public_ipv6.has_value() || !attrs.backend_v6_data.empty();
  std::string out = "{\"PublicIP\":\"" + attrs.public_ip.str() + "\"";
  if (v6) {
    out += ",\"PublicIPv6\":";
    out += attrs.public_ipv6 ? "\"" + attrs.public_ipv6->str() + "\"" : std::string("null");
  }
  if (!attrs.backend_type.empty())
    out += ",\"BackendType\":" + json_util::go_quote(attrs.backend_type);
  if (!attrs.backend_data.empty()) out += raw_member("BackendData", attrs.backend_data);
  if (!attrs.backend_v6_data.empty()) out += raw_member("BackendV6Data", attrs.backend_v6_data);
  out += "}";
  return out;
}

LeaseAttrs decode_lease_attrs(std::string_view json) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json);
  } catch (const nlohmann::json::parse_error& e) {
    throw ParseError("invalid lease JSON: " + json_util::describe(e));
  } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for a double
    throw ParseError("invalid lease JSON: " + json_util::describe(e));
  }
  if (!doc.is_object()) {
    throw ParseError(
        "invalid lease JSON: expected an object like {\"PublicIP\":\"10.0.0.1\"}, got " +
        std::string(doc.type_name()));
  }
  // Walk the raw members in document order: Go matches names case-insensitively and the last
  // matching member wins; BackendData must keep its raw text.
  std::optional<std::string_view> public_ip, public_ipv6, backend_type, backend_data,
      backend_v6_data;
  for (const auto& m : json_util::object_members(json)) {
    if (json_util::iequals(m.key, "PublicIP")) public_ip = m.value;
    else if (json_util::iequals(m.key, "PublicIPv6")) public_ipv6 = m.value;
    else if (json_util::iequals(m.key, "BackendType")) backend_type = m.value;
    else if (json_util::iequals(m.key, "BackendData")) backend_data = m.value;
    else if (json_util::iequals(m.key, "BackendV6Data")) backend_v6_data = m.value;
  }
  LeaseAttrs attrs;
  if (!public_ip) throw ParseError("invalid lease JSON: PublicIP is missing");
  // Values of the document parsed above: strings without escapes are read as they are.
  std::optional<IP4> ip;
  if (auto text = json_util::string_value(*public_ip)) ip = IP4::try_parse(*text);
  if (!ip) {
    throw ParseError("invalid lease JSON: PublicIP " + std::string(*public_ip) +
                     " is not an IPv4 dotted quad string like \"10.0.0.1\"");
  }
  attrs.public_ip = *ip;
  if (backend_type) {
    if (auto text = json_util::string_value(*backend_type)) {
      attrs.backend_type = std::move(*text);
    } else if (*backend_type != "null") {
      throw ParseError("invalid lease JSON: BackendType " + std::string(*backend_type) +
                       " is not a string");
    }
  }
  if (public_ipv6) {
    std::optional<IP6> ip6;
    if (auto text = json_util::string_value(*public_ipv6)) ip6 = IP6::try_parse(*text);
    if (*public_ipv6 != "null" && !ip6) {
      throw ParseError("invalid lease JSON: PublicIPv6 " + std::string(*public_ipv6) +
                       " is neither null nor an IPv6 address string like \"2001:db8::10\"");
    }
    attrs.public_ipv6 = ip6;
  }
  // A null BackendData / BackendV6Data is treated as absent.
  if (backend_data && *backend_data != "null")
    attrs.backend_data = json_util::compact(*backend_data, false);
  if (backend_v6_data && *backend_v6_data != "null") {
    attrs.backend_v6_data = json_util::compact(*backend_v6_data, false);
  }
  return attrs;
}

}  // namespace flannel
