// `ethtool -k` / `ethtool -K` for one feature of one link, through the kernel's ethtool generic
// netlink family (ETHTOOL_MSG_FEATURES_GET / _SET, kernel >= 5.6, libnl-genl-3), and the one
// legacy ioctl older kernels need (SIOCETHTOOL ETHTOOL_STXCSUM, `ethtool -K DEV tx off`).
//
// Each call opens its own socket in the calling thread's network namespace and closes it before
// returning; safe from any thread. Failures throw NetlinkError "netlink ethtool <op> dev N: why";
// code() is NLE_OPNOTSUPP when the kernel has no ethtool netlink family (then only the ioctl is
// left), else libnl's error number (NLE_NODEV: no such link).
#pragma once

#include <string>

namespace flannel {

// `ethtool -k DEV | grep FEATURE`: whether `feature` (a name from the kernel's feature strings,
// e.g. "tx-checksum-ip-generic") is active on link `index`. A name the kernel does not know
// reads as inactive.
bool ethtool_feature(int index, const std::string& feature);

// `ethtool -K DEV FEATURE on|off`, then read back: throws NetlinkError (code 0) naming the
// feature when the kernel kept the other value (a fixed or unknown feature).
void ethtool_feature_set(int index, const std::string& feature, bool on);

// `ethtool -K NAME tx on|off` through the legacy ioctl, for kernels without ethtool netlink:
// every TX checksum feature of link `name` at once (for a vxlan device that is only
// tx-checksum-ip-generic). Throws NetlinkError (code 0) naming errno when the kernel refuses.
void ethtool_tx_checksum_set_legacy(const std::string& name, bool on);

}  // namespace flannel
