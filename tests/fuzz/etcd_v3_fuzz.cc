// Fuzzes the decoding of etcd v3 gateway answers (stores/etcd/v3_codec.h) as EtcdV3Store does it:
// the input is one answer body (a range with kvs, a txn with responses, a lease grant or
// timetolive, a deleterange, an error) and also, line by line, a watch stream
// ({"result": {...events...}} or {"error": {...}} per line). Arbitrary bytes must give values,
// skipped entries or std::invalid_argument (the only exception the codec documents), never a
// crash, another exception or a sanitizer report. What decodes must also survive a round trip:
// base64 keys and values, subnet keys, lease values in current flannel's form.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/lease.h"
#include "stores/etcd/v3_codec.h"
#include "tests/fuzz/fuzz_check.h"

namespace etcd_v3 = flannel::etcd_v3;
using nlohmann::json;

namespace {

const std::string kDir = "/coreos.com/network/subnets/";

// A decoded key-value as the store turns it into a lease: key under the subnets dir naming a
// canonical subnet, value in lease JSON.
void decode_lease_kv(const etcd_v3::KeyValue& kv) {
  auto again = etcd_v3::base64_decode(etcd_v3::base64_encode(kv.key));
  FUZZ_CHECK(again && *again == kv.key);
  again = etcd_v3::base64_decode(etcd_v3::base64_encode(kv.value));
  FUZZ_CHECK(again && *again == kv.value);
  std::string_view name(kv.key);
  if (!name.starts_with(kDir)) return;
  name.remove_prefix(kDir.size());
  auto subnet = flannel::parse_subnet_key(name);
  if (!subnet || flannel::subnet_key(*subnet) != name) return;
  flannel::LeaseAttrs attrs;
  try {
    attrs = flannel::decode_lease_attrs(kv.value);
  } catch (const flannel::ParseError&) { return; }
  // What we would write back for it (a renewal) reads back as the same lease.
  const std::string written = etcd_v3::encode_lease_value(attrs);
  flannel::LeaseAttrs read = flannel::decode_lease_attrs(written);
  FUZZ_CHECK(read.public_ip == attrs.public_ip && read.backend_type == attrs.backend_type);
  FUZZ_CHECK(etcd_v3::encode_lease_value(read) == written);
}

void decode_kvs(const json& holder) {
  if (!holder.is_object()) return;
  auto kvs = holder.find("kvs");
  if (kvs == holder.end() || !kvs->is_array()) return;
  for (const json& item : *kvs) {
    try {
      decode_lease_kv(etcd_v3::parse_kv(item));
    } catch (const std::invalid_argument&) {}
  }
}

template <typename F>
void tolerate_invalid(F f) {
  try {
    f();
  } catch (const std::invalid_argument&) {}
}

// A unary answer (range, txn, grant, timetolive, deleterange, authenticate, or an error).
void decode_answer(const json& body) {
  if (auto err = etcd_v3::parse_error(body)) {
    (void)err->code;
    return;
  }
  if (!body.is_object()) return;
  tolerate_invalid([&] { (void)etcd_v3::parse_header(body); });
  decode_kvs(body);                                                    // range
  tolerate_invalid([&] { (void)etcd_v3::get_int(body, "ID"); });       // grant, timetolive
  tolerate_invalid([&] { (void)etcd_v3::get_int(body, "TTL"); });      // grant, timetolive
  tolerate_invalid([&] { (void)etcd_v3::get_int(body, "deleted"); });  // deleterange
  tolerate_invalid([&] { (void)etcd_v3::get_uint(body, "count"); });   // count_only range
  (void)etcd_v3::get_true(body, "succeeded");                          // txn
  (void)etcd_v3::get_string(body, "token");                            // authenticate
  if (auto rs = body.find("responses"); rs != body.end() && rs->is_array()) {
    for (const json& r : *rs) {
      if (!r.is_object()) continue;
      if (auto range = r.find("response_range"); range != r.end()) decode_kvs(*range);
      if (auto put = r.find("response_put"); put != r.end() && put->is_object()) {
        if (auto prev = put->find("prev_kv"); prev != put->end()) {
          tolerate_invalid([&] { (void)etcd_v3::get_int(*prev, "lease"); });
        }
      }
    }
  }
}

// One line of a watch stream.
void decode_watch_message(const json& msg) {
  if (!msg.is_object()) return;
  if (etcd_v3::parse_error(msg)) return;
  auto res = msg.find("result");
  if (res == msg.end() || !res->is_object()) return;
  if (etcd_v3::get_true(*res, "canceled")) {
    (void)etcd_v3::get_string(*res, "cancel_reason");
    return;
  }
  tolerate_invalid([&] { (void)etcd_v3::parse_header(*res); });
  tolerate_invalid([&] { (void)etcd_v3::get_uint(*res, "compact_revision"); });
  auto events = res->find("events");
  if (events == res->end() || !events->is_array()) return;
  for (const json& ev : *events) {
    try {
      etcd_v3::WatchEvent e = etcd_v3::parse_watch_event(ev);
      if (e.is_delete) { FUZZ_CHECK(ev.contains("type")); }
      decode_lease_kv(e.kv);
    } catch (const std::invalid_argument&) {}
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto bytes = etcd_v3::base64_decode(text)) {
    auto again = etcd_v3::base64_decode(etcd_v3::base64_encode(*bytes));
    FUZZ_CHECK(again && *again == *bytes);
  }
  (void)etcd_v3::prefix_range_end(text);
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_discarded()) {
    decode_answer(body);
    decode_watch_message(body);
  }
  // The watch stream: one JSON message per line, as EtcdV3Store splits it.
  size_t at = 0;
  for (size_t nl; (nl = text.find('\n', at)) != std::string_view::npos; at = nl + 1) {
    json msg = json::parse(text.substr(at, nl - at), nullptr, /*allow_exceptions=*/false);
    if (!msg.is_discarded()) decode_watch_message(msg);
  }
  return 0;
}
