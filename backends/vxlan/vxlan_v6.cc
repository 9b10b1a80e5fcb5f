// The IPv6 half of the vxlan backend (vxlan.h, facts §2.6): the flannel-v6.<VNI> device and,
// per peer with an IPv6Subnet, its neighbour, FDB entry and onlink route. The requests go into
// the same NetlinkBatch as the IPv4 ones (same tag per peer), so a peer's failure in either
// family is reported once and both halves are rolled back together.
#include <linux/neighbour.h>

#include "backends/netlink/batch.h"
#include "backends/vxlan/vxlan.h"

namespace flannel {

namespace {

constexpr int kRtprotBoot = 3;

// The address of an IPv6 subnet itself (the gateway of its onlink route, the /128 on the
// device), as flannel's IP6Net.IP.
IP6 subnet_addr(const IP6Net& n) { return n.network().ip; }

}  // namespace

void VxlanBackend::setup6() {
  name6_ = "flannel-v6." + std::to_string(vx_.vni);
  if (name6_.size() > 15) {  // IFNAMSIZ - 1
    throw BackendError("vxlan: VNI " + std::to_string(vx_.vni) + " gives the IPv6 device name " +
                       name6_ + ", longer than the kernel's 15 characters; use a VNI below 10000");
  }
  if (!iface_.ext_v6_addr) {
    throw BackendError("vxlan: EnableIPv6 is set but " + iface_.name +
                       " has no IPv6 address to source the tunnel from; give it one or set "
                       "-public-ipv6");
  }
  try {
    ensure_device6();
    NetlinkSession::disable_accept_ra(name6_);
    auto li = nl_->link_by_index(index6_);
    if (!li) throw BackendError("vxlan: device " + name6_ + " vanished right after setup");
    mac6_ = li->mac;
  } catch (const NetlinkError& e) {
    throw BackendError("vxlan: cannot set up device " + name6_ + ": " + e.what());
  }
}

void VxlanBackend::ensure_device6() {
  VxlanLink want;
  want.name = name6_;
  want.vni = static_cast<uint32_t>(vx_.vni);
  want.link_index = iface_.index;
  want.local6 = *iface_.ext_v6_addr;
  want.port = vx_.port;
  want.gbp = vx_.gbp;
  want.mac = stable_vtep_mac6(vx_.vni, *iface_.ext_v6_addr,
                              iface_.iface_v6_addr.value_or(*iface_.ext_v6_addr));
  want.mtu = mtu6_;

  if (auto existing = nl_->link_by_name(name6_)) {
    std::string why;  // "" = reuse it
    if (existing->kind != "vxlan") {
      why = "it is of kind \"" + existing->kind + "\"";
    } else {
      VxlanLink have = *nl_->vxlan_show(name6_);
      if (have.vni != want.vni) why = "VNI " + std::to_string(have.vni);
      else if (have.link_index > 0 && have.link_index != want.link_index)
        why = "another lower device";
      else if (have.local6 != want.local6)
        why = "local " + (have.local6 ? have.local6->str() : have.local.str());
      else if (have.l2miss) why = "l2miss on";
      else if (have.learning) why = "learning on";
      else if (have.port > 0 && want.port > 0 && have.port != want.port)
        why = "port " + std::to_string(have.port);
      else if (have.gbp != want.gbp) why = std::string("gbp ") + (have.gbp ? "on" : "off");
    }
    if (why.empty()) {
      index6_ = existing->index;
      if (existing->mtu != mtu6_) nl_->link_set_mtu(index6_, mtu6_);
      apply_tx_checksum(index6_, name6_);
      return;
    }
    recreated_because_ = why;
    note("vxlan: re-creating " + name6_ + " (existing device is incompatible: " + why + ")");
    nl_->link_delete(existing->index);
  }
  index6_ = nl_->vxlan_add(want);
  apply_tx_checksum(index6_, name6_);
}

void VxlanBackend::lease_acquired6(const Lease& ours) {
  if (!ours.ipv6_subnet) {
    throw BackendError("vxlan: failed to configure interface " + name6_ +
                       ": IPv6 is enabled but the lease " + ours.subnet.str() + " has no IPv6");
  }
  const IP6Net subnet = ours.ipv6_subnet->network();
  try {
    auto li = nl_->link_by_index(index6_);
    if (!li || li->name != name6_) {  // deleted behind our back since setup()
      ensure_device6();
      NetlinkSession::disable_accept_ra(name6_);
    }
    nl_->ensure_v6_address(index6_, IP6Net{subnet.ip, 128});
    nl_->link_set_up(index6_);
    li = nl_->link_by_index(index6_);
    if (li && li->mac != mac6_) nl_->link_set_address(index6_, mac6_);
  } catch (const NetlinkError& e) {
    throw BackendError("vxlan: cannot configure " + name6_ + " for lease " + subnet.str() + ": " +
                       e.what());
  }
  own6_ = subnet;
  peers6_.erase(subnet);
}

bool VxlanBackend::on_link6(const IP6& addr) {
  try {
    return nl_->route_get(addr).gw == IP6{};
  } catch (const NetlinkError&) { return false; }
}

void VxlanBackend::load_kernel6(KernelView6* kv) {
  for (const auto& n : nl_->neighs6(index6_))
    if (n.state & NUD_PERMANENT) kv->neighs[n.dst] = n.mac;
  for (const auto& f : nl_->fdbs(index6_))
    if ((f.state & NUD_PERMANENT) && f.dst6) kv->fdb.insert({f.mac, *f.dst6});
  for (const auto& r : nl_->routes6())
    if (r.oif == index6_) kv->routes.emplace(r.dst, r);
  kv->loaded = true;
}

void VxlanBackend::queue_add6(const Lease& peer, KernelView6* kv, NetlinkBatch* nb, size_t tag,
                              Undo* undo) {
  const IP6Net subnet = peer.ipv6_subnet->network();
  if (own6_ && subnet == *own6_) return;
  MacAddr mac;
  try {
    if (!peer.attrs.public_ipv6) throw ParseError("the lease has no PublicIPv6");
    mac = decode_vtep_mac(peer.attrs.backend_v6_data);
  } catch (const ParseError& e) {
    ++skipped_;
    note("vxlan: no IPv6 route to peer " + peer.subnet.str() + " / " + subnet.str() + " (" +
         peer.attrs.public_ip.str() + "): " + e.what() + " (BackendV6Data " +
         (peer.attrs.backend_v6_data.empty() ? "absent" : peer.attrs.backend_v6_data) + ")");
    return;
  }
  const IP6 pub = *peer.attrs.public_ipv6;
  const IP6 gw = subnet_addr(subnet);
  std::optional<Peer6> old;
  if (auto it = peers6_.find(subnet); it != peers6_.end()) old = it->second;
  undo->subnet6 = subnet;
  undo->old6 = old;

  if (vx_.direct_routing && on_link6(pub)) {
    nb->route_replace(Route6{subnet, pub, 0, false}, tag);
    if (old && !old->direct) {
      nb->neigh_delete(index6_, gw, tag);
      nb->fdb_delete(index6_, old->mac, old->public_ip, tag);
    }
    undo->added6 = peers6_.insert_or_assign(subnet, Peer6{mac, pub, true}).first->second;
    return;
  }

  auto neigh = kv->loaded ? kv->neighs.find(gw) : kv->neighs.end();
  if (neigh == kv->neighs.end() || neigh->second != mac) nb->neigh_replace(index6_, gw, mac, tag);
  if (!kv->loaded || !kv->fdb.count({mac, pub})) nb->fdb_replace(index6_, mac, pub, tag);
  Route6 want{subnet, gw, index6_, true};
  auto route = kv->loaded ? kv->routes.find(subnet) : kv->routes.end();
  bool route_ok = route != kv->routes.end() && route->second.gw == want.gw &&
                  route->second.oif == want.oif && route->second.onlink &&
                  route->second.protocol == kRtprotBoot;
  if (!route_ok) nb->route_replace(want, tag);
  if (old && !old->direct && (old->mac != mac || old->public_ip != pub))
    nb->fdb_delete(index6_, old->mac, old->public_ip, tag);
  undo->added6 = peers6_.insert_or_assign(subnet, Peer6{mac, pub, false}).first->second;
}

void VxlanBackend::queue_remove6(const Lease& peer, NetlinkBatch* nb, size_t tag) {
  const IP6Net subnet = peer.ipv6_subnet->network();
  std::optional<Peer6> known;
  if (auto it = peers6_.find(subnet); it != peers6_.end()) known = it->second;
  peers6_.erase(subnet);
  std::optional<IP6> pub = peer.attrs.public_ipv6;
  if (!pub && known) pub = known->public_ip;

  bool direct = known ? known->direct : (vx_.direct_routing && pub && on_link6(*pub));
  if (direct) {
    if (pub) nb->route_delete(Route6{subnet, *pub, 0, false}, tag);
    return;
  }
  std::optional<MacAddr> mac;
  try {
    mac = decode_vtep_mac(peer.attrs.backend_v6_data);
  } catch (const ParseError&) {
    if (known) mac = known->mac;
  }
  const IP6 gw = subnet_addr(subnet);
  nb->neigh_delete(index6_, gw, tag);
  if (mac && pub) nb->fdb_delete(index6_, *mac, *pub, tag);
  nb->route_delete(Route6{subnet, gw, index6_, true}, tag);
}

void VxlanBackend::queue_reconcile6(KernelView6* kv, NetlinkBatch* nb, size_t first_tag,
                                    std::vector<std::string>* stale) {
  std::set<IP6> gws;
  std::set<std::pair<MacAddr, IP6>> fdb;
  for (const auto& [subnet, p] : peers6_) {
    if (p.direct) continue;
    gws.insert(subnet_addr(subnet));
    fdb.insert({p.mac, p.public_ip});
  }
  auto tag = [&](std::string what) {
    stale->push_back(std::move(what));
    return first_tag + stale->size() - 1;
  };
  for (const auto& [dst, r] : kv->routes) {
    if (auto it = peers6_.find(dst); it != peers6_.end() && !it->second.direct) continue;
    if (r.protocol != kRtprotBoot || !config_.ipv6_network.contains(dst)) continue;
    nb->route_delete(r, tag("route " + r.str()));
  }
  for (const auto& [ip, mac] : kv->neighs) {
    if (gws.count(ip)) continue;
    nb->neigh_delete(index6_, ip, tag("neighbour " + ip.str()));
  }
  for (const auto& entry : kv->fdb) {
    if (fdb.count(entry) || entry.first.is_zero()) continue;
    nb->fdb_delete(index6_, entry.first, entry.second,
                   tag("fdb entry " + entry.first.str() + " dst " + entry.second.str()));
  }
}

void VxlanBackend::undo6(const Undo& u, NetlinkBatch* cleanup, size_t tag) {
  if (!u.added6) return;
  if (!u.added6->direct) {
    cleanup->neigh_delete(index6_, subnet_addr(u.subnet6), tag);
    cleanup->fdb_delete(index6_, u.added6->mac, u.added6->public_ip, tag);
  }
  if (u.old6) peers6_.insert_or_assign(u.subnet6, *u.old6);
  else peers6_.erase(u.subnet6);
}

}  // namespace flannel
