// Fuzzes the subnet.env (dotenv) parser and the reading of FLANNEL_SUBNET back from it
// (core/subnet_env.h): ParseError or a map, never a crash; a subnet read back is normalised.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "core/subnet_env.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> env;
  try {
    env = flannel::parse_env_file(text);
  } catch (const flannel::ParseError&) { return 0; }
  for (const auto& [key, value] : env) FUZZ_CHECK(!key.empty());
  std::string warning;
  if (auto subnet = flannel::previous_subnet_from_env(env, &warning)) {
    FUZZ_CHECK(subnet->prefix <= 32);
  }
  (void)flannel::cidr_from_env(env, "FLANNEL_NETWORK", &warning);
  return 0;
}
