#include "backends/vxlan/vxlan.h"

#include <linux/neighbour.h>

#include <algorithm>
#include <functional>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "backends/batch_errors.h"
#include "backends/batch_runner.h"
#include "backends/netlink/batch.h"
#include "backends/peer_nexthops.h"
#include "core/json_util.h"

namespace flannel {

namespace {

constexpr int kRtprotBoot = 3;
constexpr int kMaxVni = (1 << 24) - 1;

[[noreturn]] void config_error(const std::string& why) {
  throw BackendError("error decoding VXLAN backend config: " + why);
}

// How Go's encoding/json names a JSON value in an UnmarshalTypeError.
std::string go_kind(const nlohmann::json& v, std::string_view raw) {
  if (v.is_string()) return "string";
  if (v.is_boolean()) return "bool";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "number " + std::string(raw);
}

[[noreturn]] void type_error(const nlohmann::json& v, std::string_view raw, const char* field,
                             const char* type) {
  config_error("json: cannot unmarshal " + go_kind(v, raw) + " into Go struct field ." + field +
               " of type " + type);
}

// A Go int field: an integer literal (no fraction or exponent), null keeps the default.
void decode_int(std::string_view raw, const char* field, int lo, int hi, int* out) {
  using Kind = json_util::IntField::Kind;
  json_util::IntField f = json_util::decode_int_field(raw, lo, hi);
  switch (f.kind) {
    case Kind::kNull: return;
    case Kind::kNotInteger: type_error(nlohmann::json::parse(raw), raw, field, "int");
    case Kind::kOutOfRange:
      config_error(std::string(field) + " " + std::string(raw) + " is out of range (" +
                   std::to_string(lo) + ".." + std::to_string(hi) + ")");
    case Kind::kOk: *out = static_cast<int>(f.value); return;
  }
}

void decode_bool(std::string_view raw, const char* field, bool* out) {
  nlohmann::json v = nlohmann::json::parse(raw);
  if (v.is_null()) return;
  if (!v.is_boolean()) type_error(v, raw, field, "bool");
  *out = v.get<bool>();
}

uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

VxlanConfig decode_vxlan_config(const std::string& backend_json) {
  VxlanConfig cfg;
  if (backend_json.empty()) return cfg;
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(backend_json);
  } catch (const nlohmann::json::parse_error& e) { config_error(json_util::describe(e)); }
  if (doc.is_null()) return cfg;
  if (!doc.is_object()) config_error("expected an object like {\"Type\":\"vxlan\",\"VNI\":1}");
  // Go's decoder: keys match case-insensitively and every match is applied, so the last wins.
  for (const auto& m : json_util::object_members(backend_json)) {
    if (json_util::iequals(m.key, "VNI")) {
      decode_int(m.value, "VNI", 0, kMaxVni, &cfg.vni);
    } else if (json_util::iequals(m.key, "Port")) {
      decode_int(m.value, "Port", 0, 65535, &cfg.port);
    } else if (json_util::iequals(m.key, "GBP")) {
      decode_bool(m.value, "GBP", &cfg.gbp);
    } else if (json_util::iequals(m.key, "DirectRouting")) {
      decode_bool(m.value, "DirectRouting", &cfg.direct_routing);
    }
  }
  return cfg;
}

MacAddr stable_vtep_mac(int vni, IP4 iface_addr, IP4 public_ip) {
  uint64_t h = 14695981039346656037ULL;
  static const char kTag[] = "flannel-vxlan-vtep";
  h = fnv1a(h, kTag, sizeof(kTag) - 1);
  uint32_t words[3] = {static_cast<uint32_t>(vni), iface_addr.value, public_ip.value};
  for (uint32_t w : words) {
    uint8_t b[4] = {uint8_t(w >> 24), uint8_t(w >> 16), uint8_t(w >> 8), uint8_t(w)};
    h = fnv1a(h, b, 4);
  }
  MacAddr m;
  for (int i = 0; i < 6; ++i) m.bytes[i] = static_cast<uint8_t>(h >> (8 * i));
  m.bytes[0] = static_cast<uint8_t>((m.bytes[0] & 0xfc) | 0x02);  // locally administered, unicast
  return m;
}

MacAddr stable_vtep_mac6(int vni, const IP6& local, const IP6& public_ip) {
  uint64_t h = 14695981039346656037ULL;
  static const char kTag[] = "flannel-vxlan-v6-vtep";
  h = fnv1a(h, kTag, sizeof(kTag) - 1);
  uint8_t v[4] = {uint8_t(vni >> 24), uint8_t(vni >> 16), uint8_t(vni >> 8), uint8_t(vni)};
  h = fnv1a(h, v, 4);
  h = fnv1a(h, local.bytes.data(), local.bytes.size());
  h = fnv1a(h, public_ip.bytes.data(), public_ip.bytes.size());
  MacAddr m;
  for (int i = 0; i < 6; ++i) m.bytes[i] = static_cast<uint8_t>(h >> (8 * i));
  m.bytes[0] = static_cast<uint8_t>((m.bytes[0] & 0xfc) | 0x02);  // locally administered, unicast
  return m;
}

MacAddr decode_vtep_mac(const std::string& backend_data) {
  if (backend_data.empty()) throw ParseError("the lease has no BackendData (VtepMAC)");
  nlohmann::json doc = nlohmann::json::parse(backend_data, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) throw ParseError("BackendData " + backend_data + " is not a JSON object");
  std::optional<std::string_view> raw;
  for (const auto& m : json_util::object_members(backend_data)) {
    if (json_util::iequals(m.key, "VtepMAC")) raw = m.value;
  }
  if (!raw) throw ParseError("BackendData " + backend_data + " has no VtepMAC");
  nlohmann::json v = nlohmann::json::parse(*raw);
  if (!v.is_string()) throw ParseError("VtepMAC " + std::string(*raw) + " is not a string");
  return MacAddr::parse(v.get<std::string>());
}

// Why `data` (a lease's BackendData or BackendV6Data, named `field`) gives no usable VtepMAC.
static std::optional<std::string> bad_vtep_mac(const std::string& data, const char* field) {
  try {
    const MacAddr mac = decode_vtep_mac(data);
    if (mac.is_zero() || (mac.bytes[0] & 1))
      return std::string(field) + " VtepMAC " + mac.str() + " is not a unicast MAC address";
  } catch (const std::exception& e) { return std::string(field) + ": " + e.what(); }
  return std::nullopt;
}

// The first batch's dump of what the kernel holds on the device.
struct VxlanBackend::KernelView {
  bool loaded = false;
  std::map<IP4, MacAddr> neighs;          // permanent entries only
  std::set<std::pair<MacAddr, IP4>> fdb;  // permanent entries only
  std::map<IP4Net, Route4> routes;        // oif == device
  std::map<uint32_t, Nexthop4> nexthops;  // of our id range (any device)
};

VxlanBackend::VxlanBackend(TxChecksum tx_checksum) : tx_checksum_(tx_checksum) {}
VxlanBackend::~VxlanBackend() = default;

Route4 VxlanBackend::overlay_route(const IP4Net& subnet) const {
  Route4 r{subnet, subnet.network().ip, index_, true};
  if (use_nexthops_) r.nhid = kVxlanNexthops.id_for(config_.network, subnet).value_or(0);
  return r;
}

BackendSetup VxlanBackend::setup(const Config& config, const ExternalInterface& iface) {
  vx_ = decode_vxlan_config(config.backend_json);
  config_ = config;
  iface_ = iface;
  name_ = "flannel." + std::to_string(vx_.vni);
  if (name_.size() > 15) {  // IFNAMSIZ - 1
    throw BackendError("vxlan: VNI " + std::to_string(vx_.vni) + " gives the device name " + name_ +
                       ", longer than the kernel's 15 characters; use a VNI below 10000000");
  }
  mtu_ = iface.mtu - kEncapOverhead;
  decide_tx_checksum();
  if (!config.enable_ipv4 && !config.enable_ipv6)
    throw BackendError("vxlan: neither EnableIPv4 nor EnableIPv6 is set; enable at least one");
  mtu6_ = iface.mtu - kEncapOverhead6;
  if (config.enable_ipv6 && mtu6_ < 1280) {
    throw BackendError("vxlan: the MTU of " + iface.name + " (" + std::to_string(iface.mtu) +
                       ") leaves " + std::to_string(mtu6_) +
                       " bytes after the 70-byte VXLAN-over-IPv6 encapsulation; IPv6 needs at "
                       "least 1280");
  }
  if (mtu_ < 68) {
    throw BackendError("vxlan: the MTU of " + iface.name + " (" + std::to_string(iface.mtu) +
                       ") leaves " + std::to_string(mtu_) +
                       " bytes after the 50-byte VXLAN encapsulation; IPv4 needs at least 68");
  }
  try {
    nl_ = std::make_unique<NetlinkSession>();
    if (config.enable_ipv4) {
      ensure_device();
      auto li = nl_->link_by_index(index_);
      if (!li) throw BackendError("vxlan: device " + name_ + " vanished right after setup");
      mac_ = li->mac;
    }
  } catch (const NetlinkError& e) {
    throw BackendError("vxlan: cannot set up device " + name_ + ": " + e.what());
  }
  if (config.enable_ipv6) setup6();
  BackendSetup out;
  out.attrs.public_ip = iface.ext_addr;
  out.attrs.backend_type = "vxlan";
  if (config.enable_ipv4) out.attrs.backend_data = "{\"VtepMAC\":\"" + mac_.str() + "\"}";
  if (config.enable_ipv6) {
    out.attrs.public_ipv6 = iface.ext_v6_addr;
    out.attrs.backend_v6_data =
        "{\"VNI\":" + std::to_string(vx_.vni) + ",\"VtepMAC\":\"" + mac6_.str() + "\"}";
  }
  out.mtu = config.enable_ipv6 ? mtu6_ : mtu_;
  return out;
}

void VxlanBackend::ensure_device() {
  VxlanLink want;
  want.name = name_;
  want.vni = static_cast<uint32_t>(vx_.vni);
  want.link_index = iface_.index;
  want.local = iface_.iface_addr;
  want.port = vx_.port;
  want.gbp = vx_.gbp;
  want.mac = stable_vtep_mac(vx_.vni, iface_.iface_addr, iface_.ext_addr);
  want.mtu = mtu_;

  if (auto existing = nl_->link_by_name(name_)) {
    std::string why;  // what makes the existing device unusable; "" = reuse it
    if (existing->kind != "vxlan") {
      why = "it is of kind \"" + existing->kind + "\"";
    } else {
      VxlanLink have = *nl_->vxlan_show(name_);
      if (have.vni != want.vni) why = "VNI " + std::to_string(have.vni);
      else if (have.link_index > 0 && have.link_index != want.link_index)
        why = "another lower device";
      else if (!have.local.is_zero() && have.local != want.local) why = "local " + have.local.str();
      else if (!have.group.is_zero()) why = "group " + have.group.str();
      else if (have.l2miss) why = "l2miss on";
      else if (have.learning) why = "learning on";
      else if (have.port > 0 && want.port > 0 && have.port != want.port)
        why = "port " + std::to_string(have.port);
      else if (have.gbp != want.gbp) why = std::string("gbp ") + (have.gbp ? "on" : "off");
    }
    if (why.empty()) {
      index_ = existing->index;
      // v0.11 never corrected the MTU of a reused device (§7.14).
      if (existing->mtu != mtu_) nl_->link_set_mtu(index_, mtu_);
      apply_tx_checksum(index_, name_);
      return;
    }
    // Incompatible: recreate (v0.11 does the same). The stable MAC makes this keep the address
    // peers know, unless the old device was made by someone else.
    recreated_because_ = why;
    note("vxlan: re-creating " + name_ + " (existing device is incompatible: " + why + ")");
    nl_->link_delete(existing->index);
  }
  index_ = nl_->vxlan_add(want);
  apply_tx_checksum(index_, name_);
}

void VxlanBackend::lease_acquired(const Lease& ours) {
  if (!nl_) throw BackendError("vxlan: lease_acquired() before setup()");
  if (v6()) lease_acquired6(ours);
  if (!v4()) return;
  try {
    auto li = nl_->link_by_index(index_);
    if (!li || li->name != name_) ensure_device();  // deleted behind our back since setup()
    nl_->ensure_v4_address(index_, IP4Net{ours.subnet.network().ip, 32});
    nl_->link_set_up(index_);
    // Re-read after up: something (udev MACAddressPolicy, an operator) may have changed the MAC
    // since we published it. Put back the published one so peers' entries stay right (§7.13).
    li = nl_->link_by_index(index_);
    if (li && li->mac != mac_) nl_->link_set_address(index_, mac_);
  } catch (const NetlinkError& e) {
    throw BackendError("vxlan: cannot configure " + name_ + " for lease " + ours.subnet.str() +
                       ": " + e.what());
  }
  own_ = ours.subnet;
  peers_.erase(ours.subnet);
}

bool VxlanBackend::on_link(IP4 addr) {
  try {
    return nl_->route_get(addr).gw.is_zero();
  } catch (const NetlinkError&) {
    return false;  // unreachable: certainly not on-link
  }
}

void VxlanBackend::queue_add(const Lease& peer, KernelView* kv, NetlinkBatch* nb, size_t tag,
                             Undo* undo) {
  MacAddr mac = decode_vtep_mac(peer.attrs.backend_data);
  const IP4 pub = peer.attrs.public_ip;
  const IP4 gw = peer.subnet.network().ip;
  std::optional<Peer> old;
  if (auto it = peers_.find(peer.subnet); it != peers_.end()) old = it->second;
  undo->subnet = peer.subnet;
  undo->old = old;

  if (vx_.direct_routing && on_link(pub)) {
    nb->route_replace(Route4{peer.subnet, pub, 0, false}, tag);
    if (old && !old->direct) {  // was encapsulated: its ARP and FDB entries are now unused
      nb->neigh_delete(index_, gw, tag);
      nb->fdb_delete(index_, old->mac, old->public_ip, tag);
      if (old->nhid) nb->nexthop_delete(old->nhid, tag);
    }
    undo->added = peers_.insert_or_assign(peer.subnet, Peer{mac, pub, true, 0}).first->second;
    return;
  }

  auto neigh = kv->loaded ? kv->neighs.find(gw) : kv->neighs.end();
  if (neigh == kv->neighs.end() || neigh->second != mac) nb->neigh_replace(index_, gw, mac, tag);
  if (!kv->loaded || !kv->fdb.count({mac, pub})) nb->fdb_replace(index_, mac, pub, tag);
  Route4 want = overlay_route(peer.subnet);
  if (want.nhid) {
    Nexthop4 nh{want.nhid, want.gw, want.oif, true};
    auto it = kv->loaded ? kv->nexthops.find(nh.id) : kv->nexthops.end();
    if (it == kv->nexthops.end() || !same_nexthop(it->second, nh)) nb->nexthop_replace(nh, tag);
  }
  auto route = kv->loaded ? kv->routes.find(peer.subnet) : kv->routes.end();
  bool route_ok = route != kv->routes.end() && route->second.nhid == want.nhid &&
                  route->second.gw == want.gw && route->second.oif == want.oif &&
                  route->second.onlink && route->second.protocol == kRtprotBoot;
  if (!route_ok) nb->route_replace(want, tag);
  // v0.11 left the old FDB entry behind when a subnet's MAC or PublicIP changed (§7.11).
  if (old && !old->direct && (old->mac != mac || old->public_ip != pub))
    nb->fdb_delete(index_, old->mac, old->public_ip, tag);
  undo->added =
      peers_.insert_or_assign(peer.subnet, Peer{mac, pub, false, want.nhid}).first->second;
}

void VxlanBackend::queue_remove(const Lease& peer, NetlinkBatch* nb, size_t tag) {
  const IP4 pub = peer.attrs.public_ip;
  const IP4 gw = peer.subnet.network().ip;
  std::optional<Peer> known;
  if (auto it = peers_.find(peer.subnet); it != peers_.end()) known = it->second;
  peers_.erase(peer.subnet);

  bool direct = known ? known->direct : (vx_.direct_routing && on_link(pub));
  if (direct) {
    nb->route_delete(Route4{peer.subnet, pub, 0, false}, tag);
    return;
  }
  std::optional<MacAddr> mac;
  try {
    mac = decode_vtep_mac(peer.attrs.backend_data);
  } catch (const ParseError&) {
    if (known) mac = known->mac;
  }
  nb->neigh_delete(index_, gw, tag);
  if (mac) nb->fdb_delete(index_, *mac, pub, tag);
  // Both route forms: an inline route (fallback, or left by v0.11) is matched by gw and oif; a
  // route through our nexthop goes with its nexthop.
  Route4 inline_route = overlay_route(peer.subnet);
  uint32_t nhid = inline_route.nhid ? inline_route.nhid : (known ? known->nhid : 0);
  inline_route.nhid = 0;
  nb->route_delete(inline_route, tag);
  if (nhid) nb->nexthop_delete(nhid, tag);
}

void VxlanBackend::queue_reconcile(KernelView* kv, NetlinkBatch* nb, size_t first_tag,
                                   std::vector<std::string>* stale) {
  std::set<IP4> gws;
  std::set<std::pair<MacAddr, IP4>> fdb;
  std::set<uint32_t> ids;
  for (const auto& [subnet, p] : peers_) {
    if (p.direct) continue;
    gws.insert(subnet.network().ip);
    fdb.insert({p.mac, p.public_ip});
    if (p.nhid) ids.insert(p.nhid);
  }
  auto tag = [&](std::string what) {
    stale->push_back(std::move(what));
    return first_tag + stale->size() - 1;
  };
  for (const auto& [dst, r] : kv->routes) {
    if (auto it = peers_.find(dst); it != peers_.end() && !it->second.direct) continue;
    if (r.protocol != kRtprotBoot || !config_.network.contains(dst)) continue;
    nb->route_delete(r, tag("route " + r.str()));
  }
  for (const auto& [ip, mac] : kv->neighs) {
    if (gws.count(ip)) continue;
    nb->neigh_delete(index_, ip, tag("neighbour " + ip.str()));
  }
  for (const auto& entry : kv->fdb) {
    if (fdb.count(entry) || entry.first.is_zero()) continue;
    nb->fdb_delete(index_, entry.first, entry.second,
                   tag("fdb entry " + entry.first.str() + " dst " + entry.second.str()));
  }
  for (const auto& [id, nh] : kv->nexthops) {
    if (ids.count(id)) continue;
    nb->nexthop_delete(id, tag("nexthop " + nh.str()));
  }
}

void VxlanBackend::sync(const std::vector<Lease>& peers) {
  if (!nl_) throw BackendError("vxlan: sync() before setup()");
  peers_.clear();
  peers6_.clear();
  std::vector<PeerEvent> batch;
  batch.reserve(peers.size());
  for (const auto& p : peers) batch.push_back({PeerEvent::Type::kAdded, p});
  apply_batch(batch, true);
}

void VxlanBackend::apply(const std::vector<PeerEvent>& batch) {
  if (!nl_) throw BackendError("vxlan: apply() before setup()");
  apply_batch(batch, false);
}

void VxlanBackend::choose_route_form(bool nexthop_dump_ok, const std::string& why) {
  if (form_chosen_) return;
  form_chosen_ = true;
  use_nexthops_ = false;
  if (!nexthop_objects_enabled_by_env()) {
    note(
        "vxlan: nexthop objects disabled by FLANNEL_NEXTHOP_OBJECTS; routes use inline "
        "gateways");
  } else if (!nexthop_dump_ok) {
    note("vxlan: the kernel refuses nexthop objects (" + why + "); routes use inline gateways");
  } else {
    use_nexthops_ = true;
  }
}

void VxlanBackend::apply_batch(const std::vector<PeerEvent>& batch, bool full) {
  BatchRunner run(*nl_, batch, "vxlan", [this](const std::string& line) { note(line); });
  KernelView kv;
  KernelView6 kv6;
  read_kernel(full, &kv, &kv6, &run.errors());
  std::vector<Undo> undo(batch.size());
  skipped_ +=
      run.queue_peers([&](size_t i) { queue_peer(batch[i], i, &kv, &kv6, &undo[i], &run); });
  if (full && kv.loaded) queue_reconcile(&kv, &run.requests(), run.first_stale_tag(), run.stale());
  if (full && kv6.loaded)
    queue_reconcile6(&kv6, &run.requests(), run.first_stale_tag(), run.stale());
  // Entries of refused peers are taken out in a batch of their own, after the first is committed.
  NetlinkBatch cleanup(*nl_);
  run.commit([&](size_t i) {
    if (batch[i].type == PeerEvent::Type::kAdded) undo_peer(undo[i], &cleanup, i);
  });
  for (const auto& f : cleanup.commit())
    run.errors().add(batch[f.tag], "cleaning up after the failure: " + f.message());
  reconciled_ += run.stale_removed().size();
  run.finish();
}

// What the devices hold. The first pass also decides between nexthop objects and inline
// gateways. A device that cannot be read is a failure of the batch, not of the whole call: the
// peers are still written (without comparing) and no stale entry is removed.
void VxlanBackend::read_kernel(bool full, KernelView* kv, KernelView6* kv6, BatchErrors* errors) {
  if (v4() && (full || !form_chosen_)) {
    try {
      kv->nexthops = owned_nexthops(*nl_, kVxlanNexthops);
      choose_route_form(true, "");
    } catch (const NetlinkError& e) { choose_route_form(false, e.what()); }
  }
  if (full && v6()) {
    try {
      load_kernel6(kv6);
    } catch (const NetlinkError& e) {
      errors->add(std::string("reading the state of ") + name6_ + ": " + e.what());
    }
  }
  if (full && v4()) {
    try {
      load_kernel(kv);
    } catch (const NetlinkError& e) {
      errors->add(std::string("reading the state of ") + name_ + ": " + e.what());
    }
  }
}

// A sync reads what the device holds once, so entries that are already right are not rewritten
// (a restart changes nothing) and stale ones can go.
void VxlanBackend::load_kernel(KernelView* kv) {
  for (const auto& n : nl_->neighs4(index_))
    if (n.state & NUD_PERMANENT) kv->neighs[n.dst] = n.mac;
  for (const auto& f : nl_->fdbs(index_))
    if ((f.state & NUD_PERMANENT) && !f.dst.is_zero()) kv->fdb.insert({f.mac, f.dst});
  for (const auto& r : nl_->routes4())
    if (r.oif == index_) kv->routes.emplace(r.dst, r);
  kv->loaded = true;
}

void VxlanBackend::queue_peer(const PeerEvent& ev, size_t tag, KernelView* kv, KernelView6* kv6,
                              Undo* undo, BatchRunner* run) {
  const Lease& peer = ev.lease;
  const bool added = ev.type == PeerEvent::Type::kAdded;
  if (v4()) {
    try {
      if (added) queue_add(peer, kv, &run->requests(), tag, undo);
      else queue_remove(peer, &run->requests(), tag);
    } catch (const std::exception& e) { run->fail(tag, e.what()); }
  }
  if (v6() && peer.ipv6_subnet) {
    try {
      if (added) queue_add6(peer, kv6, &run->requests(), tag, undo);
      else queue_remove6(peer, &run->requests(), tag);
    } catch (const std::exception& e) {
      // One reason per peer: the IPv4 one, when both failed.
      if (!run->failed(tag))
        run->fail(tag, "IPv6 subnet " + peer.ipv6_subnet->str() + ": " + e.what());
    }
  }
}

// A half-programmed peer: take out what this batch may have added, forget it as v0.11 does.
void VxlanBackend::undo_peer(const Undo& u, NetlinkBatch* cleanup, size_t tag) {
  undo6(u, cleanup, tag);
  if (!u.added) return;
  if (!u.added->direct) {
    IP4 gw = u.subnet.network().ip;
    cleanup->neigh_delete(index_, gw, tag);
    cleanup->fdb_delete(index_, u.added->mac, u.added->public_ip, tag);
    if (u.added->nhid) cleanup->nexthop_delete(u.added->nhid, tag);
  }
  if (u.old) peers_.insert_or_assign(u.subnet, *u.old);
  else peers_.erase(u.subnet);
}

std::optional<std::string> VxlanBackend::refuse_peer_data(const Lease& peer) const {
  if (peer.attrs.backend_type != "vxlan") return std::nullopt;  // skipped with a note
  if (peer.key().has_ipv4() && config_.enable_ipv4) {
    if (auto why = bad_vtep_mac(peer.attrs.backend_data, "BackendData")) return why;
  }
  if (peer.ipv6_subnet && config_.enable_ipv6)
    return bad_vtep_mac(peer.attrs.backend_v6_data, "BackendV6Data");
  return std::nullopt;
}

std::optional<std::string> VxlanBackend::device_gone() const {
  if (!nl_) return std::nullopt;
  auto gone = [&](int index, const std::string& name) -> std::optional<std::string> {
    if (index <= 0) return std::nullopt;
    try {
      auto li = nl_->link_by_index(index);
      if (li && li->name == name) return std::nullopt;
    } catch (const NetlinkError&) {
      return std::nullopt;  // cannot tell: the next look will
    }
    return "device " + name + " was deleted";
  };
  if (v4())
    if (auto why = gone(index_, name_)) return why;
  if (v6()) return gone(index6_, name6_);
  return std::nullopt;
}

}  // namespace flannel
