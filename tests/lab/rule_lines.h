// iptables rules as `iptables-save` / `iptables -S` lines, for the lab tests that compare them.
#pragma once

#include <string>
#include <vector>

#include "backends/rules/iptables.h"

namespace flannel {

// "-A POSTROUTING -s 10.5.0.0/16 -d 10.5.0.0/16 -j RETURN"
inline std::string line_of(const IptablesRule& r) {
  std::string s = "-A " + r.chain;
  for (const auto& w : r.spec) s += " " + w;
  return s;
}

inline std::vector<std::string> lines_of(const std::vector<IptablesRule>& rules) {
  std::vector<std::string> out;
  for (const auto& r : rules) out.push_back(line_of(r));
  return out;
}

}  // namespace flannel
