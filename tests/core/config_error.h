// The error text parse_config gives for `json`, or "" when the config parses: shared by the config
// and dual-stack unit tests, which assert on the exact messages.
#pragma once

#include <string>
#include <string_view>

#include "core/config.h"

namespace flannel {

inline std::string error_of(std::string_view json) {
  try {
    parse_config(json);
    return "";
  } catch (const ConfigError& e) { return e.what(); }
}

}  // namespace flannel
