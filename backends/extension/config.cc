#include "backends/extension/config.h"

#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "backends/extension/command.h"
#include "core/json_util.h"

namespace flannel {
namespace {

[[noreturn]] void decode_error(const std::string& why) {
  throw BackendError("error decoding backend config: " + why);
}

void decode_command(std::string_view raw, const char* field, std::string* out) {
  nlohmann::json v = nlohmann::json::parse(raw);
  if (v.is_null()) return;
  if (!v.is_string())
    decode_error(std::string(field) + " must be a string (a command line), got " +
                 std::string(raw));
  *out = v.get<std::string>();
  if (split_fields(*out).empty()) out->clear();  // blank: no command, as flannel's len() == 0
}

void decode_timeout(std::string_view raw, std::chrono::seconds* out) {
  auto f = json_util::decode_int_field(raw, 1, 3600);
  switch (f.kind) {
    case json_util::IntField::Kind::kNull: return;
    case json_util::IntField::Kind::kNotInteger:
      decode_error("CommandTimeout must be an integer number of seconds like 10, got " +
                   std::string(raw));
    case json_util::IntField::Kind::kOutOfRange:
      decode_error("CommandTimeout must be between 1 and 3600 seconds, got " + std::string(raw));
    case json_util::IntField::Kind::kOk: break;
  }
  *out = std::chrono::seconds(f.value);
}

void warn_quotes(const char* field, const std::string& command, std::vector<std::string>* out) {
  for (const auto& word : split_fields(command)) {
    if (word.find_first_of("\"'") == std::string::npos) continue;
    out->push_back(std::string("extension: ") + field + " word " + word +
                   " contains a quote: commands run without a shell, so the program gets the "
                   "quote characters as they are (write $SUBNET, not \"$SUBNET\"; use a script "
                   "for shell syntax)");
    return;
  }
}

}  // namespace

ExtensionConfig decode_extension_config(const std::string& backend_json) {
  ExtensionConfig c;
  if (backend_json.empty()) return c;
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(backend_json);
  } catch (const nlohmann::json::parse_error& e) { decode_error(json_util::describe(e)); }
  if (doc.is_null()) return c;
  if (!doc.is_object())
    decode_error("expected an object like {\"Type\":\"extension\",\"SubnetAddCommand\":\"...\"}");
  bool shutdown = false;
  for (const auto& m : json_util::object_members(backend_json)) {
    if (json_util::iequals(m.key, "PreStartupCommand")) {
      decode_command(m.value, "PreStartupCommand", &c.pre_startup);
    } else if (json_util::iequals(m.key, "PostStartupCommand")) {
      decode_command(m.value, "PostStartupCommand", &c.post_startup);
    } else if (json_util::iequals(m.key, "SubnetAddCommand")) {
      decode_command(m.value, "SubnetAddCommand", &c.subnet_add);
    } else if (json_util::iequals(m.key, "SubnetRemoveCommand")) {
      decode_command(m.value, "SubnetRemoveCommand", &c.subnet_remove);
    } else if (json_util::iequals(m.key, "CommandTimeout")) {
      decode_timeout(m.value, &c.timeout);
    } else if (json_util::iequals(m.key, "ShutdownCommand")) {
      shutdown = true;
    }
  }
  if (shutdown) {
    c.warnings.push_back(
        "extension: ShutdownCommand is ignored: the extension backend has no such field (as in "
        "current flannel, whose dist/ examples carry one that never runs)");
  }
  warn_quotes("PreStartupCommand", c.pre_startup, &c.warnings);
  warn_quotes("PostStartupCommand", c.post_startup, &c.warnings);
  warn_quotes("SubnetAddCommand", c.subnet_add, &c.warnings);
  warn_quotes("SubnetRemoveCommand", c.subnet_remove, &c.warnings);
  return c;
}

}  // namespace flannel
