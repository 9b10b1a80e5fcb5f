// The v3 gateway codec: base64, range ends, int64-as-string fields, current flannel's value.
#include <gtest/gtest.h>

#include "stores/etcd/v3_codec.h"

namespace flannel::etcd_v3 {
namespace {

TEST(EtcdV3Codec, Base64RoundTripsAndRejectsGarbage) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "/coreos.com/network/subnets/10.5.34.0-24"}) {
    auto back = base64_decode(base64_encode(s));
    ASSERT_TRUE(back) << s;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(base64_encode("a"), "YQ==");
  EXPECT_EQ(base64_encode(std::string("\xff\x00", 2)), "/wA=");
  EXPECT_FALSE(base64_decode("Y!=="));
  EXPECT_FALSE(base64_decode("Y"));
}

TEST(EtcdV3Codec, PrefixRangeEnd) {
  EXPECT_EQ(prefix_range_end("/net/subnets/"), "/net/subnets0");
  EXPECT_EQ(prefix_range_end(std::string("a\xff", 2)), "b");
}

TEST(EtcdV3Codec, IntegersAsStringsOrNumbers) {
  auto j = json::parse(
      R"({"a":"12","b":7,"c":"x","header":{"cluster_id":"15118495548433857066","revision":"9"}})");
  EXPECT_EQ(get_int(j, "a"), 12);
  EXPECT_EQ(get_int(j, "b"), 7);
  EXPECT_EQ(get_int(j, "missing"), 0);
  EXPECT_THROW(get_int(j, "c"), std::invalid_argument);
  Header h = parse_header(j);
  EXPECT_EQ(h.cluster_id, 15118495548433857066ull);
  EXPECT_EQ(h.revision, 9u);
}

TEST(EtcdV3Codec, WatchEventsPutDeleteAndMalformed) {
  auto put = parse_watch_event(
      json::parse(R"({"kv":{"key":"YQ==","value":"Yg==","mod_revision":"7","lease":"3"}})"));
  EXPECT_FALSE(put.is_delete);
  EXPECT_EQ(put.kv.key, "a");
  EXPECT_EQ(put.kv.value, "b");
  EXPECT_EQ(put.kv.mod_revision, 7);
  EXPECT_EQ(put.kv.lease, 3);
  EXPECT_EQ(put.prev_lease, 0);
  auto del = parse_watch_event(json::parse(
      R"({"type":"DELETE","kv":{"key":"YQ==","mod_revision":"8"},"prev_kv":{"key":"YQ==","lease":"5"}})"));
  EXPECT_TRUE(del.is_delete);
  EXPECT_EQ(del.prev_lease, 5);
  EXPECT_TRUE(parse_watch_event(json::parse(R"({"type":1,"kv":{}})")).is_delete);
  EXPECT_FALSE(parse_watch_event(json::parse(R"({"type":"PUT","kv":{},"prev_kv":{"lease":"x"}})"))
                   .is_delete);
  // Found while writing fuzz_etcd_v3: a "type" of the wrong JSON type threw nlohmann's
  // type_error out of the watch stream's callback (through libcurl); now a skippable bad event.
  EXPECT_THROW(parse_watch_event(json::parse(R"({"type":5,"kv":{}})")), std::invalid_argument);
  EXPECT_THROW(parse_watch_event(json::parse(R"({"type":"EXPIRE","kv":{}})")),
               std::invalid_argument);
  EXPECT_THROW(parse_watch_event(json::parse("42")), std::invalid_argument);
  EXPECT_THROW(parse_watch_event(json::parse(R"({"kv":{"key":7}})")), std::invalid_argument);
}

TEST(EtcdV3Codec, BooleansAndStringsOfTheWrongTypeAreFalseAndEmpty) {
  auto j = json::parse(R"({"succeeded":true,"canceled":"yes","reason":"r","n":1})");
  EXPECT_TRUE(get_true(j, "succeeded"));
  EXPECT_FALSE(get_true(j, "canceled"));
  EXPECT_FALSE(get_true(j, "missing"));
  EXPECT_FALSE(get_true(json::parse("[true]"), "succeeded"));
  EXPECT_EQ(get_string(j, "reason"), "r");
  EXPECT_EQ(get_string(j, "n"), "");
  EXPECT_EQ(get_string(json::parse("3"), "reason"), "");
}

TEST(EtcdV3Codec, LeaseValueIsCurrentFlannels) {
  LeaseAttrs a;
  a.public_ip = IP4::parse("192.168.1.10");
  EXPECT_EQ(encode_lease_value(a), R"({"PublicIP":"192.168.1.10","PublicIPv6":null})");
  a.backend_type = "vxlan";
  a.backend_data = R"({"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:01"})";
  const std::string v = encode_lease_value(a);
  EXPECT_EQ(
      v,
      R"({"PublicIP":"192.168.1.10","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:01"}})");
  EXPECT_EQ(decode_lease_attrs(v), a);
}

}  // namespace
}  // namespace flannel::etcd_v3
