// The one spelling of a store key prefix, shared by every Store implementation (etcd v2, SQLite,
// etcd v3), so that `coreos.com/network`, `/coreos.com/network/` and `/coreos.com//network` name
// the same network everywhere, as they do as etcd keys.
#pragma once

#include <string>
#include <string_view>

namespace flannel {

// path.Join-like cleaning: a leading '/', no trailing '/', empty and "." segments dropped, ".."
// removing the segment before it. "coreos.com//network/" -> "/coreos.com/network"; the root
// ("", "/", "//") -> "".
std::string normalize_key_prefix(std::string_view prefix);

}  // namespace flannel
