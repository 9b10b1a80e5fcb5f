// -iface-can-reach in the lab: two hosts joined by a second underlay (Lab::cable: eth1,
// 10.251.0.0/24) beside the lab's eth0 network (10.250.0.0/24, the default route). Host 1 asked
// to reach 10.251.0.2 uses eth1 and 10.251.0.1, in its lease and as its VTEP's source, though
// its default route leaves through eth0; host 2, given -iface=eth0 as well, keeps eth0
// (-iface comes first, facts-2 §4).
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/lab/overlay_lab.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

constexpr const char* kConfig = R"({"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}})";

TEST(IfaceCanReachLab, PicksTheLinkTowardTheAddress) {
  OverlayLab lab("reach", kConfig, 2);
  lab.lab().cable(1, 2);
  lab.customize_start = [](int i, Process::Spec& spec) {
    if (i == 0) {
      std::erase(spec.argv, std::string("-iface=eth0"));
      spec.argv.push_back("-iface-can-reach=10.251.0.2");
    } else {
      spec.argv.push_back("-iface-can-reach=10.251.0.1");  // after -iface=eth0: not used
    }
  };
  lab.start_all();
  const IP4Net lease1 = lab.wait_subnet(0);
  const IP4Net lease2 = lab.wait_subnet(1);

  auto leases = lab.leases();
  EXPECT_EQ(leases.at(lease1.network().str())["PublicIP"], "10.251.0.1") << lab.dump();
  EXPECT_EQ(leases.at(lease2.network().str())["PublicIP"], "10.250.0.2") << lab.dump();
  EXPECT_NE(
      read_file(lab.log_file(0)).find("Using interface with name eth1 and address 10.251.0.1"),
      std::string::npos)
      << lab.dump();
  // The VTEP of host 1 sits on eth1 and sources from its address.
  auto link =
      nlohmann::json::parse(lab.ip(0, {"-j", "-d", "link", "show", "flannel.1"}), nullptr, false);
  ASSERT_TRUE(link.is_array() && !link.empty()) << lab.dump();
  EXPECT_EQ(link[0]["linkinfo"]["info_data"]["local"], "10.251.0.1") << lab.dump();
}

TEST(IfaceCanReachLab, NoRouteToTheAddressIsAnError) {
  OverlayLab lab("noreach", kConfig, 1);
  lab.customize_start = [](int, Process::Spec& spec) {
    std::erase(spec.argv, std::string("-iface=eth0"));
    spec.argv.push_back("-iface-can-reach=10.251.0.2");  // no eth1 here: the default route...
  };
  // ...would reach it through eth0; so that no route exists, remove the default route first.
  ASSERT_EQ(run_command({"ip", "route", "del", "default"}, nullptr, lab.host(0).netns), 0);
  lab.start(0);
  ASSERT_TRUE(wait_until([&] { return !lab.daemon(0)->running(); }, 10s)) << lab.dump();
  EXPECT_EQ(lab.stop(0).value_or(-1), 1);
  const std::string log = read_file(lab.log_file(0));
  EXPECT_NE(log.find("-iface-can-reach=10.251.0.2: netlink route get 10.251.0.2"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("Failed to find any valid interface to use"), std::string::npos) << log;
}

}  // namespace
}  // namespace flannel::testing
