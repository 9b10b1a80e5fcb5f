#include "stores/key_prefix.h"

#include <vector>

namespace flannel {

std::string normalize_key_prefix(std::string_view prefix) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= prefix.size()) {
    size_t slash = prefix.find('/', start);
    if (slash == std::string_view::npos) slash = prefix.size();
    std::string_view seg = prefix.substr(start, slash - start);
    if (seg == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!seg.empty() && seg != ".") {
      parts.push_back(seg);
    }
    start = slash + 1;
  }
  std::string out;
  for (auto seg : parts) {
    out += '/';
    out += seg;
  }
  return out;
}

}  // namespace flannel
