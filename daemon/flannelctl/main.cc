// flannelctl: store admin for flannel networks, on etcd or SQLite, with the same store flags as
// flanneld (-store, -etcd-*, -etcd-prefix, and the FLANNELD_* environment).
//
//   flannelctl [flags] config get
//   flannelctl [flags] config set JSON|-          (validated first, same messages as flanneld)
//   flannelctl [flags] subnets list [--json]
//   flannelctl [flags] subnets get SUBNET
//   flannelctl [flags] subnets rm SUBNET
//   flannelctl [flags] reserve SUBNET PUBLIC_IP   (a lease with no TTL)
//   flannelctl cni-config [--name=N] [--cni-version=V] [--subnet-file=P] [--data-dir=P]
//                                                 (a 10-flannel.conflist on stdout; no store)
//   flannelctl [flags] migrate --to=etcdv3|etcdv2|sqlite:PATH [--force]
//                      (copies the config and the reservations to another store)
//
// With the default -store=etcd and nothing written yet, `config set` writes to the v2 keys API
// when it answers and to v3 otherwise (see stores/etcd/detect_store.h); -store=etcdv3 forces v3.
//
// Exit status: 0 done, 1 the store refused or failed, 2 bad usage or bad input.
#include <cstring>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/admission.h"
#include "core/cni_config.h"
#include "core/config.h"
#include "core/flags.h"
#include "core/peer_cache.h"
#include "daemon/common/options.h"
#include "stores/open_store.h"

extern char** environ;

namespace flannel {
namespace {

constexpr const char* kCommands =
    "Commands:\n"
    "  config get\n"
    "  config set [--force] JSON|-  validate and write the network config (- reads stdin;\n"
    "                             --force writes an invalid one anyway)\n"
    "  subnets list [--json]      every lease: subnet, public IP, backend, backend data, expiry;\n"
    "                             then the leases every agent refuses, with the reason\n"
    "  subnets get SUBNET         one lease (SUBNET as 10.5.34.0/24 or 10.5.34.0-24)\n"
    "  subnets rm SUBNET          delete a lease\n"
    "  reserve SUBNET PUBLIC_IP   a lease without TTL for PUBLIC_IP\n"
    "  cni-config [--name=cbr0] [--cni-version=1.0.0] [--subnet-file=/run/flannel/subnet.env]\n"
    "             [--data-dir=/var/lib/cni/flannel]\n"
    "                             print a 10-flannel.conflist (flannel + portmap) for\n"
    "                             /etc/cni/net.d; needs no store\n"
    "  migrate --to=TARGET [--force]\n"
    "                             copy the config and the reservations (leases without TTL) to\n"
    "                             TARGET: etcdv3, etcdv2 (same -etcd-* flags) or sqlite:PATH;\n"
    "                             live leases stay behind (their agents re-create them); an\n"
    "                             existing config in TARGET is kept unless --force\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

LeaseKey parse_subnet_arg(const std::string& text) {
  if (auto net = IP4Net::try_parse(text)) {
    if (net->network().ip != IP4Net::parse_keep_host(text).ip)
      throw UsageError("subnet " + text + " has host bits set; did you mean " + net->str() + "?");
    return *net;
  }
  if (auto key = parse_subnet_key(text); key && subnet_key(*key) == text) return *key;
  throw UsageError("invalid subnet \"" + text +
                   "\": expected A.B.C.D/N, A.B.C.D-N, a dual-stack key "
                   "A.B.C.D-N&IPV6-M, or (get and rm) an IPv6 subnet, e.g. 10.5.34.0/24 or "
                   "10.5.34.0-24&fc00:0:0:1::-64");
}

// `subnets get|rm` argument: an IPv4 subnet or lease key as above, or an IPv6 subnet. A
// dual-stack lease is found by either of its subnets: when the exact key is not in the store,
// the one lease whose IPv4 (or IPv6) subnet matches is used.
LeaseKey resolve_subnet_arg(Store& store, const std::string& text) {
  std::optional<IP6Net> v6;
  std::optional<LeaseKey> key;
  if (auto n = IP6Net::try_parse(text)) {
    // try_parse clears the host bits: compare with the address as written
    if (IP6::try_parse(std::string_view(text).substr(0, text.find('/'))) != n->ip)
      throw UsageError("subnet " + text + " has host bits set; did you mean " + n->network().str() +
                       "?");
    v6 = *n;
  } else {
    key = parse_subnet_arg(text);
    Lease l;
    if (store.get_lease(*key, &l).code != StoreCode::kNotFound || key->ipv6_subnet) return *key;
  }
  LeaseList list;
  Status s = store.list_leases(&list);
  if (!s.ok()) return key ? *key : LeaseKey{kNoIPv4Subnet, v6};
  std::vector<LeaseKey> found;
  for (const auto& l : list.leases) {
    if (v6 ? l.ipv6_subnet == v6 : (l.subnet == key->subnet && l.key().has_ipv4()))
      found.push_back(l.key());
  }
  if (found.size() == 1) return found[0];
  if (found.size() > 1) {
    std::string all;
    for (const auto& k : found) all += (all.empty() ? "" : ", ") + subnet_key(k);
    throw UsageError("several leases hold " + text + " (" + all + "); name one by its key");
  }
  return key ? *key : LeaseKey{kNoIPv4Subnet, v6};
}

std::string expires_in(const Lease& l) {
  if (!l.expiration) return "never";
  if (*l.expiration == kUnknownExpiration) return "unknown";  // etcd v3 list: see store.h
  auto secs =
      std::chrono::duration_cast<std::chrono::seconds>(*l.expiration - Clock::now()).count();
  if (secs < 0) secs = 0;
  std::ostringstream s;
  s << secs / 3600 << "h" << std::setw(2) << std::setfill('0') << (secs / 60) % 60 << "m"
    << std::setw(2) << secs % 60 << "s";
  return s.str();
}

std::string rfc3339(Clock::time_point t) {
  std::time_t tt = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::ordered_json lease_json(const Lease& l) {
  nlohmann::ordered_json j;
  j["subnet"] = l.key().has_ipv4() ? nlohmann::ordered_json(l.subnet.str()) : nullptr;
  if (l.ipv6_subnet) j["ipv6_subnet"] = l.ipv6_subnet->str();
  j["key"] = subnet_key(l.key());
  j["value"] = nlohmann::ordered_json::parse(encode_lease_attrs(l.attrs));
  if (l.expiration && *l.expiration == kUnknownExpiration) {
    j["expiration"] = "unknown";
  } else {
    j["expiration"] = l.expiration ? nlohmann::ordered_json(rfc3339(*l.expiration)) : nullptr;
  }
  j["revision"] = l.revision;
  return j;
}

[[noreturn]] void store_failure(const std::string& what, const Status& s) {
  throw std::runtime_error(what + ": " + to_string(s.code) +
                           (s.message.empty() ? "" : ": " + s.message));
}

int cmd_config(Store& store, const std::vector<std::string>& a) {
  if (a.size() == 2 && a[1] == "get") {
    std::string json;
    Status s = store.get_config(&json);
    if (s.code == StoreCode::kNotFound)
      throw std::runtime_error("no network config in " + store.describe());
    if (!s.ok()) store_failure("reading the config", s);
    std::cout << json << "\n";
    return 0;
  }
  bool force = a.size() == 4 && a[1] == "set" && (a[2] == "--force" || a[2] == "-force");
  if ((a.size() == 3 || force) && a[1] == "set") {
    std::string json = a.back();
    if (json == "-") json.assign(std::istreambuf_iterator<char>(std::cin), {});
    while (!json.empty() && (json.back() == '\n' || json.back() == '\r')) json.pop_back();
    Config c;
    try {
      c = parse_config(json);
    } catch (const ConfigError& e) {
      std::cerr << "flannelctl: invalid network config: " << e.what() << "\n";
      if (!force) return 2;
      std::cerr << "flannelctl: writing it anyway (--force); agents will refuse it until fixed\n";
    }
    Status s = store.set_config(json);
    if (!s.ok()) store_failure("writing the config", s);
    std::cerr << "config written" << (force ? "" : ": " + c.str()) << "\n";
    return 0;
  }
  throw UsageError("usage: config get | config set [--force] JSON|-");
}

// Why every agent (but the lease's own host) refuses a lease, by key: against the config's
// networks, and of overlapping leases the younger (core/admission.h; an agent also refuses
// overlaps with its own subnet and its own address, which only it knows). Empty when the store
// holds no valid config.
std::map<LeaseKey, Refusal> refusals(Store& store, const std::vector<Lease>& leases) {
  std::string json;
  Config config;
  if (!store.get_config(&json).ok()) return {};
  try {
    config = parse_config(json);
  } catch (const ConfigError&) { return {}; }
  PeerCache judge;  // what an agent holding none of these leases would program
  judge.set_rules(AdmissionRules::from_config(config));
  judge.resync(leases);
  std::map<LeaseKey, Refusal> out;
  for (const auto& [key, r] : judge.refused()) out.emplace(key, r.refusal);
  return out;
}

void print_lease_table(const std::vector<Lease>& leases) {
  // The IPv6 columns only when some lease has IPv6: an IPv4-only cluster's table is unchanged.
  const bool v6 = std::any_of(leases.begin(), leases.end(),
                              [](const Lease& l) { return l.ipv6_subnet || l.attrs.public_ipv6; });
  std::cout << std::left << std::setw(20) << "SUBNET";
  if (v6) std::cout << std::setw(26) << "IPV6 SUBNET";
  std::cout << std::setw(17) << "PUBLIC IP";
  if (v6) std::cout << std::setw(26) << "PUBLIC IPV6";
  std::cout << std::setw(10) << "BACKEND" << std::setw(40) << "BACKEND DATA"
            << "EXPIRES IN\n";
  for (const auto& l : leases) {
    std::cout << std::setw(20) << (l.key().has_ipv4() ? l.subnet.str() : "-");
    if (v6) std::cout << std::setw(26) << (l.ipv6_subnet ? l.ipv6_subnet->str() : "-");
    std::cout << std::setw(17) << l.attrs.public_ip.str();
    if (v6) std::cout << std::setw(26) << (l.attrs.public_ipv6 ? l.attrs.public_ipv6->str() : "-");
    std::cout << std::setw(10) << (l.attrs.backend_type.empty() ? "-" : l.attrs.backend_type)
              << std::setw(40) << (l.attrs.backend_data.empty() ? "-" : l.attrs.backend_data)
              << expires_in(l) << "\n";
  }
}

void print_refusals(const std::map<LeaseKey, Refusal>& refused) {
  if (refused.empty()) return;
  std::cout
      << "\nREFUSED by every other agent (never programmed; if no host owns one, remove it with "
         "flannelctl subnets rm KEY):\n";
  for (const auto& [key, r] : refused)
    std::cout << "  " << subnet_key(key) << "  " << refusal_name(r.reason) << ": " << r.detail
              << "\n";
}

int list_subnets(Store& store, bool json) {
  LeaseList list;
  Status s = store.list_leases(&list);
  if (!s.ok()) store_failure("listing subnets", s);
  for (const auto& w : list.warnings)
    std::cerr << "warning: skipped malformed entry: " << w << "\n";
  std::sort(list.leases.begin(), list.leases.end(),
            [](const Lease& x, const Lease& y) { return x.key() < y.key(); });
  const auto refused = refusals(store, list.leases);
  if (!json) {
    print_lease_table(list.leases);
    print_refusals(refused);
    return 0;
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& l : list.leases) {
    out.push_back(lease_json(l));
    if (auto it = refused.find(l.key()); it != refused.end()) {
      out.back()["refused"] = {{"reason", refusal_name(it->second.reason)},
                               {"detail", it->second.detail}};
    }
  }
  std::cout << out.dump(2) << "\n";
  return 0;
}

int cmd_subnets(Store& store, const std::vector<std::string>& a) {
  if (a.size() >= 2 && a[1] == "list" && a.size() <= 3) {
    bool json = a.size() == 3;
    if (json && a[2] != "--json" && a[2] != "-json") throw UsageError("unknown option " + a[2]);
    return list_subnets(store, json);
  }
  if (a.size() == 3 && (a[1] == "get" || a[1] == "rm")) {
    const LeaseKey subnet = resolve_subnet_arg(store, a[2]);
    if (a[1] == "get") {
      Lease l;
      Status s = store.get_lease(subnet, &l);
      if (s.code == StoreCode::kNotFound) throw std::runtime_error("no lease for " + subnet.str());
      if (!s.ok()) store_failure("reading " + subnet.str(), s);
      std::cout << lease_json(l).dump(2) << "\n";
      return 0;
    }
    Status s = store.delete_lease(subnet);
    if (s.code == StoreCode::kNotFound) throw std::runtime_error("no lease for " + subnet.str());
    if (!s.ok()) store_failure("deleting " + subnet.str(), s);
    std::cerr << "deleted " << subnet.str() << "\n";
    return 0;
  }
  throw UsageError("usage: subnets list [--json] | subnets get SUBNET | subnets rm SUBNET");
}

int cmd_reserve(Store& store, const std::vector<std::string>& a) {
  if (a.size() != 3) throw UsageError("usage: reserve SUBNET PUBLIC_IP");
  Lease l;
  const LeaseKey key = parse_subnet_arg(a[1]);
  l.subnet = key.subnet;
  l.ipv6_subnet = key.ipv6_subnet;
  auto ip = IP4::try_parse(a[2]);
  if (!ip)
    throw UsageError("invalid PUBLIC_IP \"" + a[2] +
                     "\": expected an IPv4 address such as 10.0.0.5");
  l.attrs.public_ip = *ip;
  Lease created;
  Status s = store.create_lease(l, std::chrono::seconds(0), &created);
  if (s.code == StoreCode::kConflict)
    throw std::runtime_error(key.str() +
                             " is already leased; remove it first with: flannelctl subnets rm " +
                             subnet_key(key));
  if (!s.ok()) store_failure("reserving " + key.str(), s);
  std::cerr << "reserved " << key.str() << " for " << ip->str() << "\n";
  return 0;
}

// cni-config: the conflist kubelet's runtime reads from /etc/cni/net.d (core/cni_config.h).
int cmd_cni_config(const std::vector<std::string>& a) {
  cni::ConflistOptions o;
  const std::vector<std::pair<std::string, std::string*>> opts{{"name", &o.name},
                                                               {"cni-version", &o.cni_version},
                                                               {"subnet-file", &o.subnet_file},
                                                               {"data-dir", &o.data_dir}};
  for (size_t i = 1; i < a.size(); ++i) {
    std::string arg = a[i];
    size_t dashes = arg.rfind("--", 0) == 0 ? 2 : arg.rfind("-", 0) == 0 ? 1 : 0;
    if (dashes == 0) throw UsageError("cni-config: unexpected argument \"" + arg + "\"");
    arg = arg.substr(dashes);
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    std::string* target = nullptr;
    for (const auto& [n, p] : opts)
      if (n == arg) target = p;
    if (!target) throw UsageError("cni-config: unknown option -" + arg);
    if (!has_value) {
      if (i + 1 >= a.size()) throw UsageError("cni-config: -" + arg + " needs a value");
      value = a[++i];
    }
    *target = value;
  }
  try {
    std::cout << cni::render_conflist(o);
  } catch (const cni::Error& e) { throw UsageError(std::string("cni-config: ") + e.what()); }
  return 0;
}

int cmd_migrate(Store& from, const Options& o, const std::vector<std::string>& a) {
  std::string to;
  bool force = false;
  for (size_t i = 1; i < a.size(); ++i) {
    if (a[i] == "--force" || a[i] == "-force") {
      force = true;
    } else if (a[i].starts_with("--to=") || a[i].starts_with("-to=")) {
      to = a[i].substr(a[i].find('=') + 1);
    } else {
      throw UsageError("unknown migrate option \"" + a[i] + "\"");
    }
  }
  if (to.empty() || to == "etcd") {
    throw UsageError("usage: migrate --to=etcdv3|etcdv2|sqlite:PATH [--force]");
  }
  auto target = open_store(parse_store_spec(to), etcd_options(o), o.etcd_prefix);

  std::string config;
  Status s = from.get_config(&config);
  if (s.code == StoreCode::kNotFound)
    throw std::runtime_error("no network config in " + from.describe() + " to migrate");
  if (!s.ok()) store_failure("reading the config", s);
  std::string existing;
  s = target->get_config(&existing);
  if (s.ok() && !force) {
    throw std::runtime_error(target->describe() + " already has a network config (" + existing +
                             "); nothing was changed. Use --force to overwrite it");
  }
  if (!s.ok() && s.code != StoreCode::kNotFound) store_failure("reading the target's config", s);
  LeaseList list;
  s = from.list_leases(&list);
  if (!s.ok()) store_failure("listing subnets", s);
  for (const auto& w : list.warnings)
    std::cerr << "warning: skipped malformed entry: " << w << "\n";

  s = target->set_config(config);
  if (!s.ok()) store_failure("writing the config to " + target->describe(), s);
  int copied = 0, present = 0, live = 0;
  for (const auto& l : list.leases) {
    if (l.expiration) {
      ++live;
      continue;
    }
    Lease created;
    s = target->create_lease(l, std::chrono::seconds(0), &created);
    if (s.code == StoreCode::kConflict) {
      ++present;
      std::cerr << "reservation " << l.subnet.str()
                << ": already leased in the target, kept as it is\n";
      continue;
    }
    if (!s.ok()) store_failure("copying reservation " + l.subnet.str(), s);
    ++copied;
  }
  std::cerr << "migrated to " << target->describe() << ": config, " << copied << " reservation(s)"
            << (present ? ", " + std::to_string(present) + " already there" : "") << "; " << live
            << " live lease(s) left to be re-created by their agents\n";
  return 0;
}

int run(int argc, char** argv) {
  const std::map<std::string, std::string> env = environment_map(environ);

  Options o;  // reuse flanneld's defaults for the store flags
  FlagSet flags("flannelctl");
  flags.add_string("store", &o.store,
                   "lease store: \"etcd\" (the -etcd-* flags; v2 or v3 API, whichever holds the "
                   "config), \"etcdv2\", \"etcdv3\" or \"sqlite:PATH\"");
  declare_etcd_flags(flags, o);
  std::vector<std::string> args;
  try {
    auto r = flags.parse(argc, argv);
    if (r.help) {
      std::cerr << flags.usage() << kCommands;
      return 0;
    }
    flags.apply_env(env, "FLANNELD");
    args = r.args;
    if (args.empty()) throw UsageError("no command given");
    if (args[0] == "cni-config") return cmd_cni_config(args);
    auto store = open_store(parse_store_spec(o.store), etcd_options(o), o.etcd_prefix);
    if (args[0] == "config") return cmd_config(*store, args);
    if (args[0] == "subnets") return cmd_subnets(*store, args);
    if (args[0] == "reserve") return cmd_reserve(*store, args);
    if (args[0] == "migrate") return cmd_migrate(*store, o, args);
    throw UsageError("unknown command \"" + args[0] + "\"");
  } catch (const FlagError& e) {
    std::cerr << "flannelctl: " << e.what() << "\nRun 'flannelctl -help' for usage.\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "flannelctl: " << e.what() << "\n" << kCommands;
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "flannelctl: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "flannelctl: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace
}  // namespace flannel

int main(int argc, char** argv) { return flannel::run(argc, argv); }
