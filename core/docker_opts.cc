#include "core/docker_opts.h"

namespace flannel {

std::string render_docker_opts(const std::map<std::string, std::string>& env_file,
                               const DockerOptsOptions& options,
                               const std::map<std::string, std::string>& environment) {
  // `. $flannel_env` overlays the file's assignments on the inherited environment.
  std::map<std::string, std::string> vars = environment;
  for (const auto& [k, v] : env_file) vars[k] = v;
  auto get = [&vars](const std::string& name) {
    auto it = vars.find(name);
    return it == vars.end() ? std::string() : it->second;
  };

  const std::string subnet = get("FLANNEL_SUBNET");
  const std::string mtu = get("FLANNEL_MTU");
  const std::string ipmasq = get("FLANNEL_IPMASQ");
  if (!subnet.empty()) vars["DOCKER_OPT_BIP"] = "--bip=" + subnet;
  if (!mtu.empty()) vars["DOCKER_OPT_MTU"] = "--mtu=" + mtu;
  if (!ipmasq.empty() && !options.omit_ipmasq) {
    // Inverted on purpose: when flannel masquerades, docker must not.
    if (ipmasq == "true") vars["DOCKER_OPT_IPMASQ"] = "--ip-masq=false";
    else if (ipmasq == "false") vars["DOCKER_OPT_IPMASQ"] = "--ip-masq=true";
    else throw DockerOptsError("Invalid value of FLANNEL_IPMASQ: " + ipmasq);
  }

  const bool both = !options.individual && !options.combined;
  const bool individual = options.individual || both;
  const bool combined = options.combined || both;

  std::string combined_value = get(options.key);
  if (!combined_value.empty()) combined_value += ' ';

  std::string out;
  // `set | grep DOCKER_OPT_`: every variable whose name contains DOCKER_OPT_, sorted by name.
  for (const auto& [name, value] : vars) {
    if (name.find("DOCKER_OPT_") == std::string::npos) continue;
    if (individual) out += name + "=\"" + value + "\"\n";
    combined_value += " " + value;
  }
  if (combined) out += options.key + "=\"" + combined_value + "\"\n";
  return out;
}

}  // namespace flannel
