// Fuzzes the network config parser (core/config.h) with arbitrary JSON text: it must either
// return a Config that satisfies its own invariants or throw ConfigError, never crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/config.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  flannel::Config c;
  try {
    c = flannel::parse_config(text);
  } catch (const flannel::ConfigError&) { return 0; }
  FUZZ_CHECK(c.subnet_len >= c.network.prefix && c.subnet_len <= 32);
  FUZZ_CHECK(!c.backend_type.empty());
  FUZZ_CHECK(c.subnet_min.value <= c.subnet_max.value);
  (void)flannel::subnet_count(c);
  (void)c.str();
  return 0;
}
