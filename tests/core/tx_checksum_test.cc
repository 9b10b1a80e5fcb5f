// -vxlan-tx-checksum's pure half: the flag's values, uname's release, and the decision.
#include "core/tx_checksum.h"

#include <gtest/gtest.h>

namespace flannel {
namespace {

TEST(TxChecksum, ParsesTheThreeValuesOnly) {
  EXPECT_EQ(parse_tx_checksum("auto"), TxChecksum::kAuto);
  EXPECT_EQ(parse_tx_checksum("on"), TxChecksum::kOn);
  EXPECT_EQ(parse_tx_checksum("off"), TxChecksum::kOff);
  for (const char* bad : {"", "Off", "ON", "true", "false", "0", "1", "off ", " auto", "disable"})
    EXPECT_EQ(parse_tx_checksum(bad), std::nullopt) << bad;
  for (auto m : {TxChecksum::kAuto, TxChecksum::kOn, TxChecksum::kOff})
    EXPECT_EQ(parse_tx_checksum(to_string(m)), m);
}

TEST(TxChecksumKernel, ParsesUnameReleases) {
  auto v = [](std::string_view s) { return parse_kernel_release(s); };
  EXPECT_EQ(v("6.18.44-fc-v1272"), (KernelVersion{6, 18, 44}));
  EXPECT_EQ(v("3.10.0-1160.el7.x86_64"), (KernelVersion{3, 10, 0}));  // the seeds' CentOS 7
  EXPECT_EQ(v("5.6.19"), (KernelVersion{5, 6, 19}));
  EXPECT_EQ(v("5.7"), (KernelVersion{5, 7, 0}));
  EXPECT_EQ(v("5.7-rc1"), (KernelVersion{5, 7, 0}));
  EXPECT_EQ(v("4.19.0+"), (KernelVersion{4, 19, 0}));
  EXPECT_EQ(v("6.1.0-13-amd64"), (KernelVersion{6, 1, 0}));
  EXPECT_EQ(v("5.10.0.x"), (KernelVersion{5, 10, 0}));
  for (const char* bad :
       {"", "linux", "5", "5.", "5.x", ".5.7", "-5.7", "+5.7", "123456.1", "5.-7"})
    EXPECT_EQ(v(bad), std::nullopt) << bad;
  EXPECT_EQ(v("6.18.44").value().str(), "6.18.44");
}

TEST(TxChecksumKernel, VersionsCompareNumerically) {
  EXPECT_LT((KernelVersion{5, 6, 19}), kTxChecksumFixedIn);
  EXPECT_LT((KernelVersion{4, 19, 300}), kTxChecksumFixedIn);
  EXPECT_GE((KernelVersion{5, 7, 0}), kTxChecksumFixedIn);
  EXPECT_GE((KernelVersion{5, 10, 0}), kTxChecksumFixedIn);  // 10 > 7, not "1" < "7"
  EXPECT_GE((KernelVersion{6, 0, 0}), kTxChecksumFixedIn);
}

TEST(TxChecksumSetting, AutoTurnsItOffBefore57AndLeavesItAloneAfter) {
  const KernelVersion centos7{3, 10, 0}, last_bad{5, 6, 19}, first_good{5, 7, 0}, here{6, 18, 44};
  EXPECT_EQ(tx_checksum_setting(TxChecksum::kAuto, centos7), false);
  EXPECT_EQ(tx_checksum_setting(TxChecksum::kAuto, last_bad), false);
  EXPECT_EQ(tx_checksum_setting(TxChecksum::kAuto, first_good), std::nullopt);
  EXPECT_EQ(tx_checksum_setting(TxChecksum::kAuto, here), std::nullopt);
  EXPECT_EQ(tx_checksum_setting(TxChecksum::kAuto, std::nullopt), std::nullopt);
  for (auto k : {std::optional<KernelVersion>(centos7), std::optional<KernelVersion>(here),
                 std::optional<KernelVersion>()}) {
    EXPECT_EQ(tx_checksum_setting(TxChecksum::kOn, k), true);
    EXPECT_EQ(tx_checksum_setting(TxChecksum::kOff, k), false);
  }
}

}  // namespace
}  // namespace flannel
