// FlagSet: a command-line parser that accepts exactly what Go's `flag` package accepts, so every
// flanneld command line and FLANNELD_* environment written for flannel v0.11 keeps working.
//
// One job: parse argv (and then the environment) against declared flags and store the values in
// the caller's variables. Nothing here prints or exits; the program decides what to do with a
// FlagError or a help request (flanneld: one line plus a hint on stderr and exit 2; -help: usage
// on stderr and exit 0).
//
// Syntax (Go 1.10 `flag`):
//   -name  --name                 the same flag; one or two dashes
//   -name=value  -name value      string, int and list flags (the value may start with '-')
//   -name  -name=false            bool flags; a bool never takes the next argument as its value
//                                 (accepted: 1 0 t f T F true false TRUE FALSE True False)
//   ints                          Go base detection: 0x1F90 = 8080, 010 = 8, optional sign
//   list flags                    every occurrence appends one value
//   -h  -help  (unless declared)  parse() reports a help request and stops
// Parsing stops at the first argument that is not a flag, at "-" (kept as an argument) and at
// "--" (dropped); what is left is returned as positional arguments.
//
// Environment (coreos/pkg/flagutil, as flanneld v0.11 does it): after parse(), every flag NOT set
// on the command line may be set from PREFIX_NAME, where NAME is the flag name upper-cased with
// '-' turned into '_' (FLANNELD_ETCD_ENDPOINTS, FLANNELD_IP_MASQ). An empty variable is ignored.
// A list flag takes exactly one value from its variable (commas are not split). Unlike v0.11, an
// invalid value is an error naming the variable and the value instead of being silently dropped.
//
// Values are written through pointers given at declaration; the value a variable holds when it is
// declared is the flag's default. The variables must outlive the FlagSet.
//
// Thread safety: none; a FlagSet is built and used by one thread, at startup.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/environment.h"  // environment_map (for apply_env and parse_flanneld_options)

namespace flannel {

// A mistake in the command line or the environment, or a flag value that fails validation.
// what() is one line in Go's wording where Go has one, e.g.
//   flag provided but not defined: -foo
//   invalid value "x" for flag -healthz-port: parse error
//   invalid boolean value "yes" for -ip-masq: parse error
//   flag needs an argument: -iface
//   invalid value "x" for FLANNELD_HEALTHZ_PORT: parse error
class FlagError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where a flag's current value came from.
enum class FlagSource { kDefault, kCommandLine, kEnvironment };
std::string_view to_string(FlagSource source);  // "default", "command line", "environment"

// One flag that was set, for logging what the daemon runs with.
struct FlagSetting {
  std::string name;   // "etcd-prefix"
  std::string value;  // current value as text; "<redacted>" for sensitive flags; lists
                      // joined with ','
  FlagSource source = FlagSource::kDefault;
  std::string env_var;  // the variable it came from, when source == kEnvironment
};

// Checks a string flag's value. Throws std::invalid_argument whose what() says why the value is
// bad; the FlagSet turns it into `invalid value "V" for flag -NAME: WHY`.
using FlagValidator = std::function<void(const std::string& value)>;

class FlagSet {
 public:
  // `program` is used in the usage header ("Usage: flanneld [OPTION]...").
  explicit FlagSet(std::string program);
  ~FlagSet();
  FlagSet(const FlagSet&) = delete;
  FlagSet& operator=(const FlagSet&) = delete;

  // Declarations. The variable's current value is the default. Declaring a name twice throws
  // std::logic_error (a programming error, as Go panics). `target` is kept and written on every
  // later set; `validate` is kept too and runs before each string value is stored (not on the
  // default), so whatever it refers to must outlive the FlagSet as well.
  void add_string(std::string name, std::string* target, std::string usage,
                  FlagValidator validate = nullptr);
  void add_bool(std::string name, bool* target, std::string usage);
  void add_int(std::string name, int* target, std::string usage);  // range of int, Go base rules
  // A list flag appends each value to *target, after whatever the default held (a non-empty
  // default is kept, not replaced).
  void add_list(std::string name, std::vector<std::string>* target, std::string usage);

  // Per-flag options. Both throw std::logic_error for an undeclared name.
  void mark_sensitive(std::string_view name);  // value shown as "<redacted>" in settings()
  void mark_no_env(std::string_view name);     // never read from the environment (-version)

  struct ParseResult {
    bool help = false;              // -h / -help / --help seen (and not declared): stop here
    std::vector<std::string> args;  // positional arguments left after the flags
  };
  // Parses `args` (without the program name). Throws FlagError on the first unknown flag, missing
  // value or bad value; values set before the error stay set.
  ParseResult parse(const std::vector<std::string>& args);
  ParseResult parse(int argc, const char* const* argv);  // skips argv[0]

  // Sets every flag not set on the command line from `env` (see above). `prefix` is e.g.
  // "FLANNELD" (joined to the name with '_'). Flags are visited in name order; the first invalid
  // value throws FlagError("invalid value \"V\" for FLANNELD_NAME: WHY"), and the flags set
  // before it keep their environment values.
  void apply_env(const std::map<std::string, std::string>& env, std::string_view prefix);

  // Sets one flag as if from `source` (Go's FlagSet.Set). Throws FlagError for an unknown name or
  // a bad value; the variable and the flag's source are then unchanged.
  void set(std::string_view name, const std::string& value,
           FlagSource source = FlagSource::kCommandLine);

  bool has(std::string_view name) const;  // declared?
  // Set by command line or environment? Throws std::logic_error if undeclared.
  bool is_set(std::string_view name) const;
  FlagSource source(std::string_view name) const;  // throws std::logic_error if undeclared
  // The environment variable name for a flag: env_key("FLANNELD", "ip-masq") == "FLANNELD_IP_MASQ".
  static std::string env_key(std::string_view prefix, std::string_view name);

  // Every flag that was set (command line or environment), in name order.
  std::vector<FlagSetting> settings() const;

  // "Usage: PROGRAM [OPTION]...\n" followed by defaults().
  std::string usage() const;
  // Go's PrintDefaults layout, flags in name order:
  //   "  -etcd-prefix string\n    \tetcd prefix (default \"/coreos.com/network\")\n"
  //   "  -ip-masq\n    \tsetup IP masquerade ...\n"   (a one-letter bool puts its usage on
  //                                               the same line after a tab, as Go does)
  std::string defaults() const;

 private:
  struct Flag;
  Flag& find(std::string_view name);
  const Flag& find(std::string_view name) const;
  void set_value(Flag& flag, const std::string& value);  // throws std::invalid_argument(reason)

  std::string program_;
  std::map<std::string, std::unique_ptr<Flag>, std::less<>> flags_;
};

// Go's strconv.ParseBool: 1 t T TRUE true True / 0 f F FALSE false False. Throws
// std::invalid_argument("parse error") otherwise.
bool parse_go_bool(std::string_view text);
// Go's strconv.ParseInt(text, 0, 64) for an int: optional sign, "0x"/"0X" hex, leading "0"
// octal, else decimal. Throws std::invalid_argument("parse error") or ("value out of range").
int parse_go_int(std::string_view text);

// Go's %q for the strings quoted in messages: printable ASCII and UTF-8 bytes as is, '"' and
// '\\' escaped, control bytes as \n \t \r or \xNN. The one quoting helper of the daemon.
std::string go_quote(std::string_view s);

}  // namespace flannel
