#include "backends/extension/command.h"

#include <map>

#include <nlohmann/json.hpp>

#include "core/json_util.h"

namespace flannel {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// Go's isShellSpecialVar.
bool is_special(char c) {
  switch (c) {
    case '*':
    case '#':
    case '$':
    case '@':
    case '!':
    case '?':
    case '-': return true;
    default: return c >= '0' && c <= '9';
  }
}

// Go's isAlphaNum.
bool is_name_char(char c) {
  return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Go's getShellName: the name after a '$' at the start of `rest` (not empty), and how many
// characters of `rest` the reference takes. An empty name with width 0: no reference (the '$'
// stays); with width > 0: bad syntax, those characters are dropped.
std::pair<std::string_view, size_t> shell_name(std::string_view rest) {
  if (rest[0] == '{') {
    if (rest.size() > 2 && is_special(rest[1]) && rest[2] == '}') return {rest.substr(1, 1), 3};
    size_t close = rest.find('}');
    if (close == std::string_view::npos) return {{}, 1};  // "${" without '}'
    if (close == 1) return {{}, 2};                       // "${}"
    return {rest.substr(1, close - 1), close + 1};
  }
  if (is_special(rest[0])) return {rest.substr(0, 1), 1};
  size_t width = 0;
  while (width < rest.size() && is_name_char(rest[width])) ++width;
  return {rest.substr(0, width), width};
}

// A lookup over "NAME=value" entries (the last one of a name wins; unknown names give "").
std::function<std::string(const std::string&)> env_lookup(const std::vector<std::string>& env) {
  std::map<std::string, std::string> values;
  for (const auto& e : env) {
    size_t eq = e.find('=');
    if (eq != std::string::npos) values[e.substr(0, eq)] = e.substr(eq + 1);
  }
  return [values = std::move(values)](const std::string& name) {
    auto it = values.find(name);
    return it == values.end() ? std::string() : it->second;
  };
}

}  // namespace

std::vector<std::string> split_fields(std::string_view line) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (i > start) words.emplace_back(line.substr(start, i - start));
  }
  return words;
}

std::string expand_vars(std::string_view s,
                        const std::function<std::string(const std::string&)>& lookup) {
  std::string out;
  size_t i = 0;  // start of the text not yet copied
  bool expanded = false;
  for (size_t j = 0; j < s.size(); ++j) {
    if (s[j] != '$' || j + 1 >= s.size()) continue;
    expanded = true;
    out.append(s.substr(i, j - i));
    auto [name, width] = shell_name(s.substr(j + 1));
    if (!name.empty()) out += lookup(std::string(name));
    else if (width == 0) out += '$';
    j += width;
    i = j + 1;
  }
  if (!expanded) return std::string(s);
  if (i < s.size()) out.append(s.substr(i));
  return out;
}

std::string expand_vars(std::string_view word, const std::vector<std::string>& env) {
  return expand_vars(word, env_lookup(env));
}

std::vector<std::string> command_argv(std::string_view line, const std::vector<std::string>& env) {
  auto lookup = env_lookup(env);
  std::vector<std::string> argv;
  for (const auto& word : split_fields(line)) argv.push_back(expand_vars(word, lookup));
  return argv;
}

std::optional<std::string> decode_extension_data(const std::string& backend_data,
                                                 std::string* why) {
  if (backend_data.empty()) return std::string();
  nlohmann::json v = nlohmann::json::parse(backend_data, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) {
    *why = "BackendData " + backend_data + " is not valid JSON";
    return std::nullopt;
  }
  if (v.is_null()) return std::string();
  if (!v.is_string()) {
    *why = "BackendData " + backend_data +
           " is not a JSON string (an extension host publishes its PreStartupCommand's output "
           "as one)";
    return std::nullopt;
  }
  return v.get<std::string>();
}

std::string encode_extension_data(std::string_view output) { return json_util::go_quote(output); }

}  // namespace flannel
