// vxlan's admission of a peer's BackendData (Backend::refuse_peer_data): a peer it cannot program
// is refused by name before it reaches sync/apply, instead of failing every resync.
#include <gtest/gtest.h>

#include "backends/vxlan/vxlan.h"

namespace flannel {
namespace {

Lease vxlan_peer(const std::string& backend_data) {
  Lease l;
  l.subnet = IP4Net::parse("10.5.2.0/24");
  l.attrs.public_ip = IP4::parse("192.168.0.2");
  l.attrs.backend_type = "vxlan";
  l.attrs.backend_data = backend_data;
  return l;
}

TEST(VxlanPeerData, AUnicastVtepMACIsAccepted) {
  VxlanBackend b;
  EXPECT_FALSE(b.refuse_peer_data(vxlan_peer(R"({"VtepMAC":"82:4b:b6:2f:54:4e"})")));
  EXPECT_FALSE(b.refuse_peer_data(vxlan_peer(R"({"vtepmac":"82-4B-B6-2F-54-4E","VNI":1})")));
}

TEST(VxlanPeerData, MissingOrUnusableVtepMACsAreRefusedByName) {
  VxlanBackend b;
  for (const char* data :
       {"", "[]", R"({"VNI":1})", R"({"VtepMAC":7})", R"({"VtepMAC":"zz"})",
        R"({"VtepMAC":"00:00:00:00:00:00"})", R"({"VtepMAC":"ff:ff:ff:ff:ff:ff"})",
        R"({"VtepMAC":"01:00:5e:00:00:01"})"}) {
    auto why = b.refuse_peer_data(vxlan_peer(data));
    ASSERT_TRUE(why) << data;
    EXPECT_NE(why->find("BackendData"), std::string::npos) << *why;
  }
  auto why = b.refuse_peer_data(vxlan_peer(R"({"VtepMAC":"ff:ff:ff:ff:ff:ff"})"));
  EXPECT_NE(why->find("ff:ff:ff:ff:ff:ff is not a unicast MAC address"), std::string::npos) << *why;
}

TEST(VxlanPeerData, PeersOfAnotherBackendAreLeftToTheirNote) {
  VxlanBackend b;
  Lease l = vxlan_peer("");
  l.attrs.backend_type = "host-gw";
  EXPECT_FALSE(b.refuse_peer_data(l));
}

}  // namespace
}  // namespace flannel
