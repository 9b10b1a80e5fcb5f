// How the extension backend turns a configured command line into argv, without a shell, as
// current flannel does since v0.28.2 (extension.go:runCmd, facts-2 §3):
//   1. the line is split on whitespace (Go's strings.Fields; here ASCII space, \t \n \v \f \r):
//      no quoting, no escapes, no globbing, no `;` `|` `&&` `$(...)` or redirections;
//   2. each word then has $NAME and ${NAME} expanded (Go's os.Expand) from the child's
//      environment (flanneld's own plus the per-command variables); an unknown name expands to
//      "". A value is never split again, so whatever a variable holds stays one argument.
// The first word names the program (looked up in PATH unless it contains a '/').
// And what a peer's BackendData must be: a JSON string (flannel json.Unmarshals it into a Go
// string), which becomes the command's stdin followed by "\n".
// Pure functions, no I/O.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flannel {

// `line` split on runs of ASCII whitespace; no empty words.
std::vector<std::string> split_fields(std::string_view line);

// `word` with $NAME / ${NAME} replaced by lookup(NAME), exactly as Go's os.Expand: NAME is a run
// of [A-Za-z0-9_], or one of the shell's special names * # $ @ ! ? - 0-9 (one character);
// ${...} takes everything up to the first '}'; a '$' followed by none of these (or at the end)
// stays; "${}" and an unclosed "${" are dropped.
std::string expand_vars(std::string_view word,
                        const std::function<std::string(const std::string&)>& lookup);
// The same with the value of NAME taken from `env` ("NAME=value" entries, the last one wins).
std::string expand_vars(std::string_view word, const std::vector<std::string>& env);

// The argv of `line` run with environment `env`: split_fields, then expand_vars of each word.
// Empty when the line has no word.
std::vector<std::string> command_argv(std::string_view line, const std::vector<std::string>& env);

// The text a peer's BackendData stands for: "" when absent, the decoded string when it is a JSON
// string; nullopt (with *why naming the value) for any other JSON value.
std::optional<std::string> decode_extension_data(const std::string& backend_data, std::string* why);
// Our PreStartupCommand's output as BackendData: a JSON string, escaped as Go's json.Marshal.
std::string encode_extension_data(std::string_view output);

}  // namespace flannel
