#include "backends/wireguard/config.h"

#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "backends/wireguard/key.h"
#include "core/json_util.h"

namespace flannel {
namespace {

[[noreturn]] void decode_error(const std::string& why) {
  throw BackendError("error decoding backend config: " + why);
}

// The last case-insensitive match of `key` in the object, nullopt if absent or null.
std::optional<nlohmann::json> member(const std::string& json, const char* key, std::string* raw) {
  std::optional<std::string_view> found;
  for (const auto& m : json_util::object_members(json)) {
    if (json_util::iequals(m.key, key)) found = m.value;
  }
  if (!found) return std::nullopt;
  nlohmann::json v = nlohmann::json::parse(*found);
  if (v.is_null()) return std::nullopt;
  *raw = std::string(*found);
  return v;
}

int int_in(const std::string& json, const char* key, int def, int lo, int hi, const char* example) {
  std::string raw;
  if (!member(json, key, &raw)) return def;
  auto f = json_util::decode_int_field(raw, lo, hi);
  switch (f.kind) {
    case json_util::IntField::Kind::kNull: return def;
    case json_util::IntField::Kind::kNotInteger:
      decode_error(std::string(key) + " must be an integer like " + example + ", got " + raw);
    case json_util::IntField::Kind::kOutOfRange:
      decode_error(std::string(key) + " must be between " + std::to_string(lo) + " and " +
                   std::to_string(hi) + ", got " + raw);
    case json_util::IntField::Kind::kOk: break;
  }
  return static_cast<int>(f.value);
}

std::string string_of(const std::string& json, const char* key, const std::string& def) {
  std::string raw;
  auto v = member(json, key, &raw);
  if (!v) return def;
  if (!v->is_string()) decode_error(std::string(key) + " must be a string, got " + raw);
  return v->get<std::string>();
}

}  // namespace

std::string to_string(WgImplementation impl) {
  switch (impl) {
    case WgImplementation::kKernel: return "kernel";
    case WgImplementation::kUserspace: return "userspace";
    default: return "auto";
  }
}

WgImplementation choose_wg_implementation(WgImplementation configured,
                                          const std::function<bool()>& kernel_has_wireguard,
                                          std::string* why) {
  if (configured == WgImplementation::kUserspace) {
    *why =
        "wireguard: using userspace WireGuard (wireguard-go), as configured "
        "(\"Implementation\":\"userspace\")";
    return WgImplementation::kUserspace;
  }
  const bool kernel = kernel_has_wireguard();
  if (configured == WgImplementation::kKernel) {
    if (!kernel) {
      throw BackendError(
          "kernel WireGuard not available on this host (no wireguard module); use "
          "\"Implementation\":\"userspace\" (Debian's wireguard-go) or \"auto\" in the Backend "
          "config");
    }
    *why =
        "wireguard: using kernel WireGuard (generic netlink), as configured "
        "(\"Implementation\":\"kernel\")";
    return WgImplementation::kKernel;
  }
  if (kernel) {
    *why = "wireguard: the kernel has WireGuard; using kernel WireGuard (generic netlink)";
    return WgImplementation::kKernel;
  }
  *why =
      "wireguard: no kernel WireGuard on this host (no wireguard module); using userspace "
      "WireGuard (wireguard-go)";
  return WgImplementation::kUserspace;
}

WgConfig decode_wireguard_config(const std::string& backend_json) {
  WgConfig c;
  if (backend_json.empty()) return c;
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(backend_json);
  } catch (const nlohmann::json::parse_error& e) { decode_error(json_util::describe(e)); }
  if (!doc.is_object())
    decode_error("expected an object like {\"Type\":\"wireguard\",\"ListenPort\":51820}");
  c.listen_port = int_in(backend_json, "ListenPort", c.listen_port, 1, 65535, "51820");
  c.listen_port_v6 = int_in(backend_json, "ListenPortV6", c.listen_port_v6, 1, 65535, "51821");
  c.mtu = int_in(backend_json, "MTU", 0, 0, 65535, "1500");
  // A Go Duration decoded from a JSON integer, then multiplied by one second; "25s" is an error.
  c.keepalive_seconds = int_in(backend_json, "PersistentKeepaliveInterval", 0, 0, 65535, "25");
  c.psk = string_of(backend_json, "PSK", "");
  if (!c.psk.empty() && !WgKey::from_base64(c.psk)) {
    throw BackendError("could not parse psk: \"" + c.psk +
                       "\" is not a base64 32-byte key (make one with: wg genpsk)");
  }
  c.mode = string_of(backend_json, "Mode", "separate");
  if (c.mode.empty()) c.mode = "separate";
  if (c.mode != "separate" && c.mode != "auto" && c.mode != "ipv4" && c.mode != "ipv6") {
    throw BackendError("no valid Mode configured: \"" + c.mode +
                       "\" (valid: separate, auto, ipv4, ipv6)");
  }
  std::string impl = string_of(backend_json, "Implementation", "auto");
  if (impl == "auto" || impl.empty()) {
    c.implementation = WgImplementation::kAuto;
  } else if (impl == "kernel") {
    c.implementation = WgImplementation::kKernel;
  } else if (impl == "userspace") {
    c.implementation = WgImplementation::kUserspace;
  } else {
    decode_error("Implementation \"" + impl + "\" is not valid (valid: auto, kernel, userspace)");
  }
  return c;
}

std::string encode_wg_backend_data(const WgBackendData& d) {
  // Go's json.Marshal of struct{PublicKey string; Port uint16}: field order, no spaces.
  return "{\"PublicKey\":" + nlohmann::json(d.public_key).dump() +
         ",\"Port\":" + std::to_string(d.port) + "}";
}

std::optional<WgBackendData> decode_wg_backend_data(std::string_view json, std::string* why) {
  WgBackendData d;
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    *why = "BackendData is not a JSON object: " + std::string(json);
    return std::nullopt;
  }
  std::string s(json);
  std::string raw;
  auto key = member(s, "PublicKey", &raw);
  if (!key || !key->is_string() || !WgKey::from_base64(key->get<std::string>())) {
    *why = "BackendData has no valid PublicKey (a base64 32-byte key): " + s;
    return std::nullopt;
  }
  d.public_key = key->get<std::string>();
  auto port = member(s, "Port", &raw);
  if (port) {
    if (!port->is_number_unsigned() || port->get<uint64_t>() > 65535) {
      *why = "BackendData Port must be 0..65535, got " + raw;
      return std::nullopt;
    }
    d.port = static_cast<int>(port->get<uint64_t>());
  }
  return d;
}

}  // namespace flannel
