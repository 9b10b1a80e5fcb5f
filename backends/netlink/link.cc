// `ip link`, `ip addr` and `ip link ... type vxlan` over libnl-route-3.
#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <netlink/route/link/vxlan.h>

#include <fstream>

#include "backends/netlink/internal.h"
#include "backends/netlink/netlink.h"

namespace flannel {

using namespace nl;

namespace {

LinkInfo to_link_info(rtnl_link* link) {
  LinkInfo li;
  li.index = rtnl_link_get_ifindex(link);
  const char* name = rtnl_link_get_name(link);
  li.name = name ? name : "";
  const char* kind = rtnl_link_get_type(link);
  li.kind = kind ? kind : "";
  li.mtu = static_cast<int>(rtnl_link_get_mtu(link));
  li.flags = rtnl_link_get_flags(link);
  li.mac = to_mac(rtnl_link_get_addr(link));
  return li;
}

// The link as the kernel has it (by index, or by name when index is 0); null when absent.
LinkPtr get_link(nl_sock* sock, int index, const std::string& name, const std::string& what) {
  rtnl_link* raw = nullptr;
  int err = rtnl_link_get_kernel(sock, index, index ? nullptr : name.c_str(), &raw);
  if (err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND) return nullptr;
  if (err < 0) fail(what, err);
  return LinkPtr(raw);
}

// Applies `change` (built by the caller) to link `index` (RTM_NEWLINK, falling back to SETLINK).
void change_link(nl_sock* sock, int index, rtnl_link* change, const std::string& what) {
  LinkPtr orig(rtnl_link_alloc());
  if (!orig) fail_alloc(what);
  rtnl_link_set_ifindex(orig.get(), index);
  if (int err = rtnl_link_change(sock, orig.get(), change, 0); err < 0) fail(what, err);
}

LinkPtr alloc_link(const std::string& what) {
  LinkPtr l(rtnl_link_alloc());
  if (!l) fail_alloc(what);
  return l;
}

}  // namespace

std::vector<LinkInfo> NetlinkSession::links() {
  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sock_, AF_UNSPEC, &raw); err < 0) fail("link show", err);
  CachePtr cache(raw);
  std::vector<LinkInfo> out;
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o))
    out.push_back(to_link_info(reinterpret_cast<rtnl_link*>(o)));
  return out;
}

std::optional<LinkInfo> NetlinkSession::link_by_name(const std::string& name) {
  LinkPtr link = get_link(sock_, 0, name, "link show dev " + name);
  if (!link) return std::nullopt;
  return to_link_info(link.get());
}

std::optional<LinkInfo> NetlinkSession::link_by_index(int index) {
  LinkPtr link = get_link(sock_, index, "", "link show " + dev(index));
  if (!link) return std::nullopt;
  return to_link_info(link.get());
}

void NetlinkSession::link_set_up(int index) {
  std::string what = "link set " + dev(index) + " up";
  LinkPtr change = alloc_link(what);
  rtnl_link_set_flags(change.get(), IFF_UP);
  change_link(sock_, index, change.get(), what);
}

void NetlinkSession::link_set_mtu(int index, int mtu) {
  std::string what = "link set " + dev(index) + " mtu " + std::to_string(mtu);
  if (mtu <= 0) throw NetlinkError("netlink " + what + ": MTU must be positive", NLE_INVAL);
  LinkPtr change = alloc_link(what);
  rtnl_link_set_mtu(change.get(), static_cast<unsigned>(mtu));
  change_link(sock_, index, change.get(), what);
}

void NetlinkSession::link_set_address(int index, const MacAddr& mac) {
  std::string what = "link set " + dev(index) + " address " + mac.str();
  LinkPtr change = alloc_link(what);
  rtnl_link_set_addr(change.get(), make_mac(mac).get());  // takes its own reference
  change_link(sock_, index, change.get(), what);
}

void NetlinkSession::link_delete(int index) {
  std::string what = "link del " + dev(index);
  LinkPtr link = alloc_link(what);
  rtnl_link_set_ifindex(link.get(), index);
  int err = rtnl_link_delete(sock_, link.get());
  if (err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND) return;
  if (err < 0) fail(what, err);
}

int NetlinkSession::link_add(const std::string& name, const std::string& kind, int mtu) {
  std::string what = "link add " + name + " type " + kind;
  LinkPtr link(rtnl_link_alloc());
  if (!link) fail_alloc(what);
  rtnl_link_set_name(link.get(), name.c_str());
  int err = rtnl_link_set_type(link.get(), kind.c_str());
  if (err < 0) fail(what, err);
  if (mtu > 0) rtnl_link_set_mtu(link.get(), static_cast<unsigned>(mtu));
  err = rtnl_link_add(sock_, link.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0) fail(what, err);
  auto created = link_by_name(name);
  if (!created) throw NetlinkError("netlink " + what + ": the link vanished right after creation");
  return created->index;
}

int NetlinkSession::vxlan_add(const VxlanLink& spec) {
  std::string what = "link add " + spec.name + " type vxlan id " + std::to_string(spec.vni);
  LinkPtr link(rtnl_link_vxlan_alloc());
  if (!link) fail_alloc(what);
  rtnl_link_set_name(link.get(), spec.name.c_str());
  auto check = [&](int err) {
    if (err < 0) fail(what, err);
  };
  check(rtnl_link_vxlan_set_id(link.get(), spec.vni));
  if (spec.link_index > 0)
    check(rtnl_link_vxlan_set_link(link.get(), static_cast<uint32_t>(spec.link_index)));
  if (spec.local6) check(rtnl_link_vxlan_set_local(link.get(), make_addr6(*spec.local6).get()));
  else if (!spec.local.is_zero())
    check(rtnl_link_vxlan_set_local(link.get(), make_addr4(spec.local).get()));
  if (!spec.group.is_zero())
    check(rtnl_link_vxlan_set_group(link.get(), make_addr4(spec.group).get()));
  check(rtnl_link_vxlan_set_ttl(link.get(), 0));
  check(rtnl_link_vxlan_set_tos(link.get(), 0));
  check(rtnl_link_vxlan_set_learning(link.get(), spec.learning ? 1 : 0));
  check(rtnl_link_vxlan_set_proxy(link.get(), 0));
  check(rtnl_link_vxlan_set_rsc(link.get(), 0));
  check(rtnl_link_vxlan_set_l2miss(link.get(), spec.l2miss ? 1 : 0));
  check(rtnl_link_vxlan_set_l3miss(link.get(), 0));
  if (spec.port > 0) check(rtnl_link_vxlan_set_port(link.get(), static_cast<uint32_t>(spec.port)));
  if (spec.gbp) check(rtnl_link_vxlan_set_flags(link.get(), RTNL_LINK_VXLAN_F_GBP, 1));
  rtnl_link_set_txqlen(link.get(), 0);
  if (!spec.mac.is_zero()) rtnl_link_set_addr(link.get(), make_mac(spec.mac).get());
  if (spec.mtu > 0) rtnl_link_set_mtu(link.get(), static_cast<unsigned>(spec.mtu));
  check(rtnl_link_add(sock_, link.get(), NLM_F_CREATE | NLM_F_EXCL));
  auto created = link_by_name(spec.name);
  if (!created) throw NetlinkError("netlink " + what + ": the link vanished right after creation");
  return created->index;
}

std::optional<VxlanLink> NetlinkSession::vxlan_show(const std::string& name) {
  std::string what = "link show dev " + name + " (vxlan)";
  LinkPtr link = get_link(sock_, 0, name, what);
  if (!link) return std::nullopt;
  if (!rtnl_link_is_vxlan(link.get())) {
    const char* kind = rtnl_link_get_type(link.get());
    throw NetlinkError(
        "netlink " + what + ": link is of kind \"" + (kind ? kind : "") + "\", not vxlan",
        NLE_OBJ_MISMATCH);
  }
  VxlanLink v;
  v.name = name;
  rtnl_link_vxlan_get_id(link.get(), &v.vni);
  uint32_t u = 0;
  if (rtnl_link_vxlan_get_link(link.get(), &u) == 0) v.link_index = static_cast<int>(u);
  nl_addr* raw = nullptr;
  if (rtnl_link_vxlan_get_local(link.get(), &raw) == 0) {
    AddrPtr a(raw);  // libnl builds a new address for us
    v.local = to_ip4(a.get()).value_or(IP4{});
    v.local6 = to_ip6(a.get());
  }
  raw = nullptr;
  if (rtnl_link_vxlan_get_group(link.get(), &raw) == 0) {
    AddrPtr a(raw);
    v.group = to_ip4(a.get()).value_or(IP4{});
  }
  if (rtnl_link_vxlan_get_port(link.get(), &u) == 0) v.port = static_cast<int>(u);
  if (rtnl_link_vxlan_get_flags(link.get(), &u) == 0) v.gbp = (u & RTNL_LINK_VXLAN_F_GBP) != 0;
  v.learning = rtnl_link_vxlan_get_learning(link.get()) > 0;
  v.l2miss = rtnl_link_vxlan_get_l2miss(link.get()) > 0;
  v.mac = to_mac(rtnl_link_get_addr(link.get()));
  v.mtu = static_cast<int>(rtnl_link_get_mtu(link.get()));
  return v;
}

namespace {

RtAddrPtr make_rtaddr(int index, const IP4Net& addr, const std::string& what) {
  RtAddrPtr a(rtnl_addr_alloc());
  if (!a) fail_alloc(what);
  rtnl_addr_set_ifindex(a.get(), index);
  rtnl_addr_set_family(a.get(), AF_INET);
  if (int err = rtnl_addr_set_local(a.get(), make_addr4(addr.ip, addr.prefix).get()); err < 0)
    fail(what, err);
  rtnl_addr_set_prefixlen(a.get(), addr.prefix);
  return a;
}

RtAddrPtr make_rtaddr6(int index, const IP6Net& addr, const std::string& what) {
  RtAddrPtr a(rtnl_addr_alloc());
  if (!a) fail_alloc(what);
  rtnl_addr_set_ifindex(a.get(), index);
  rtnl_addr_set_family(a.get(), AF_INET6);
  if (int err = rtnl_addr_set_local(a.get(), make_addr6(addr.ip, addr.prefix).get()); err < 0)
    fail(what, err);
  rtnl_addr_set_prefixlen(a.get(), addr.prefix);
  return a;
}

bool link_local(const IP6& ip) { return ip.bytes[0] == 0xfe && (ip.bytes[1] & 0xc0) == 0x80; }

std::string addr6_str(const IP6& ip, int prefix) { return ip.str() + "/" + std::to_string(prefix); }

}  // namespace

void NetlinkSession::addr_add(int index, const IP6Net& addr) {
  std::string what = "addr add " + addr6_str(addr.ip, addr.prefix) + " " + dev(index) + " nodad";
  RtAddrPtr a = make_rtaddr6(index, addr, what);
  // nodad: usable at once as a source (flannel waits out DAD; nothing else answers on the
  // overlay device anyway).
  rtnl_addr_set_flags(a.get(), IFA_F_NODAD);
  if (int err = rtnl_addr_add(sock_, a.get(), 0); err < 0) fail(what, err);
}

void NetlinkSession::addr_delete(int index, const IP6Net& addr) {
  std::string what = "addr del " + addr6_str(addr.ip, addr.prefix) + " " + dev(index);
  RtAddrPtr a = make_rtaddr6(index, addr, what);
  if (int err = rtnl_addr_delete(sock_, a.get(), 0); err < 0) fail(what, err);
}

void NetlinkSession::ensure_v6_address(int index, const IP6Net& addr) {
  std::vector<Addr6Info> existing;
  for (const auto& a : addrs6(index))
    if (!link_local(a.addr)) existing.push_back(a);
  if (existing.size() > 1) {
    std::string list;
    for (auto& a : existing) list += (list.empty() ? "" : ", ") + addr6_str(a.addr, a.prefix);
    throw NetlinkError("link " + std::to_string(index) + " has incompatible IPv6 addresses (" +
                       list + "); remove the additional addresses and try again");
  }
  if (existing.size() == 1) {
    const Addr6Info& cur = existing.front();
    if (cur.addr == addr.ip && cur.prefix == addr.prefix) return;
    addr_delete(index, IP6Net{cur.addr, cur.prefix});
  }
  addr_add(index, addr);
}

void NetlinkSession::disable_accept_ra(const std::string& name) {
  std::string path = "/proc/sys/net/ipv6/conf/" + name + "/accept_ra";
  std::ofstream f(path);
  f << "0\n";
  f.flush();
  if (!f)
    throw NetlinkError("sysctl " + path + " = 0: cannot write (is IPv6 enabled on " + name + "?)");
}

void NetlinkSession::addr_add(int index, const IP4Net& addr) {
  std::string what = "addr add " + addr.str() + " " + dev(index);
  RtAddrPtr a = make_rtaddr(index, addr, what);
  if (int err = rtnl_addr_add(sock_, a.get(), 0); err < 0) fail(what, err);
}

void NetlinkSession::addr_delete(int index, const IP4Net& addr) {
  std::string what = "addr del " + addr.str() + " " + dev(index);
  RtAddrPtr a = make_rtaddr(index, addr, what);
  if (int err = rtnl_addr_delete(sock_, a.get(), 0); err < 0) fail(what, err);
}

void NetlinkSession::ensure_v4_address(int index, const IP4Net& addr) {
  std::vector<Addr4Info> existing = addrs4(index);
  if (existing.size() > 1) {
    std::string list;
    for (auto& a : existing)
      list += (list.empty() ? "" : ", ") + a.addr.str() + "/" + std::to_string(a.prefix);
    throw NetlinkError("link " + std::to_string(index) + " has incompatible addresses (" + list +
                       "); remove the additional addresses and try again");
  }
  if (existing.size() == 1) {
    const Addr4Info& cur = existing.front();
    if (cur.addr == addr.ip && cur.prefix == addr.prefix) return;
    addr_delete(index, IP4Net{cur.addr, cur.prefix});
  }
  addr_add(index, addr);
}

}  // namespace flannel
