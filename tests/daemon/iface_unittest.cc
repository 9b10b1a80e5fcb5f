// Interface choice (flannel's LookupExtIface) as a pure function of links and addresses.
#include <gtest/gtest.h>
#include <net/if.h>

#include "daemon/agent/iface.h"

namespace flannel {
namespace {

class IfaceSelect : public ::testing::Test {
 protected:
  std::vector<LinkInfo> links{{1, "lo", 65536, IFF_UP | IFF_LOOPBACK, "", {}},
                              {2, "eth0", 1500, IFF_UP, "", {}},
                              {3, "eth1", 9000, IFF_UP, "", {}},
                              {4, "docker0", 1500, IFF_UP, "", {}}};
  std::vector<Addr4Info> addrs{
      {1, IP4::parse("127.0.0.1"), 8},    {2, IP4::parse("169.254.3.3"), 16},
      {2, IP4::parse("10.0.0.5"), 24},    {2, IP4::parse("10.0.0.6"), 24},
      {3, IP4::parse("192.168.7.2"), 24}, {4, IP4::parse("169.254.9.9"), 16}};
  ExternalInterface pick(IfaceRequest req, std::optional<int> def = 2) {
    return select_external_interface(links, addrs, def, req, &notes);
  }
  std::vector<std::string> notes;
};

TEST_F(IfaceSelect, DefaultRouteInterfaceWithFirstGlobalAddress) {
  auto e = pick({});
  EXPECT_EQ(e.name, "eth0");
  EXPECT_EQ(e.index, 2);
  EXPECT_EQ(e.mtu, 1500);
  EXPECT_EQ(e.iface_addr, IP4::parse("10.0.0.5"));  // link-local skipped, first global wins
  EXPECT_EQ(e.ext_addr, e.iface_addr);
}

TEST_F(IfaceSelect, LinkLocalOnlyInterfaceUsesIt) {
  EXPECT_EQ(pick({{"docker0"}, {}, {}}).iface_addr, IP4::parse("169.254.9.9"));
}

TEST_F(IfaceSelect, NoDefaultRouteIsAnErrorNamingTheInterfaces) {
  try {
    pick({}, std::nullopt);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("-iface"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("eth1"), std::string::npos);
  }
}

TEST_F(IfaceSelect, IfaceByNameOrAddressFirstMatchWins) {
  EXPECT_EQ(pick({{"eth1"}, {}, {}}).name, "eth1");
  auto by_addr = pick({{"10.0.0.6"}, {}, {}});
  EXPECT_EQ(by_addr.name, "eth0");
  EXPECT_EQ(by_addr.iface_addr, IP4::parse("10.0.0.6"));  // that exact address, not the first
  auto e = pick({{"wlan0", "10.9.9.9", "eth1", "eth0"}, {}, {}});
  EXPECT_EQ(e.name, "eth1");
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[0].find("no such interface"), std::string::npos);
  EXPECT_NE(notes[1].find("no interface has this address"), std::string::npos);
}

TEST_F(IfaceSelect, RegexMatchesAddressesBeforeNames) {
  EXPECT_EQ(pick({{}, {"^192\\.168\\."}, {}}).name, "eth1");
  EXPECT_EQ(pick({{}, {"eth"}, {}}).name, "eth0");              // unanchored, index order
  EXPECT_EQ(pick({{"nope"}, {"docker"}, {}}).name, "docker0");  // after every -iface
  EXPECT_THROW(pick({{}, {"("}, {}}), std::runtime_error);
}

TEST_F(IfaceSelect, PublicIpOverridesOnlyTheAdvertisedAddress) {
  auto e = pick({{"eth0"}, {}, IP4::parse("203.0.113.7")});
  EXPECT_EQ(e.iface_addr, IP4::parse("10.0.0.5"));
  EXPECT_EQ(e.ext_addr, IP4::parse("203.0.113.7"));
}

TEST_F(IfaceSelect, NothingUsableIsAnError) {
  EXPECT_THROW(pick({{"wlan0"}, {"^zz"}, {}}), std::runtime_error);
  links[1].mtu = 0;
  EXPECT_THROW(pick({{"eth0"}, {}, {}}), std::runtime_error);
}

}  // namespace
}  // namespace flannel
