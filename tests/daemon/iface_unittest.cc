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
  ExternalInterface pick(IfaceRequest req, std::optional<int> def = 2,
                         std::optional<RouteSource> reach = std::nullopt) {
    return select_external_interface(links, addrs, def, req, &notes, reach);
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
  EXPECT_EQ(pick({{"docker0"}, {}, {}, {}}).iface_addr, IP4::parse("169.254.9.9"));
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
  EXPECT_EQ(pick({{"eth1"}, {}, {}, {}}).name, "eth1");
  auto by_addr = pick({{"10.0.0.6"}, {}, {}, {}});
  EXPECT_EQ(by_addr.name, "eth0");
  EXPECT_EQ(by_addr.iface_addr, IP4::parse("10.0.0.6"));  // that exact address, not the first
  auto e = pick({{"wlan0", "10.9.9.9", "eth1", "eth0"}, {}, {}, {}});
  EXPECT_EQ(e.name, "eth1");
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[0].find("no such interface"), std::string::npos);
  EXPECT_NE(notes[1].find("no interface has this address"), std::string::npos);
}

TEST_F(IfaceSelect, RegexMatchesAddressesBeforeNames) {
  EXPECT_EQ(pick({{}, {"^192\\.168\\."}, {}, {}}).name, "eth1");
  EXPECT_EQ(pick({{}, {"eth"}, {}, {}}).name, "eth0");              // unanchored, index order
  EXPECT_EQ(pick({{"nope"}, {"docker"}, {}, {}}).name, "docker0");  // after every -iface
  EXPECT_THROW(pick({{}, {"("}, {}, {}}), std::runtime_error);
}

TEST_F(IfaceSelect, PublicIpOverridesOnlyTheAdvertisedAddress) {
  auto e = pick({{"eth0"}, {}, IP4::parse("203.0.113.7"), {}});
  EXPECT_EQ(e.iface_addr, IP4::parse("10.0.0.5"));
  EXPECT_EQ(e.ext_addr, IP4::parse("203.0.113.7"));
}

TEST_F(IfaceSelect, NothingUsableIsAnError) {
  EXPECT_THROW(pick({{"wlan0"}, {"^zz"}, {}, {}}), std::runtime_error);
  links[1].mtu = 0;
  EXPECT_THROW(pick({{"eth0"}, {}, {}, {}}), std::runtime_error);
}

// -iface-can-reach: the route's link and source address, after every -iface and -iface-regex
// (current flannel's order, facts-2 §4); never the default route once any of the three is given.
TEST_F(IfaceSelect, CanReachUsesTheRoutesLinkAndSourceAddress) {
  IfaceRequest req;
  req.can_reach = IP4::parse("192.168.7.99");
  auto e = pick(req, 2, RouteSource{3, IP4::parse("192.168.7.2")});
  EXPECT_EQ(e.name, "eth1");
  EXPECT_EQ(e.iface_addr, IP4::parse("192.168.7.2"));
  EXPECT_EQ(e.ext_addr, e.iface_addr);
  // The source, not the link's first address: a route may prefer its second one.
  EXPECT_EQ(pick(req, 2, RouteSource{2, IP4::parse("10.0.0.6")}).iface_addr,
            IP4::parse("10.0.0.6"));
  // A route that names no source: the link's preferred address.
  EXPECT_EQ(pick(req, 2, RouteSource{2, IP4{}}).iface_addr, IP4::parse("10.0.0.5"));
  req.public_ip = IP4::parse("203.0.113.7");
  EXPECT_EQ(pick(req, 2, RouteSource{3, IP4::parse("192.168.7.2")}).ext_addr,
            IP4::parse("203.0.113.7"));
}

TEST_F(IfaceSelect, CanReachComesAfterIfaceAndRegex) {
  const RouteSource via_eth1{3, IP4::parse("192.168.7.2")};
  IfaceRequest req;
  req.can_reach = IP4::parse("192.168.7.99");
  req.ifaces = {"eth0"};
  EXPECT_EQ(pick(req, 2, via_eth1).name, "eth0");  // -iface wins
  req.ifaces = {"wlan0"};
  req.regexes = {"^docker"};
  EXPECT_EQ(pick(req, 2, via_eth1).name, "docker0");  // then -iface-regex
  req.regexes = {"^zz"};
  notes.clear();
  EXPECT_EQ(pick(req, 2, via_eth1).name, "eth1");  // then -iface-can-reach
  EXPECT_EQ(notes.size(), 2u);                     // wlan0, ^zz
}

TEST_F(IfaceSelect, CanReachWithoutARouteIsAnErrorNotTheDefaultRoute) {
  IfaceRequest req;
  req.can_reach = IP4::parse("198.51.100.1");
  EXPECT_THROW(pick(req, 2, std::nullopt), std::runtime_error);  // eth0 has the default route
  EXPECT_THROW(pick(req, 2, RouteSource{9, IP4::parse("10.9.9.9")}), std::runtime_error);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("unknown interface index 9"), std::string::npos) << notes[0];
  notes.clear();
  addrs.erase(addrs.begin() + 5);  // docker0's only address
  EXPECT_THROW(pick(req, 2, RouteSource{4, IP4{}}), std::runtime_error);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("docker0, which has no IPv4 address"), std::string::npos) << notes[0];
}

}  // namespace
}  // namespace flannel
