// -vxlan-tx-checksum on the vxlan devices (core/tx_checksum.h): decided once per backend from the
// flag and the running kernel, applied to every device ensure_device()/ensure_device6() create or
// reuse, so a re-created device gets it again.
#include <netlink/errno.h>
#include <sys/utsname.h>

#include "backends/netlink/ethtool.h"
#include "backends/vxlan/vxlan.h"

namespace flannel {
namespace {

// Sets tx-checksum-ip-generic of link `index` (named `name`) unless it already has that value;
// returns how: ethtool netlink, or the legacy ioctl on kernels without it. Throws NetlinkError.
const char* set_tx_checksum(int index, const std::string& name, bool on) {
  const std::string feature(kTxChecksumFeature);
  try {
    if (ethtool_feature(index, feature) != on) ethtool_feature_set(index, feature, on);
    return "ethtool netlink";
  } catch (const NetlinkError& e) {
    if (e.code() != NLE_OPNOTSUPP) throw;
  }
  ethtool_tx_checksum_set_legacy(name, on);  // kernels before 5.6
  return "ethtool ioctl";
}

}  // namespace

void VxlanBackend::decide_tx_checksum() {
  utsname u{};
  const std::string release = ::uname(&u) == 0 ? u.release : "";
  const auto kernel = parse_kernel_release(release);
  tx_checksum_on_ = tx_checksum_setting(tx_checksum_, kernel);
  if (tx_checksum_ != TxChecksum::kAuto) {
    tx_checksum_why_ = "-vxlan-tx-checksum=" + std::string(to_string(tx_checksum_));
  } else if (tx_checksum_on_) {  // auto turns it off only
    tx_checksum_why_ = "kernel " + release + " is older than " + kTxChecksumFixedIn.str() +
                       " (VXLAN checksums behind NAT); -vxlan-tx-checksum=on keeps it on";
  } else if (!kernel) {
    note("vxlan: kernel release \"" + release +
         "\" not understood; TX checksum offload left as the kernel sets it "
         "(-vxlan-tx-checksum=off turns it off)");
  }
}

void VxlanBackend::apply_tx_checksum(int index, const std::string& name) {
  if (!tx_checksum_on_) return;  // leave the kernel's default
  const bool on = *tx_checksum_on_;
  const std::string feature(kTxChecksumFeature);
  const char* how = nullptr;
  try {
    how = set_tx_checksum(index, name, on);
  } catch (const NetlinkError& e) {
    const std::string why =
        "vxlan: cannot turn " + feature + (on ? " on" : " off") + " on " + name + ": " + e.what();
    if (tx_checksum_ != TxChecksum::kAuto) throw BackendError(why);
    note(why + "; left as the kernel sets it");
    return;
  }
  if (tx_checksum_logged_) return;
  tx_checksum_logged_ = true;
  note("vxlan: TX checksum offload (" + feature + ") " + (on ? "on" : "off") + " on " + name +
       " (" + how + "): " + tx_checksum_why_);
}

}  // namespace flannel
