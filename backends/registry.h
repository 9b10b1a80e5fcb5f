// Backend options that come from flanneld's flags rather than the network config, and the
// registry entry point that passes them on. make_backend(type) (backend.h) is
// create_backend(type, BackendOptions{}).
#pragma once

#include <memory>
#include <string>

#include "backends/backend.h"
#include "core/tx_checksum.h"

namespace flannel {

struct BackendOptions {
  TxChecksum vxlan_tx_checksum = TxChecksum::kAuto;  // -vxlan-tx-checksum (vxlan only)
};

// As make_backend(type), with `options` given to the backends they concern. Throws BackendError
// for an unknown type, as make_backend.
std::unique_ptr<Backend> create_backend(const std::string& type, const BackendOptions& options);

}  // namespace flannel
