#include "core/environment.h"

#include <string_view>

namespace flannel {

std::map<std::string, std::string> environment_map(const char* const* envp) {
  std::map<std::string, std::string> env;
  for (; envp != nullptr && *envp != nullptr; ++envp) {
    std::string_view entry(*envp);
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    // First definition wins, as getenv() does.
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

}  // namespace flannel
