// etcd::decode_lease_list (a listing decoded child by child, SAX) against the tree it replaces:
// the same leases, the same warnings and the same verdicts for good, bad and odd answers.
#include <gtest/gtest.h>

#include <string>

#include "stores/etcd/v2_decode.h"
#include "tests/stores/etcd/v2_list_reference.h"

namespace flannel::etcd {
namespace {

const std::string kDir = "/coreos.com/network/subnets";

std::string node(const std::string& key, const std::string& value, const std::string& extra = "") {
  return R"({"key":")" + key + R"(","value":)" + nlohmann::json(value).dump() + extra + "}";
}

void expect_same(const std::string& body) {
  LeaseListBody sax = decode_lease_list(body, kDir);
  LeaseListBody tree = testing::decode_lease_list_with_a_tree(body, kDir);
  EXPECT_EQ(sax.json_object, tree.json_object) << body;
  EXPECT_EQ(sax.node_is_dir, tree.node_is_dir) << body;
  EXPECT_EQ(sax.leases, tree.leases) << body;
  EXPECT_EQ(sax.warnings, tree.warnings) << body;
}

TEST(EtcdListDecode, AListingOfGoodAndBadNodes) {
  const std::string good =
      R"({"PublicIP":"10.250.0.7","BackendType":"vxlan","BackendData":{"VtepMAC":"82:4b:b6:2f:54:4e"}})";
  std::string body =
      R"({"action":"get","node":{"key":")" + kDir + R"(","dir":true,"nodes":[)" +
      node(
          kDir + "/10.5.7.0-24", good,
          R"(,"expiration":"2026-12-04T10:00:00.5Z","ttl":86400,"modifiedIndex":12,"createdIndex":9)") +
      "," +
      node(kDir + "/10.5.8.0-24&fd00:5:0:8::-64",
           R"({"PublicIP":"10.250.0.8","PublicIPv6":"fd00:250::8"})", R"(,"modifiedIndex":13)") +
      "," + node(kDir + "/10.5.9.0-24", "not json") + "," + node(kDir + "/x10.5.9.0-24", good) +
      "," + R"({"key":")" + kDir + R"(/10.5.10.0-24","dir":true,"nodes":[{"key":"deeper"}]})" +
      R"(,42,null,[1,2],{"value":3})" + "," +
      node(kDir + "/10.5.11.0-24", good, R"(,"expiration":"yesterday")") +
      R"(],"modifiedIndex":3}})";
  LeaseListBody out = decode_lease_list(body, kDir);
  ASSERT_TRUE(out.json_object);
  EXPECT_TRUE(out.node_is_dir);
  ASSERT_EQ(out.leases.size(), 2u);
  EXPECT_EQ(out.leases[0].subnet, IP4Net::parse("10.5.7.0/24"));
  EXPECT_EQ(out.leases[0].revision, 12u);
  EXPECT_TRUE(out.leases[0].expiration);
  EXPECT_EQ(out.leases[0].attrs.backend_data, R"({"VtepMAC":"82:4b:b6:2f:54:4e"})");
  EXPECT_EQ(out.leases[1].ipv6_subnet, IP6Net::parse("fd00:5:0:8::/64"));
  EXPECT_EQ(out.warnings.size(), 8u);
  expect_same(body);
}

TEST(EtcdListDecode, OddShapesGiveWhatTheTreeGives) {
  for (
      const std::string& body : {
          std::string(""),
          std::string("nope"),
          std::string("[]"),
          std::string("7"),
          std::string("{}"),
          std::string(R"({"node":7})"),
          std::string(R"({"node":[]})"),
          std::string(R"({"node":{}})"),
          std::string(R"({"node":{"dir":true}})"),
          std::string(R"({"node":{"dir":"true","nodes":[]}})"),
          std::string(R"({"node":{"dir":true,"nodes":{}}})"),
          std::string(R"({"node":{"dir":true,"nodes":[]}} trailing)"),
          std::string(R"({"node":{"dir":true,"nodes":[{"key":")" + kDir +
                      R"(/10.5.1.0-24","value":"{}"}]},"node":{"dir":true}})"),
          std::string(R"({"node":{"dir":true,"nodes":[{"key":")" + kDir +
                      R"(/10.5.1.0-24","value":"{}"}],"nodes":7}})"),
          std::string(R"({"node":{"dir":true,"dir":{"a":1},"nodes":[]}})"),
          std::string(R"({"node":{"nodes":[{"key":")" + kDir + R"(/10.5.1.0-24","key":")" + kDir +
                      R"(/10.5.2.0-24","value":"{\"PublicIP\":\"10.250.0.2\"}"}],"dir":true}})"),
          std::string(
              R"({"other":{"node":{"dir":true}},"node":{"dir":true,"x":{"nodes":[1]},"nodes":[{"key":1.5,"value":[{},{"a":[]}]}]}})"),
      }) {
    expect_same(body);
  }
}

}  // namespace
}  // namespace flannel::etcd
