#include "core/json_util.h"

#include <algorithm>
#include <cstdio>

namespace flannel::json_util {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

// s[i] == '"'; returns the index just past the closing quote.
size_t skip_string(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') ++i;
    else if (s[i] == '"') return i + 1;
  }
  return s.size();
}

// Returns the index just past the value that starts at s[i].
size_t skip_value(std::string_view s, size_t i) {
  if (i >= s.size()) return i;
  if (s[i] == '"') return skip_string(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      char c = s[i];
      if (c == '"') {
        i = skip_string(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return i;
  }
  // number, true, false, null
  while (i < s.size() && !is_ws(s[i]) && s[i] != ',' && s[i] != '}' && s[i] != ']') ++i;
  return i;
}

void put_u(std::string& out, unsigned code) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\u%04x", code);
  out += buf;
}

// Length of the valid UTF-8 sequence at s[i], or 0 if it is invalid (Go's utf8.DecodeRune rules:
// no overlongs, no surrogates, nothing above U+10FFFF).
size_t utf8_len(std::string_view s, size_t i, unsigned& cp) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned c = b(i);
  size_t n;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3f);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return n;
}

}  // namespace

std::vector<RawMember> object_members(std::string_view s) {
  std::vector<RawMember> out;
  size_t i = skip_ws(s, 0);
  if (i >= s.size() || s[i] != '{') return out;
  i = skip_ws(s, i + 1);
  while (i < s.size() && s[i] == '"') {
    size_t key_end = skip_string(s, i);
    std::string_view key_raw = s.substr(i, key_end - i);
    i = skip_ws(s, key_end);
    if (i >= s.size() || s[i] != ':') break;
    i = skip_ws(s, i + 1);
    size_t value_end = skip_value(s, i);
    std::optional<std::string> key = string_value(key_raw);
    out.push_back(
        RawMember{key ? std::move(*key) : std::string(key_raw), s.substr(i, value_end - i)});
    i = skip_ws(s, value_end);
    if (i < s.size() && s[i] == ',') i = skip_ws(s, i + 1);
  }
  return out;
}

std::optional<std::string> string_value(std::string_view raw) {
  if (raw.size() < 2 || raw.front() != '"' || raw.back() != '"') return std::nullopt;
  if (raw.find('\\') == std::string_view::npos) return std::string(raw.substr(1, raw.size() - 2));
  try {
    auto v = nlohmann::json::parse(raw);
    if (v.is_string()) return v.get<std::string>();
  } catch (const nlohmann::json::exception&) {}
  return std::nullopt;  // unreachable for validated input
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string go_quote(std::string_view s) {
  std::string out = "\"";
  out.reserve(s.size() + 2);
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '<':
        case '>':
        case '&': put_u(out, c); break;
        default:
          if (c < 0x20) put_u(out, c);
          else out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    unsigned cp = 0;
    size_t n = utf8_len(s, i, cp);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
    } else if (cp == 0x2028 || cp == 0x2029) {
      put_u(out, cp);
      i += n;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  out += '"';
  return out;
}

std::string compact(std::string_view raw, bool html) {
  std::string out;
  out.reserve(raw.size());
  bool in_string = false;
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (in_string) {
      if (c == '\\' && i + 1 < raw.size()) {
        out += c;
        out += raw[++i];
        continue;
      }
      if (c == '"') in_string = false;
    } else {
      if (is_ws(c)) continue;
      if (c == '"') in_string = true;
    }
    if (html && (c == '<' || c == '>' || c == '&')) {
      put_u(out, static_cast<unsigned char>(c));
      continue;
    }
    if (html && static_cast<unsigned char>(c) == 0xe2 && i + 2 < raw.size() &&
        static_cast<unsigned char>(raw[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(raw[i + 2]) & ~1u) == 0xa8) {
      put_u(out, 0x2028u + (static_cast<unsigned char>(raw[i + 2]) & 1u));
      i += 2;
      continue;
    }
    out += c;
  }
  return out;
}

std::string describe(const nlohmann::json::exception& e) {
  std::string msg = e.what();
  // "[json.exception.parse_error.101] parse error at line 1, column 5: ..." -> drop the tag.
  if (!msg.empty() && msg[0] == '[') {
    size_t close = msg.find("] ");
    if (close != std::string::npos) msg.erase(0, close + 2);
  }
  return msg;
}

std::string describe(const nlohmann::json::parse_error& e) {
  return describe(static_cast<const nlohmann::json::exception&>(e)) + " (at byte " +
         std::to_string(e.byte) + ")";
}

IntField decode_int_field(std::string_view raw, int64_t lo, int64_t hi) {
  IntField f;
  nlohmann::json v = nlohmann::json::parse(raw);
  if (v.is_null()) return f;
  if (!v.is_number_integer()) {
    f.kind = IntField::Kind::kNotInteger;
    return f;
  }
  // nlohmann keeps non-negative integers unsigned; clamp huge ones so they stay out of range.
  int64_t n = v.is_number_unsigned()
                  ? static_cast<int64_t>(std::min<uint64_t>(v.get<uint64_t>(), uint64_t{1} << 62))
                  : v.get<int64_t>();
  if (n < lo || n > hi) {
    f.kind = IntField::Kind::kOutOfRange;
    return f;
  }
  f.kind = IntField::Kind::kOk;
  f.value = n;
  return f;
}

}  // namespace flannel::json_util
