// The output of mk-docker-opts.sh (flannel v0.11 dist/), as a pure function.
//
// The script sources subnet.env over its own environment, derives DOCKER_OPT_BIP / _MTU /
// _IPMASQ, and writes `NAME="value"` lines for every DOCKER_OPT_* shell variable in `set` order
// plus one combined `KEY=" --opt ..."` line. The daemon/ program does the file handling (option
// parsing, reading the env file, writing the output only on success).
#pragma once

#include <map>
#include <stdexcept>
#include <string>

namespace flannel {

// An invalid FLANNEL_IPMASQ; what() is the script's own message, "Invalid value of FLANNEL_IPMASQ:
// X".
class DockerOptsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DockerOptsOptions {
  bool individual = false;          // -i: write the DOCKER_OPT_* variables
  bool combined = false;            // -c: write KEY="..."; neither -i nor -c means both
  std::string key = "DOCKER_OPTS";  // -k KEY
  bool omit_ipmasq = false;         // -m: leave out --ip-masq
};

// Renders the docker options file.
//  env_file: the variables of the sourced flannel env file (empty if the file is missing); they
//            override `environment`, as sourcing does.
//  environment: the process environment; DOCKER_OPT_* variables in it are written too, and a set
//            `KEY` is prefixed to the combined value followed by a space ("V  --bip=...").
// The result is the whole file, each line ending in '\n'. Individual variables come sorted by
// name (byte order, as dash's `set` prints them); the combined value lists the same variables'
// values in the same order, each preceded by one space. Values are written verbatim (the shell
// script would mangle values containing whitespace; we do not reproduce that).
// Throws DockerOptsError for a FLANNEL_IPMASQ other than "", "true" or "false" (unless
// omit_ipmasq), in which case nothing must be written.
std::string render_docker_opts(const std::map<std::string, std::string>& env_file,
                               const DockerOptsOptions& options,
                               const std::map<std::string, std::string>& environment);

}  // namespace flannel
