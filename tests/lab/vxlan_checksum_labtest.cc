// -vxlan-tx-checksum in the lab: forced off, flannel.1 reads back tx-checksum-ip-generic off
// through the kernel's ethtool netlink interface, and again after the device was deleted and the
// live agent created it anew; auto on this kernel (>= 5.7) leaves the kernel's "on"; forced on
// turns a reused device's offload back on.
#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <algorithm>

#include "backends/netlink/ethtool.h"
#include "backends/netlink/netlink.h"
#include "core/tx_checksum.h"
#include "tests/lab/overlay_lab.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

constexpr const char* kConfig = R"({"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}})";
const std::string kFeature(kTxChecksumFeature);

// flannel.1 of host i: its index and tx-checksum-ip-generic (ETHTOOL_MSG_FEATURES_GET); nullopt
// while there is no flannel.1.
struct Device {
  int index = 0;
  bool tx_checksum = false;
};
std::optional<Device> flannel_1(const OverlayLab& lab, int i) {
  EnterNetns in(lab.host(i).netns);
  NetlinkSession nl;
  auto link = nl.link_by_name("flannel.1");
  if (!link) return std::nullopt;
  try {
    return Device{link->index, ethtool_feature(link->index, kFeature)};
  } catch (const NetlinkError& e) {
    if (is_not_found(e)) return std::nullopt;  // deleted between the two questions
    throw;
  }
}

int count_in_log(const OverlayLab& lab, int i, const std::string& what) {
  std::string log = read_file(lab.log_file(i));
  int n = 0;
  for (size_t p = log.find(what); p != std::string::npos; p = log.find(what, p + 1)) ++n;
  return n;
}

void add_flags(OverlayLab& lab, std::vector<std::string> flags) {
  lab.customize_start = [flags](int, Process::Spec& spec) {
    spec.argv.insert(spec.argv.end(), flags.begin(), flags.end());
  };
}

TEST(VxlanChecksumLab, ForcedOffIsKeptWhenTheDeviceIsRecreated) {
  OverlayLab lab("csum", kConfig, 1);
  add_flags(lab, {"-vxlan-tx-checksum=off"});
  lab.start(0);
  const IP4Net lease = lab.wait_subnet(0);
  auto dev = flannel_1(lab, 0);
  ASSERT_TRUE(dev.has_value()) << lab.dump();
  EXPECT_FALSE(dev->tx_checksum) << lab.dump();
  EXPECT_EQ(count_in_log(lab, 0, "TX checksum offload (tx-checksum-ip-generic) off on flannel.1"),
            1)
      << lab.dump();

  // The device goes (deleted by hand, as the kernel deletes it with its lower link): the agent
  // notices the deletion and sets the backend up again (Backend::device_gone()).
  ASSERT_EQ(run_command({"ip", "link", "del", "flannel.1"}, nullptr, lab.host(0).netns), 0);
  std::optional<Device> again;
  ASSERT_TRUE(wait_until(
      [&] {
        again = flannel_1(lab, 0);
        return again && again->index != dev->index;  // a new device, not the old one
      },
      10s))
      << lab.dump();
  // Its offload is off again (a new vxlan device starts with it on: AutoLeavesItOn...).
  EXPECT_TRUE(wait_until([&] { return flannel_1(lab, 0) && !flannel_1(lab, 0)->tx_checksum; }, 2s))
      << lab.dump();
  EXPECT_EQ(count_in_log(lab, 0, "TX checksum offload"), 2) << "once per set-up of the backend";
  EXPECT_EQ(lab.wait_subnet(0), lease);  // the same lease throughout
}

TEST(VxlanChecksumLab, AutoLeavesItOnOnThisKernelAndOnTurnsItBackOn) {
  utsname u{};
  ASSERT_EQ(uname(&u), 0);
  auto kernel = parse_kernel_release(u.release);
  if (!kernel || *kernel < kTxChecksumFixedIn)
    GTEST_SKIP() << "kernel " << u.release << ": auto turns the offload off here";
  OverlayLab lab("csauto", kConfig, 1);
  lab.start(0);
  lab.wait_subnet(0);
  auto dev = flannel_1(lab, 0);
  ASSERT_TRUE(dev.has_value()) << lab.dump();
  EXPECT_TRUE(dev->tx_checksum) << lab.dump();
  EXPECT_EQ(count_in_log(lab, 0, "TX checksum offload"), 0) << lab.dump();

  // Someone turned it off; a restart with -vxlan-tx-checksum=on reuses the device and turns it on.
  ASSERT_EQ(lab.stop(0).value_or(-1), 0);
  {
    EnterNetns in(lab.host(0).netns);
    ethtool_feature_set(dev->index, kFeature, false);
  }
  ASSERT_FALSE(flannel_1(lab, 0).value_or(Device{0, true}).tx_checksum);
  add_flags(lab, {"-vxlan-tx-checksum=on"});
  lab.start(0);
  EXPECT_TRUE(wait_until([&] { return count_in_log(lab, 0, "Lease acquired") >= 2; }, 10s))
      << lab.dump();
  auto after = flannel_1(lab, 0);
  ASSERT_TRUE(after.has_value()) << lab.dump();
  EXPECT_EQ(after->index, dev->index);  // reused
  EXPECT_TRUE(after->tx_checksum) << lab.dump();
  EXPECT_EQ(count_in_log(lab, 0, "TX checksum offload (tx-checksum-ip-generic) on on flannel.1"), 1)
      << lab.dump();
}

}  // namespace
}  // namespace flannel::testing
