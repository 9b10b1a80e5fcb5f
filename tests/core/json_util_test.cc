#include "core/json_util.h"

#include <gtest/gtest.h>

namespace flannel::json_util {
namespace {

TEST(JsonUtil, GoQuoteEscapesLikeEncodingJson) {
  EXPECT_EQ(go_quote("vxlan"), "\"vxlan\"");
  EXPECT_EQ(go_quote("a\"b\\c\n\r\t"), R"("a\"b\\c\n\r\t")");
  EXPECT_EQ(go_quote(std::string("\x01\x1f", 2)), R"("\u0001\u001f")");
  EXPECT_EQ(go_quote("<&>"), R"("\u003c\u0026\u003e")");
  EXPECT_EQ(go_quote("\xe2\x80\xa8 \xe2\x80\xa9"), R"("\u2028 \u2029")");
  EXPECT_EQ(go_quote("caf\xc3\xa9 \xf0\x9f\x98\x80"), "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
  EXPECT_EQ(go_quote("\xff\xc3"), R"("\ufffd\ufffd")");
  EXPECT_EQ(go_quote("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // a surrogate is invalid
}

TEST(JsonUtil, CompactKeepsStringsIntact) {
  EXPECT_EQ(compact(" { \"a b\" : [ 1 , \"x \\\" y\" ] ,\n\t\"c\":null } "),
            R"({"a b":[1,"x \" y"],"c":null})");
  EXPECT_EQ(compact(R"({"h":"<a&b>"})"), R"({"h":"\u003ca\u0026b\u003e"})");
  EXPECT_EQ(compact(R"({"h":"<a&b>"})", false), R"({"h":"<a&b>"})");
  EXPECT_EQ(compact("\"\xe2\x80\xa8\""), R"("\u2028")");
}

TEST(JsonUtil, ObjectMembersInDocumentOrder) {
  auto m = object_members(
      R"( { "b" : {"x":"}"} , "a\u0041":[1,[2]], "c":"s", "d": -1.5e3, "e":true } )");
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m[0].key, "b");
  EXPECT_EQ(m[0].value, R"({"x":"}"})");
  EXPECT_EQ(m[1].key, "aA");
  EXPECT_EQ(m[1].value, "[1,[2]]");
  EXPECT_EQ(m[2].value, "\"s\"");
  EXPECT_EQ(m[3].value, "-1.5e3");
  EXPECT_EQ(m[4].value, "true");
  EXPECT_TRUE(object_members("{}").empty());
  EXPECT_TRUE(iequals("PublicIP", "publicip"));
  EXPECT_FALSE(iequals("PublicIP", "PublicIPs"));
}

TEST(JsonUtil, StringValueReadsStringsOnlyAndDecodesEscapes) {
  EXPECT_EQ(string_value(R"("10.0.0.1")"), "10.0.0.1");
  EXPECT_EQ(string_value(R"("")"), "");
  EXPECT_EQ(string_value(R"("a\u0041\"\\")"), "aA\"\\");
  EXPECT_EQ(string_value("\"\xc3\xa9\""), "\xc3\xa9");
  for (const char* other : {"null", "7", "true", "[\"a\"]", R"({"a":"b"})", "\""}) {
    EXPECT_EQ(string_value(other), std::nullopt) << other;
  }
}

TEST(JsonUtil, DescribeGivesByteOffset) {
  try {
    auto j = nlohmann::json::parse("{\"a\":}");
    FAIL() << j.dump();
  } catch (const nlohmann::json::parse_error& e) {
    std::string d = describe(e);
    EXPECT_EQ(d.rfind("parse error at line 1, column 6", 0), 0u) << d;
    EXPECT_NE(d.find("(at byte 6)"), std::string::npos) << d;
  }
}

}  // namespace
}  // namespace flannel::json_util

TEST(JsonUtil, DecodeIntFieldClassifiesLikeAGoIntField) {
  using flannel::json_util::decode_int_field;
  using Kind = flannel::json_util::IntField::Kind;
  EXPECT_EQ(decode_int_field("null", 0, 10).kind, Kind::kNull);
  for (const char* raw : {"\"5\"", "1.5", "1e2", "true", "[]", "{}"}) {
    EXPECT_EQ(decode_int_field(raw, 0, 1000).kind, Kind::kNotInteger) << raw;
  }
  for (const char* raw : {"-1", "11", "18446744073709551615", "-9223372036854775808"}) {
    EXPECT_EQ(decode_int_field(raw, 0, 10).kind, Kind::kOutOfRange) << raw;
  }
  auto f = decode_int_field("7", 0, 10);
  EXPECT_EQ(f.kind, Kind::kOk);
  EXPECT_EQ(f.value, 7);
  EXPECT_EQ(decode_int_field("-3", -5, 0).value, -3);
  EXPECT_EQ(decode_int_field("10", 0, 10).kind, Kind::kOk);
}
