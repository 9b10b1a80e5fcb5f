#include "core/cni_config.h"

#include <algorithm>
#include <charconv>

#include "core/json_util.h"
#include "core/subnet_env.h"

namespace flannel::cni {
namespace {

using nlohmann::json;

// The value as the user wrote it, short enough for a one-line message.
std::string shown(const json& v) {
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

std::string type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a number";
  }
}

[[noreturn]] void bad_key(const std::string& key, const json& v, const std::string& want) {
  throw Error(kInvalidConfig, "invalid network config: \"" + key + "\" is " + shown(v) + " (" +
                                  type_name(v) + "), expected " + want);
}

std::string get_string(const json& obj, const std::string& key, const std::string& fallback) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (!it->is_string()) bad_key(key, *it, "a string");
  return it->get<std::string>();
}

std::string get_path(const json& obj, const std::string& key, const std::string& fallback) {
  std::string p = get_string(obj, key, fallback);
  if (p.empty() || p[0] != '/')
    throw Error(kInvalidConfig, "invalid network config: \"" + key + "\" is " + shown(json(p)) +
                                    ", expected an absolute path such as " + fallback);
  return p;
}

json get_object(const json& obj, const std::string& key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  if (!it->is_object()) bad_key(key, *it, "an object");
  return *it;
}

void validate_routes(const json& ipam) {
  auto it = ipam.find("routes");
  if (it == ipam.end()) return;
  if (!it->is_array()) bad_key("ipam.routes", *it, "an array of {\"dst\": CIDR}");
  for (const auto& r : *it) {
    if (!r.is_object() || !r.contains("dst") || !r["dst"].is_string())
      bad_key("ipam.routes", r, "each route an object with a string \"dst\" such as \"0.0.0.0/0\"");
    const std::string dst = r["dst"].get<std::string>();
    if (!IP4Net::try_parse(dst) && !IP6Net::try_parse(dst))
      bad_key("ipam.routes[].dst", r["dst"], "a CIDR such as 10.5.0.0/16");
    if (r.contains("gw") && !r["gw"].is_string())
      bad_key("ipam.routes[].gw", r["gw"], "an IP address string");
  }
}

}  // namespace

const std::vector<std::string>& supported_versions() {
  static const std::vector<std::string> v{"0.3.0", "0.3.1", "0.4.0", "1.0.0"};
  return v;
}

bool version_supported(std::string_view v) {
  const auto& s = supported_versions();
  return std::find(s.begin(), s.end(), v) != s.end();
}

bool version_has_check(std::string_view v) { return v == "0.4.0" || v == "1.0.0"; }

static std::string versions_list() {
  std::string s;
  for (const auto& v : supported_versions()) s += (s.empty() ? "" : ", ") + v;
  return s;
}

NetConf parse_netconf(std::string_view text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(kDecodeFailure, "network config on stdin is not JSON: " + json_util::describe(e));
  }
  if (!j.is_object())
    throw Error(kDecodeFailure,
                "network config on stdin is " + type_name(j) + ", expected a JSON object");

  NetConf c;
  auto v = j.find("cniVersion");
  if (v == j.end() || !v->is_string() || !version_supported(v->get<std::string>()))
    throw Error(kIncompatibleVersion, "incompatible CNI versions: config has cniVersion " +
                                          (v == j.end() ? std::string("(missing)") : shown(*v)) +
                                          ", this plugin supports " + versions_list());
  c.cni_version = v->get<std::string>();
  c.name = get_string(j, "name", "");
  if (c.name.empty())
    throw Error(kInvalidConfig,
                "invalid network config: \"name\" is missing or empty (the runtime "
                "copies it from the conflist's \"name\")");
  get_string(j, "type", "");
  c.subnet_file = get_path(j, "subnetFile", kDefaultSubnetFile);
  c.data_dir = get_path(j, "dataDir", kDefaultDataDir);

  json d = get_object(j, "delegate");
  if (!d.is_null()) {
    if (d.contains("type") && !d["type"].is_string())
      bad_key("delegate.type", d["type"], "a string such as \"bridge\"");
    if (d.contains("type") && d["type"].get<std::string>().find('/') != std::string::npos)
      bad_key("delegate.type", d["type"], "a plugin name in CNI_PATH, not a path");
    if (d.contains("name"))
      throw Error(kInvalidConfig, "invalid network config: \"delegate\" must not have \"name\" (" +
                                      shown(d["name"]) +
                                      "); flannel sets it from the network name");
    if (d.contains("ipam"))
      throw Error(kInvalidConfig,
                  "invalid network config: \"delegate\" must not have \"ipam\"; put "
                  "IPAM options in the top-level \"ipam\", flannel fills in the ranges");
    c.delegate = d;
  }
  c.ipam = get_object(j, "ipam");
  if (!c.ipam.is_null()) {
    if (c.ipam.contains("type") && !c.ipam["type"].is_string())
      bad_key("ipam.type", c.ipam["type"], "a string such as \"host-local\"");
    for (const char* k : {"ranges", "subnet"})
      if (c.ipam.contains(k))
        throw Error(kInvalidConfig,
                    std::string("invalid network config: \"ipam.") + k + "\" is " +
                        shown(c.ipam[k]) +
                        ", but flannel sets the range from FLANNEL_SUBNET; remove it");
    validate_routes(c.ipam);
  }
  c.runtime_config = get_object(j, "runtimeConfig");
  c.prev_result = get_object(j, "prevResult");
  return c;
}

FlannelEnv parse_flannel_env(std::string_view text, const std::string& path) {
  std::map<std::string, std::string> kv;
  try {
    kv = parse_env_file(text);
  } catch (const ParseError& e) {
    throw Error(kInvalidConfig, path + " is not a subnet.env file: " + e.what());
  }
  FlannelEnv env;
  auto bad = [&](const std::string& key, const std::string& want) {
    throw Error(kInvalidConfig, path + ": " + key + "=" + kv[key] + " is not " + want);
  };
  auto get = [&](const std::string& key) -> const std::string* {
    auto it = kv.find(key);
    return it == kv.end() || it->second.empty() ? nullptr : &it->second;
  };
  if (auto s = get("FLANNEL_NETWORK")) {
    env.network = IP4Net::try_parse(*s);
    if (!env.network) bad("FLANNEL_NETWORK", "an IPv4 CIDR such as 10.5.0.0/16");
  }
  if (auto s = get("FLANNEL_SUBNET")) {
    env.subnet = IP4Net::try_parse(*s);
    if (!env.subnet) bad("FLANNEL_SUBNET", "an IPv4 CIDR such as 10.5.34.1/24");
  }
  if (auto s = get("FLANNEL_IPV6_NETWORK")) {
    env.ip6_network = IP6Net::try_parse(*s);
    if (!env.ip6_network) bad("FLANNEL_IPV6_NETWORK", "an IPv6 CIDR");
  }
  if (auto s = get("FLANNEL_IPV6_SUBNET")) {
    env.ip6_subnet = IP6Net::try_parse(*s);
    if (!env.ip6_subnet) bad("FLANNEL_IPV6_SUBNET", "an IPv6 CIDR");
  }
  const std::string* mtu = get("FLANNEL_MTU");
  if (mtu) {
    int n = 0;
    auto [p, ec] = std::from_chars(mtu->data(), mtu->data() + mtu->size(), n);
    if (ec != std::errc() || p != mtu->data() + mtu->size() || n < 68 || n > 65535)
      bad("FLANNEL_MTU", "an MTU (68..65535)");
    env.mtu = n;
  }
  const std::string* masq = get("FLANNEL_IPMASQ");
  if (masq) {
    if (*masq != "true" && *masq != "false") bad("FLANNEL_IPMASQ", "true or false");
    env.ipmasq = *masq == "true";
  }
  std::vector<std::string> missing;
  if (!env.network && !env.ip6_network) missing.push_back("FLANNEL_NETWORK");
  if (!env.subnet && !env.ip6_subnet) missing.push_back("FLANNEL_SUBNET");
  if (!mtu) missing.push_back("FLANNEL_MTU");
  if (!masq) missing.push_back("FLANNEL_IPMASQ");
  if (env.subnet && !env.network) missing.push_back("FLANNEL_NETWORK");
  if (env.ip6_subnet && !env.ip6_network) missing.push_back("FLANNEL_IPV6_NETWORK");
  if (!missing.empty()) {
    std::string m;
    for (const auto& k : missing)
      if (m.find(k) == std::string::npos) m += (m.empty() ? "" : ", ") + k;
    throw Error(kInvalidConfig,
                path + " is missing " + m +
                    " (flanneld writes FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_MTU "
                    "and FLANNEL_IPMASQ; was the file written by something else?)");
  }
  return env;
}

nlohmann::json delegate_config(const NetConf& conf, const FlannelEnv& env) {
  json d = conf.delegate.is_object() ? conf.delegate : json::object();
  d["name"] = conf.name;
  if (!d.contains("type")) d["type"] = "bridge";
  if (!d.contains("ipMasq"))
    d["ipMasq"] = !env.ipmasq;  // flanneld not masquerading: the bridge does
  if (!d.contains("mtu")) d["mtu"] = env.mtu;
  if (d["type"] == "bridge" && !d.contains("isGateway")) d["isGateway"] = true;
  d["cniVersion"] = conf.cni_version;
  if (!conf.runtime_config.is_null()) d["runtimeConfig"] = conf.runtime_config;

  json ipam = conf.ipam.is_object() ? conf.ipam : json::object();
  if (!ipam.contains("type")) ipam["type"] = "host-local";
  json ranges = json::array();
  if (env.subnet) ranges.push_back(json::array({json{{"subnet", env.subnet->network().str()}}}));
  if (env.ip6_subnet)
    ranges.push_back(json::array({json{{"subnet", env.ip6_subnet->network().str()}}}));
  ipam["ranges"] = ranges;
  json routes = ipam.contains("routes") ? ipam["routes"] : json::array();
  // With a gateway bridge the route to the network goes via the bridge address, which host-local
  // makes the subnet's first host. Saying so ("gw") changes nothing in the pod (bridge adds the
  // route via the gateway either way) but lets bridge's CHECK find the route: it looks a route
  // up by dst and gw, and a gw-less route is never found (the public plugin writes none, and
  // has no CHECK).
  const bool via_bridge = d["type"] == "bridge" && d["isGateway"] == true;
  auto route = [&](const std::string& dst, const std::string& gw) {
    json r{{"dst", dst}};
    if (via_bridge) r["gw"] = gw;
    return r;
  };
  if (env.network)
    routes.push_back(
        route(env.network->str(), env.subnet ? env.subnet->network().first_host().str() : ""));
  if (env.ip6_network)
    routes.push_back(route(env.ip6_network->str(),
                           env.ip6_subnet ? env.ip6_subnet->network().first_host().str() : ""));
  ipam["routes"] = routes;
  d["ipam"] = ipam;
  return d;
}

nlohmann::json check_config(std::string_view saved, const NetConf& conf) {
  json d = json::parse(saved, nullptr, /*allow_exceptions=*/false);
  if (!d.is_object())
    throw Error(kDecodeFailure, "the delegate config saved at ADD is not a JSON object");
  if (conf.prev_result.is_null())
    throw Error(kInvalidConfig,
                "CHECK needs \"prevResult\" (the runtime passes the result of ADD)");
  d["prevResult"] = conf.prev_result;
  if (!conf.runtime_config.is_null()) d["runtimeConfig"] = conf.runtime_config;
  return d;
}

nlohmann::json convert_result(const nlohmann::json& result, const std::string& version) {
  if (!result.is_object())
    throw Error(kInternal, "delegate result is " + type_name(result) + ", expected an object");
  json r = result;
  r["cniVersion"] = version;
  if (r.contains("ips")) {
    if (!r["ips"].is_array()) throw Error(kInternal, "delegate result: \"ips\" is not an array");
    for (auto& ip : r["ips"]) {
      if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string())
        throw Error(kInternal,
                    "delegate result: an \"ips\" entry has no \"address\": " + shown(ip));
      const std::string a = ip["address"].get<std::string>();
      if (version == "1.0.0") {
        ip.erase("version");
      } else {
        ip["version"] = a.find(':') == std::string::npos ? "4" : "6";
      }
    }
  }
  return r;
}

std::string error_json(const Error& e, const std::string& version) {
  json j;
  j["cniVersion"] = version_supported(version) ? version : "1.0.0";
  j["code"] = e.code();
  j["msg"] = e.what();
  if (!e.details().empty()) j["details"] = e.details();
  return j.dump();
}

std::string version_json(const std::string& requested) {
  json j;
  j["cniVersion"] = version_supported(requested) ? requested : "1.0.0";
  j["supportedVersions"] = supported_versions();
  return j.dump();
}

bool valid_container_id(std::string_view id) {
  if (id.empty()) return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(id[0])) return false;
  return std::all_of(id.begin(), id.end(),
                     [&](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

std::string render_conflist(const ConflistOptions& o) {
  if (!version_supported(o.cni_version))
    throw Error(kInvalidConfig, "cniVersion \"" + o.cni_version +
                                    "\" is not supported; use one of " + versions_list());
  if (o.name.empty()) throw Error(kInvalidConfig, "the network name must not be empty");
  for (const auto* p : {&o.subnet_file, &o.data_dir})
    if (p->empty() || (*p)[0] != '/')
      throw Error(kInvalidConfig, "\"" + *p + "\" is not an absolute path");
  nlohmann::ordered_json flannel;
  flannel["type"] = "flannel";
  if (o.subnet_file != kDefaultSubnetFile) flannel["subnetFile"] = o.subnet_file;
  if (o.data_dir != kDefaultDataDir) flannel["dataDir"] = o.data_dir;
  flannel["delegate"] = {{"hairpinMode", true}, {"isDefaultGateway", true}};
  nlohmann::ordered_json portmap;
  portmap["type"] = "portmap";
  portmap["capabilities"] = {{"portMappings", true}};
  nlohmann::ordered_json list;
  list["name"] = o.name;
  list["cniVersion"] = o.cni_version;
  list["plugins"] = nlohmann::ordered_json::array({flannel, portmap});
  return list.dump(2) + "\n";
}

}  // namespace flannel::cni
