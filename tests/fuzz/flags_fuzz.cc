// Fuzzes flanneld's flag parser (daemon/common/options.h, core/flags.h): the input is split at NUL
// bytes into argv words, and after a second NUL-NUL into KEY=VALUE environment entries. Every
// input must give Options or a FlagError with a one-line message, never a crash.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/flags.h"
#include "daemon/common/options.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string_view args_part = text, env_part;
  if (auto cut = text.find(std::string_view("\0\0", 2)); cut != std::string_view::npos) {
    args_part = text.substr(0, cut);
    env_part = text.substr(cut + 2);
  }
  auto split = [](std::string_view s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size() && !s.empty()) {
      size_t end = s.find('\0', start);
      if (end == std::string_view::npos) end = s.size();
      out.emplace_back(s.substr(start, end - start));
      start = end + 1;
    }
    return out;
  };
  std::vector<std::string> words = split(args_part);
  std::vector<const char*> argv{"flanneld"};
  for (const auto& w : words) argv.push_back(w.c_str());
  argv.push_back(nullptr);
  std::map<std::string, std::string> env;
  for (const auto& e : split(env_part)) {
    auto eq = e.find('=');
    if (eq != std::string::npos) env[e.substr(0, eq)] = e.substr(eq + 1);
  }
  try {
    (void)flannel::parse_flanneld_options(static_cast<int>(argv.size() - 1), argv.data(), env);
  } catch (const flannel::FlagError& e) {
    FUZZ_CHECK(std::string_view(e.what()).find('\n') == std::string_view::npos);
  }
  return 0;
}
