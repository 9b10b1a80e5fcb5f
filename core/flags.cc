#include "core/flags.h"

#include <cctype>
#include <climits>
#include <cstdint>
#include <variant>

namespace flannel {

namespace {

constexpr std::string_view kParseError = "parse error";
constexpr std::string_view kRangeError = "value out of range";

// An argument as typed, for an error message: as is, or quoted like go_quote when it holds a
// control character (a newline in `-etcd-endpoint\n` would break the one-line error; found by
// tests/fuzz/flags_fuzz.cc).
std::string shown_arg(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return go_quote(s);
  }
  return std::string(s);
}

}  // namespace

struct FlagSet::Flag {
  std::string name;
  std::string usage;
  std::variant<std::string*, bool*, int*, std::vector<std::string>*> target;
  FlagValidator validate;
  std::string default_text;  // the default as Go's DefValue would print it
  bool default_is_zero = true;
  bool sensitive = false;
  bool no_env = false;
  FlagSource source = FlagSource::kDefault;
  std::string env_var;

  bool is_bool() const { return std::holds_alternative<bool*>(target); }

  std::string value_text() const {
    return std::visit(
        [](auto* p) -> std::string {
          using T = std::remove_pointer_t<decltype(p)>;
          if constexpr (std::is_same_v<T, std::string>) {
            return *p;
          } else if constexpr (std::is_same_v<T, bool>) {
            return *p ? "true" : "false";
          } else if constexpr (std::is_same_v<T, int>) {
            return std::to_string(*p);
          } else {
            std::string joined;
            for (const auto& v : *p) {
              if (!joined.empty()) joined += ',';
              joined += v;
            }
            return joined;
          }
        },
        target);
  }

  // Go's UnquoteUsage type name: "" for bools, "string", "int", "value" for list types.
  std::string_view type_name() const {
    switch (target.index()) {
      case 0: return "string";
      case 1: return "";
      case 2: return "int";
      default: return "value";
    }
  }
};

std::string_view to_string(FlagSource source) {
  switch (source) {
    case FlagSource::kDefault: return "default";
    case FlagSource::kCommandLine: return "command line";
    case FlagSource::kEnvironment: return "environment";
  }
  return "unknown";
}

bool parse_go_bool(std::string_view text) {
  if (text == "1" || text == "t" || text == "T" || text == "TRUE" || text == "true" ||
      text == "True") {
    return true;
  }
  if (text == "0" || text == "f" || text == "F" || text == "FALSE" || text == "false" ||
      text == "False") {
    return false;
  }
  throw std::invalid_argument(std::string(kParseError));
}

int parse_go_int(std::string_view text) {
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  unsigned base = 10;
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  } else if (s.size() >= 2 && s[0] == '0') {
    base = 8;
    s.remove_prefix(1);
  }
  if (s.empty()) throw std::invalid_argument(std::string(kParseError));
  // Accumulate in 64 bits; anything beyond int's range is "value out of range" (Go's int is 64
  // bits, ours is int, so the range check is against int).
  uint64_t magnitude = 0;
  bool overflow = false;
  for (char c : s) {
    unsigned digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      digit = static_cast<unsigned>(c - 'A' + 10);
    } else {
      throw std::invalid_argument(std::string(kParseError));
    }
    if (digit >= base) throw std::invalid_argument(std::string(kParseError));
    if (!overflow) {
      magnitude = magnitude * base + digit;
      if (magnitude > (uint64_t{1} << 40)) overflow = true;  // far beyond int; keep validating
    }
  }
  const uint64_t limit = negative ? uint64_t{1} + INT_MAX : uint64_t{INT_MAX};
  if (overflow || magnitude > limit) throw std::invalid_argument(std::string(kRangeError));
  return negative ? static_cast<int>(-static_cast<int64_t>(magnitude))
                  : static_cast<int>(magnitude);
}

// Go's %q for the strings we quote in messages: printable ASCII as is, the rest escaped.
std::string go_quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += static_cast<char>(c);  // printable ASCII and UTF-8 bytes pass through
        }
    }
  }
  out += '"';
  return out;
}

FlagSet::FlagSet(std::string program) : program_(std::move(program)) {}
FlagSet::~FlagSet() = default;

namespace {
template <typename T>
void check_new_name(const T& flags, const std::string& name) {
  if (name.empty() || name[0] == '-' || name.find('=') != std::string::npos) {
    throw std::logic_error("bad flag name: \"" + name + "\"");
  }
  if (flags.find(name) != flags.end()) { throw std::logic_error("flag redefined: " + name); }
}
}  // namespace

void FlagSet::add_string(std::string name, std::string* target, std::string usage,
                         FlagValidator validate) {
  check_new_name(flags_, name);
  auto f = std::make_unique<Flag>();
  f->name = name;
  f->usage = std::move(usage);
  f->target = target;
  f->validate = std::move(validate);
  f->default_text = *target;
  f->default_is_zero = target->empty();
  flags_.emplace(std::move(name), std::move(f));
}

void FlagSet::add_bool(std::string name, bool* target, std::string usage) {
  check_new_name(flags_, name);
  auto f = std::make_unique<Flag>();
  f->name = name;
  f->usage = std::move(usage);
  f->target = target;
  f->default_text = *target ? "true" : "false";
  f->default_is_zero = !*target;
  flags_.emplace(std::move(name), std::move(f));
}

void FlagSet::add_int(std::string name, int* target, std::string usage) {
  check_new_name(flags_, name);
  auto f = std::make_unique<Flag>();
  f->name = name;
  f->usage = std::move(usage);
  f->target = target;
  f->default_text = std::to_string(*target);
  f->default_is_zero = *target == 0;
  flags_.emplace(std::move(name), std::move(f));
}

void FlagSet::add_list(std::string name, std::vector<std::string>* target, std::string usage) {
  check_new_name(flags_, name);
  auto f = std::make_unique<Flag>();
  f->name = name;
  f->usage = std::move(usage);
  f->target = target;
  f->default_text = f->value_text();
  f->default_is_zero = target->empty();
  flags_.emplace(std::move(name), std::move(f));
}

FlagSet::Flag& FlagSet::find(std::string_view name) {
  auto it = flags_.find(name);
  if (it == flags_.end()) throw std::logic_error("no such flag: " + std::string(name));
  return *it->second;
}

const FlagSet::Flag& FlagSet::find(std::string_view name) const {
  auto it = flags_.find(name);
  if (it == flags_.end()) throw std::logic_error("no such flag: " + std::string(name));
  return *it->second;
}

void FlagSet::mark_sensitive(std::string_view name) { find(name).sensitive = true; }
void FlagSet::mark_no_env(std::string_view name) { find(name).no_env = true; }

bool FlagSet::has(std::string_view name) const { return flags_.find(name) != flags_.end(); }

bool FlagSet::is_set(std::string_view name) const {
  return find(name).source != FlagSource::kDefault;
}

FlagSource FlagSet::source(std::string_view name) const { return find(name).source; }

void FlagSet::set_value(Flag& flag, const std::string& value) {
  std::visit(
      [&](auto* p) {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::string>) {
          if (flag.validate) flag.validate(value);
          *p = value;
        } else if constexpr (std::is_same_v<T, bool>) {
          *p = parse_go_bool(value);
        } else if constexpr (std::is_same_v<T, int>) {
          *p = parse_go_int(value);
        } else {
          p->push_back(value);
        }
      },
      flag.target);
}

void FlagSet::set(std::string_view name, const std::string& value, FlagSource source) {
  auto it = flags_.find(name);
  if (it == flags_.end()) { throw FlagError("no such flag -" + std::string(name)); }
  Flag& flag = *it->second;
  try {
    set_value(flag, value);
  } catch (const std::invalid_argument& e) {
    throw FlagError("invalid value " + go_quote(value) + " for flag -" + flag.name + ": " +
                    e.what());
  }
  flag.source = source;
}

FlagSet::ParseResult FlagSet::parse(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse(args);
}

// Follows Go 1.10 flag.(*FlagSet).parseOne step by step.
FlagSet::ParseResult FlagSet::parse(const std::vector<std::string>& args) {
  ParseResult result;
  size_t i = 0;
  while (i < args.size()) {
    const std::string& s = args[i];
    if (s.size() < 2 || s[0] != '-') break;  // a positional argument, or "-"
    size_t dashes = 1;
    if (s[1] == '-') {
      dashes = 2;
      if (s.size() == 2) {  // "--" ends the flags and is dropped
        ++i;
        break;
      }
    }
    std::string name = s.substr(dashes);
    if (name.empty() || name[0] == '-' || name[0] == '=') {
      throw FlagError("bad flag syntax: " + shown_arg(s));
    }
    ++i;
    bool has_value = false;
    std::string value;
    if (size_t eq = name.find('=', 1); eq != std::string::npos) {
      value = name.substr(eq + 1);
      has_value = true;
      name.resize(eq);
    }
    auto it = flags_.find(name);
    if (it == flags_.end()) {
      if (name == "help" || name == "h") {
        result.help = true;
        return result;
      }
      throw FlagError("flag provided but not defined: -" + shown_arg(name));
    }
    Flag& flag = *it->second;
    if (flag.is_bool()) {
      if (has_value) {
        try {
          set_value(flag, value);
        } catch (const std::invalid_argument& e) {
          throw FlagError("invalid boolean value " + go_quote(value) + " for -" + name + ": " +
                          e.what());
        }
      } else {
        set_value(flag, "true");
      }
    } else {
      if (!has_value && i < args.size()) {
        value = args[i++];
        has_value = true;
      }
      if (!has_value) throw FlagError("flag needs an argument: -" + name);
      try {
        set_value(flag, value);
      } catch (const std::invalid_argument& e) {
        throw FlagError("invalid value " + go_quote(value) + " for flag -" + name + ": " +
                        e.what());
      }
    }
    flag.source = FlagSource::kCommandLine;
  }
  result.args.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  return result;
}

std::string FlagSet::env_key(std::string_view prefix, std::string_view name) {
  std::string key(prefix);
  key += '_';
  for (char c : name) {
    key += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return key;
}

void FlagSet::apply_env(const std::map<std::string, std::string>& env, std::string_view prefix) {
  for (auto& [name, flag] : flags_) {
    if (flag->source == FlagSource::kCommandLine || flag->no_env) continue;
    std::string key = env_key(prefix, name);
    auto it = env.find(key);
    if (it == env.end() || it->second.empty()) continue;
    try {
      set_value(*flag, it->second);
    } catch (const std::invalid_argument& e) {
      throw FlagError("invalid value " + go_quote(it->second) + " for " + key + ": " + e.what());
    }
    flag->source = FlagSource::kEnvironment;
    flag->env_var = key;
  }
}

std::vector<FlagSetting> FlagSet::settings() const {
  std::vector<FlagSetting> out;
  for (const auto& [name, flag] : flags_) {
    if (flag->source == FlagSource::kDefault) continue;
    out.push_back(FlagSetting{name, flag->sensitive ? "<redacted>" : flag->value_text(),
                              flag->source, flag->env_var});
  }
  return out;
}

std::string FlagSet::usage() const { return "Usage: " + program_ + " [OPTION]...\n" + defaults(); }

std::string FlagSet::defaults() const {
  std::string out;
  for (const auto& [name, flag] : flags_) {
    std::string line = "  -" + name;
    std::string_view type = flag->type_name();
    if (!type.empty()) {
      line += ' ';
      line += type;
    }
    line += line.size() <= 4 ? "\t" : "\n    \t";
    for (char c : flag->usage) {
      if (c == '\n') {
        line += "\n    \t";
      } else {
        line += c;
      }
    }
    if (!flag->default_is_zero) {
      if (std::holds_alternative<std::string*>(flag->target)) {
        line += " (default " + go_quote(flag->default_text) + ")";
      } else {
        line += " (default " + flag->default_text + ")";
      }
    }
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace flannel
