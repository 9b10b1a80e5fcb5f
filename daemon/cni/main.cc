// flannel-cni: the flannel CNI plugin (installed as `flannel` in the CNI bin dir, e.g.
// /usr/lib/cni). kubelet's runtime runs it with CNI_COMMAND and the other CNI_* variables and the
// network config on stdin; it reads flanneld's subnet.env and delegates to bridge + host-local.
// See daemon/cni/plugin.h for the commands and core/cni_config.h for the config it derives.
#include <unistd.h>

#include <iostream>
#include <iterator>
#include <map>
#include <string>

#include "core/environment.h"
#include "daemon/cni/plugin.h"

extern char** environ;

int main() {
  const std::map<std::string, std::string> env = flannel::environment_map(environ);
  std::string input;
  // VERSION may come without stdin; every other command has the config there.
  auto cmd = env.find("CNI_COMMAND");
  if (cmd == env.end() || cmd->second != "VERSION" || !isatty(0))
    input.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  int rc = flannel::cni::run_cni_plugin(env, input, std::cout, std::cerr);
  std::cout.flush();
  return rc;
}
