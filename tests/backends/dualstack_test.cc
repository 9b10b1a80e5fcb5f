// Dual stack, pure logic of the backends: udp and wireguard refuse EnableIPv6 before touching the
// kernel; the IPv6 VTEP MAC is stable, locally administered and distinct from the IPv4 one.
#include <gtest/gtest.h>

#include <string>

#include "backends/backend.h"
#include "backends/vxlan/vxlan.h"

namespace flannel {
namespace {

Config dual(const std::string& type) {
  Config c;
  c.network = IP4Net::parse("10.5.0.0/16");
  c.subnet_len = 24;
  c.enable_ipv6 = true;
  c.ipv6_network = IP6Net::parse("fc00::/48");
  c.ipv6_subnet_len = 64;
  c.backend_type = type;
  c.backend_json = "{\"Type\":\"" + type + "\"}";
  return c;
}

TEST(DualStackBackends, UdpAndWireguardRefuseIpv6WithAClearError) {
  for (const char* type : {"udp", "wireguard"}) {
    auto b = make_backend(type);
    // Documentation addresses; setup() must throw before using them.
    ExternalInterface ext{"eth0",
                          1,
                          1500,
                          IP4::parse("192.0.2.1"),
                          IP4::parse("192.0.2.1"),
                          IP6::parse("2001:db8::1"),
                          IP6::parse("2001:db8::1")};
    try {
      b->setup(dual(type), ext);
      ADD_FAILURE() << type << " accepted EnableIPv6";
    } catch (const BackendError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("IPv4 only"), std::string::npos) << what;
      EXPECT_NE(what.find("EnableIPv6 to false"), std::string::npos) << what;
      EXPECT_NE(what.find("vxlan or host-gw"), std::string::npos) << what;
    }
  }
}

TEST(DualStackBackends, StableIpv6VtepMac) {
  IP6 a = IP6::parse("fd00:250::1"), b = IP6::parse("fd00:250::2");
  MacAddr m = stable_vtep_mac6(1, a, a);
  EXPECT_EQ(m, stable_vtep_mac6(1, a, a));
  EXPECT_NE(m, stable_vtep_mac6(1, b, b));
  EXPECT_NE(m, stable_vtep_mac6(2, a, a));
  EXPECT_EQ(m.bytes[0] & 0x03, 0x02);  // locally administered, unicast
  EXPECT_NE(m, stable_vtep_mac(1, IP4::parse("10.250.0.1"), IP4::parse("10.250.0.1")));
}

}  // namespace
}  // namespace flannel
