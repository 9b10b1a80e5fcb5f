// The backend registry: maps a config's Backend.Type to an implementation.
#include <algorithm>
#include <cctype>

#include "backends/alloc/alloc.h"
#include "backends/backend.h"
#include "backends/extension/extension.h"
#include "backends/hostgw/hostgw.h"
#include "backends/registry.h"
#include "backends/udp/udp.h"
#include "backends/vxlan/vxlan.h"
#include "backends/wireguard/wireguard.h"

namespace flannel {

std::unique_ptr<Backend> make_backend(const std::string& type) {
  return create_backend(type, BackendOptions{});
}

std::unique_ptr<Backend> create_backend(const std::string& type, const BackendOptions& options) {
  std::string lower = type;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "alloc") return std::make_unique<AllocBackend>();
  if (lower == "udp") return std::make_unique<UdpBackend>();
  if (lower == "host-gw") return std::make_unique<HostGwBackend>();
  if (lower == "vxlan") return std::make_unique<VxlanBackend>(options.vxlan_tx_checksum);
  if (lower == "wireguard") return std::make_unique<WireguardBackend>();
  if (lower == "extension") return std::make_unique<ExtensionBackend>();
  if (lower == "ipip") {
    throw BackendError("backend type \"" + type +
                       "\" is not implemented yet (implemented: alloc, udp, vxlan, host-gw, "
                       "wireguard, extension)");
  }
  throw BackendError("unknown backend type: " + type +
                     " (valid: alloc, udp, vxlan, host-gw, wireguard, extension)");
}

}  // namespace flannel
