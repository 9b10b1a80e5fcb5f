// Fuzzes the lease JSON codec and the subnet key parser (core/lease.h). Whatever decodes must
// re-encode to a value that decodes to the same attrs, and encoding that gives the same bytes
// (the codec is stable on its own output); a parsed key must print back to a key that parses to
// the same subnet.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/lease.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    flannel::LeaseAttrs a = flannel::decode_lease_attrs(text);
    std::string encoded = flannel::encode_lease_attrs(a);
    flannel::LeaseAttrs b = flannel::decode_lease_attrs(encoded);
    FUZZ_CHECK(a.public_ip == b.public_ip && a.backend_type == b.backend_type);
    // BackendData is kept as received and HTML-escaped on encode (<, >, & as \u003c...), as Go's
    // json.RawMessage is, so after one round trip only its meaning is the same, not its bytes.
    FUZZ_CHECK(a.backend_data.empty() == b.backend_data.empty());
    if (!a.backend_data.empty()) {
      FUZZ_CHECK(nlohmann::json::parse(a.backend_data) == nlohmann::json::parse(b.backend_data));
    }
    FUZZ_CHECK(flannel::encode_lease_attrs(b) == encoded);
  } catch (const flannel::ParseError&) {}
  if (auto subnet = flannel::parse_subnet_key(text)) {
    FUZZ_CHECK(subnet->subnet.prefix <= 32);
    auto again = flannel::parse_subnet_key(flannel::subnet_key(*subnet));
    FUZZ_CHECK(again && *again == *subnet);
  }
  return 0;
}
