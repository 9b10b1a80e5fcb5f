// Fuzzes the lease JSON codec and the subnet key parser (core/lease.h). Whatever decodes must
// re-encode to a value that decodes to the same attrs (the codec is its own inverse on its
// output), and a parsed key must print back to a key that parses to the same subnet.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/lease.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    flannel::LeaseAttrs a = flannel::decode_lease_attrs(text);
    std::string encoded = flannel::encode_lease_attrs(a);
    flannel::LeaseAttrs b = flannel::decode_lease_attrs(encoded);
    FUZZ_CHECK(a == b);
    FUZZ_CHECK(flannel::encode_lease_attrs(b) == encoded);
  } catch (const flannel::ParseError&) {
  }
  if (auto subnet = flannel::parse_subnet_key(text)) {
    FUZZ_CHECK(subnet->prefix <= 32);
    auto again = flannel::parse_subnet_key(flannel::subnet_key(*subnet));
    FUZZ_CHECK(again && *again == *subnet);
  }
  return 0;
}
