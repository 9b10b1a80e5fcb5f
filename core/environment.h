// The process environment as a map: the one env-to-map helper of every program (flanneld,
// flannelctl, mk-docker-opts.sh, the CNI plugin). Pure: it reads only the array it is given.
#pragma once

#include <map>
#include <string>

namespace flannel {

// NAME=VALUE entries of `envp` (null-terminated, e.g. `environ`); entries without '=' or with an
// empty name are ignored; for a name defined twice the first definition wins, as getenv() does.
std::map<std::string, std::string> environment_map(const char* const* envp);

}  // namespace flannel
