#include "backends/alloc/alloc.h"

namespace flannel {

BackendSetup AllocBackend::setup(const Config& /*config*/, const ExternalInterface& iface) {
  BackendSetup out;
  out.attrs.public_ip = iface.ext_addr;  // alloc writes PublicIP only: {"PublicIP":"..."}
  out.mtu = iface.mtu;
  return out;
}

}  // namespace flannel
