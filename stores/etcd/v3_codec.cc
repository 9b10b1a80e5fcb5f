#include "stores/etcd/v3_codec.h"

#include <array>
#include <charconv>
#include <stdexcept>

namespace flannel::etcd_v3 {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

template <typename T>
T get_number(const json& object, const char* field) {
  auto it = object.find(field);
  if (it == object.end() || it->is_null()) return 0;
  if (it->is_number_integer()) return it->get<T>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    T v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return v;
  }
  throw std::invalid_argument(std::string("field \"") + field +
                              "\" is not an integer: " + it->dump());
}

std::string decoded(const json& kv, const char* field) {
  auto it = kv.find(field);
  if (it == kv.end() || it->is_null()) return "";
  if (!it->is_string())
    throw std::invalid_argument(std::string("field \"") + field + "\" is not a base64 string");
  auto bytes = base64_decode(it->get_ref<const std::string&>());
  if (!bytes) throw std::invalid_argument(std::string("field \"") + field + "\" is not base64");
  return *bytes;
}

}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v =
        (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  static const std::array<int8_t, 256> table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
    return t;
  }();
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int8_t v = table[static_cast<uint8_t>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string prefix_range_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

int64_t get_int(const json& object, const char* field) {
  return get_number<int64_t>(object, field);
}
uint64_t get_uint(const json& object, const char* field) {
  return get_number<uint64_t>(object, field);
}

Header parse_header(const json& response) {
  Header h;
  auto it = response.find("header");
  if (it == response.end() || !it->is_object()) return h;
  h.cluster_id = get_uint(*it, "cluster_id");
  h.member_id = get_uint(*it, "member_id");
  h.revision = get_uint(*it, "revision");
  h.raft_term = get_uint(*it, "raft_term");
  return h;
}

KeyValue parse_kv(const json& kv) {
  if (!kv.is_object()) throw std::invalid_argument("key-value is not an object");
  KeyValue out;
  out.key = decoded(kv, "key");
  out.value = decoded(kv, "value");
  out.create_revision = get_int(kv, "create_revision");
  out.mod_revision = get_int(kv, "mod_revision");
  out.version = get_int(kv, "version");
  out.lease = get_int(kv, "lease");
  return out;
}

bool get_true(const json& object, const char* field) {
  if (!object.is_object()) return false;
  auto it = object.find(field);
  return it != object.end() && it->is_boolean() && it->get<bool>();
}

std::string get_string(const json& object, const char* field) {
  if (!object.is_object()) return "";
  auto it = object.find(field);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

WatchEvent parse_watch_event(const json& event) {
  if (!event.is_object()) throw std::invalid_argument("watch event is not an object");
  WatchEvent out;
  if (auto t = event.find("type"); t != event.end() && !t->is_null()) {
    if (t->is_string() && (*t == "PUT" || *t == "DELETE")) {
      out.is_delete = *t == "DELETE";
    } else if (t->is_number_integer() && (*t == 0 || *t == 1)) {
      out.is_delete = *t == 1;
    } else {
      throw std::invalid_argument("watch event type " + t->dump() + " is neither PUT nor DELETE");
    }
  }
  auto kv = event.find("kv");
  out.kv = parse_kv(kv == event.end() ? json::object() : *kv);
  if (auto prev = event.find("prev_kv"); prev != event.end() && prev->is_object()) {
    try {
      out.prev_lease = get_int(*prev, "lease");
    } catch (const std::invalid_argument&) { out.prev_lease = 0; }
  }
  return out;
}

json range_request(std::string_view key, std::string_view range_end) {
  json j = {{"key", base64_encode(key)}};
  if (!range_end.empty()) j["range_end"] = base64_encode(range_end);
  return j;
}

json put_request(std::string_view key, std::string_view value, int64_t lease, bool prev_kv) {
  json j = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) j["lease"] = std::to_string(lease);
  if (prev_kv) j["prev_kv"] = true;
  return j;
}

json compare_equal(std::string_view key, const char* target, int64_t value) {
  json j = {{"key", base64_encode(key)}, {"target", target}, {"result", "EQUAL"}};
  j[std::string(target) == "VERSION" ? "version" : "mod_revision"] = std::to_string(value);
  return j;
}

std::optional<GatewayError> parse_error(const json& body) {
  if (!body.is_object()) return std::nullopt;
  auto it = body.find("error");
  if (it == body.end()) return std::nullopt;
  GatewayError e;
  const json& holder = it->is_object() ? *it : body;
  if (auto m = holder.find("message"); m != holder.end() && m->is_string()) {
    e.message = m->get<std::string>();
  } else if (it->is_string()) {
    e.message = it->get<std::string>();
  }
  for (const char* f : {"code", "grpc_code"}) {
    if (auto c = holder.find(f); c != holder.end() && c->is_number_integer())
      e.code = c->get<int>();
  }
  return e;
}

std::string encode_lease_value(const LeaseAttrs& attrs) {
  std::string v11 = encode_lease_attrs(attrs);
  // With IPv6 attrs, core already writes current flannel's form (PublicIPv6 after PublicIP).
  if (attrs.public_ipv6 || !attrs.backend_v6_data.empty()) return v11;
  // encode_lease_attrs starts with {"PublicIP":"A.B.C.D" and PublicIP is always present.
  const std::string head = "{\"PublicIP\":\"" + attrs.public_ip.str() + "\"";
  if (!v11.starts_with(head)) {
    throw std::logic_error("encode_lease_value: unexpected lease JSON " + v11);
  }
  return head + ",\"PublicIPv6\":null" + v11.substr(head.size());
}

}  // namespace flannel::etcd_v3
