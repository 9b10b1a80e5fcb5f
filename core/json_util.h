// Small JSON helpers shared by the core/ codecs, for the two things nlohmann::json cannot do for
// us: keep a member's raw text (Go's json.RawMessage), and write bytes exactly as Go's
// encoding/json does (HTML-safe string escaping, compaction of raw messages). Pure functions, no
// I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace flannel::json_util {

// One member of a JSON object: its decoded key and the raw text of its value (a view into the
// input, whitespace around it trimmed: valid only while the text passed to object_members is).
struct RawMember {
  std::string key;
  std::string_view value;
};

// The members of the top-level object in `json`, in document order (duplicates kept, so callers
// can apply Go's "last one wins"). Precondition: `json` is valid JSON whose top-level value is an
// object (check with nlohmann first); behaviour on other input is unspecified but memory-safe.
std::vector<RawMember> object_members(std::string_view json);

// The content of `raw`, one JSON value of a document already parsed (so valid), if it is a
// string; nullopt for any other type. A string without escapes is taken as it is, unparsed.
std::optional<std::string> string_value(std::string_view raw);

// ASCII case-insensitive equality, the folding Go's decoder applies to struct field names.
bool iequals(std::string_view a, std::string_view b);

// `text` as a quoted JSON string escaped like Go's json.Marshal: \" \\ \n \r \t, other control
// bytes as \u00XX, < > & as \u003c \u003e \u0026, U+2028/2029 escaped, invalid UTF-8 as \ufffd.
std::string go_quote(std::string_view text);

// Valid JSON `raw` with insignificant whitespace removed and < > & U+2028 U+2029 escaped, as Go
// does when it marshals a json.RawMessage. With html=false only whitespace is removed.
std::string compact(std::string_view raw, bool html = true);

// The value of a Go int field of a backend config, from the raw JSON text of the member (valid
// JSON): an integer literal within [lo, hi] (no fraction or exponent); null leaves the default.
// Each backend words its own messages from `kind`. `raw` that is not valid JSON is a caller bug:
// nlohmann::json::parse_error escapes.
struct IntField {
  enum class Kind { kNull, kNotInteger, kOutOfRange, kOk } kind = Kind::kNull;
  int64_t value = 0;  // kOk only
};
IntField decode_int_field(std::string_view raw, int64_t lo, int64_t hi);

// A user-facing description of an nlohmann parse error: the message without the library's
// "[json.exception...]" tag, plus the byte offset, e.g. "syntax error ... (at byte 12)".
std::string describe(const nlohmann::json::parse_error& e);
// The same for the other errors json::parse throws: a number too large for a double
// ("number overflow parsing '19e8285'", out_of_range.406; found by tests/fuzz/config_fuzz.cc).
std::string describe(const nlohmann::json::exception& e);

}  // namespace flannel::json_util
