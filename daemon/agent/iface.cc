#include "daemon/agent/iface.h"

#include <net/if.h>

#include <regex>
#include <stdexcept>

namespace flannel {
namespace {

bool is_link_local(IP4 a) { return (a.value >> 16) == 0xA9FE; }  // 169.254/16
bool is_global_unicast(IP4 a) {
  if (a.value == 0 || a.value == 0xFFFFFFFFu) return false;
  if ((a.value >> 24) == 127) return false;  // loopback
  if ((a.value >> 28) == 0xE) return false;  // multicast 224/4
  return !is_link_local(a);
}

const LinkInfo* find_link(const std::vector<LinkInfo>& links, int index) {
  for (const auto& l : links)
    if (l.index == index) return &l;
  return nullptr;
}

ExternalInterface make(const LinkInfo& link, IP4 addr, const IfaceRequest& req) {
  if (link.mtu <= 0) {
    throw std::runtime_error("interface " + link.name + " reports MTU " + std::to_string(link.mtu) +
                             "; cannot derive the overlay MTU");
  }
  ExternalInterface e;
  e.name = link.name;
  e.index = link.index;
  e.mtu = link.mtu;
  e.iface_addr = addr;
  e.ext_addr = req.public_ip.value_or(addr);
  return e;
}

std::string known_interfaces(const std::vector<LinkInfo>& links) {
  std::string s;
  for (const auto& l : links) s += (s.empty() ? "" : ", ") + l.name;
  return s;
}

}  // namespace

std::optional<IP4> preferred_ipv4(int index, const std::vector<Addr4Info>& addrs) {
  std::optional<IP4> link_local;
  for (const auto& a : addrs) {
    if (a.index != index) continue;
    if (is_global_unicast(a.addr)) return a.addr;
    if (is_link_local(a.addr)) link_local = a.addr;
  }
  return link_local;
}

ExternalInterface select_external_interface(const std::vector<LinkInfo>& links,
                                            const std::vector<Addr4Info>& addrs,
                                            std::optional<int> default_route_index,
                                            const IfaceRequest& req,
                                            std::vector<std::string>* notes,
                                            std::optional<RouteSource> reach) {
  auto note = [&](std::string s) {
    if (notes) notes->push_back(std::move(s));
  };
  if (req.ifaces.empty() && req.regexes.empty() && !req.can_reach) {
    if (!default_route_index) {
      throw std::runtime_error(
          "no default route to pick the external interface from; pass -iface=NAME or "
          "-iface=ADDRESS (interfaces: " +
          known_interfaces(links) + ")");
    }
    const LinkInfo* link = find_link(links, *default_route_index);
    if (!link)
      throw std::runtime_error("default route points at unknown interface index " +
                               std::to_string(*default_route_index));
    auto ip = preferred_ipv4(link->index, addrs);
    if (!ip)
      throw std::runtime_error("default route interface " + link->name +
                               " has no IPv4 address; pass -iface");
    return make(*link, *ip, req);
  }
  for (const auto& want : req.ifaces) {
    if (auto ip = IP4::try_parse(want)) {
      bool found = false;
      for (const auto& a : addrs) {
        if (a.addr != *ip) continue;
        if (const LinkInfo* link = find_link(links, a.index)) return make(*link, *ip, req);
        found = true;
      }
      note("-iface=" + want + ": " +
           (found ? "its interface vanished" : "no interface has this address"));
      continue;
    }
    bool matched = false;
    for (const auto& l : links) {
      if (l.name != want) continue;
      matched = true;
      if (auto ip = preferred_ipv4(l.index, addrs)) return make(l, *ip, req);
      note("-iface=" + want + ": interface has no IPv4 address");
    }
    if (!matched) note("-iface=" + want + ": no such interface");
  }
  for (const auto& pattern : req.regexes) {
    std::regex re;
    try {
      re = std::regex(pattern);
    } catch (const std::regex_error& e) {
      throw std::runtime_error("-iface-regex=" + pattern +
                               ": invalid regular expression: " + e.what());
    }
    for (const auto& l : links) {  // first pass: the preferred address
      auto ip = preferred_ipv4(l.index, addrs);
      if (ip && std::regex_search(ip->str(), re)) return make(l, *ip, req);
    }
    for (const auto& l : links) {  // second pass: the name
      if (!std::regex_search(l.name, re)) continue;
      if (auto ip = preferred_ipv4(l.index, addrs)) return make(l, *ip, req);
      note("-iface-regex=" + pattern + ": " + l.name + " has no IPv4 address");
    }
    note("-iface-regex=" + pattern + ": no interface or address matches");
  }
  if (req.can_reach && reach) {
    const std::string flag = "-iface-can-reach=" + req.can_reach->str();
    if (const LinkInfo* link = find_link(links, reach->oif)) {
      std::optional<IP4> ip = reach->src;
      if (reach->src.is_zero()) ip = preferred_ipv4(link->index, addrs);
      if (ip) return make(*link, *ip, req);
      note(flag + ": its route leaves through " + link->name + ", which has no IPv4 address");
    } else {
      note(flag + ": its route leaves through unknown interface index " +
           std::to_string(reach->oif));
    }
  }
  throw std::runtime_error("none of the requested interfaces could be used (interfaces: " +
                           known_interfaces(links) + ")");
}

namespace {

// lookup_external_interface, also giving the links it chose from.
ExternalInterface lookup(const IfaceRequest& req, std::vector<std::string>* notes,
                         std::vector<LinkInfo>* links) {
  NetlinkSession nl;
  *links = nl.links();
  auto addrs = nl.addrs4();
  std::optional<int> def;
  if (req.ifaces.empty() && req.regexes.empty() && !req.can_reach) def = nl.default_route_ifindex();
  std::optional<RouteSource> reach;
  if (req.can_reach) {
    try {
      reach = route_source(nl, *req.can_reach);
    } catch (const NetlinkError& e) {
      if (notes) notes->push_back("-iface-can-reach=" + req.can_reach->str() + ": " + e.what());
    }
  }
  return select_external_interface(*links, addrs, def, req, notes, reach);
}

}  // namespace

ExternalInterface lookup_external_interface(const IfaceRequest& req,
                                            std::vector<std::string>* notes) {
  std::vector<LinkInfo> links;
  return lookup(req, notes, &links);
}

ExternalInterface lookup_usable_interface(const IfaceRequest& req) {
  std::vector<LinkInfo> links;
  std::vector<std::string> notes;
  ExternalInterface e;
  try {
    e = lookup(req, &notes, &links);
  } catch (const std::runtime_error& err) {
    std::string why = err.what();
    for (const auto& n : notes) why += "; " + n;
    throw std::runtime_error(why);
  }
  const LinkInfo* link = find_link(links, e.index);
  if (link && !(link->flags & IFF_UP)) throw std::runtime_error("interface " + e.name + " is down");
  if (link && !(link->flags & IFF_RUNNING))
    throw std::runtime_error("interface " + e.name + " has no carrier");
  return e;
}

}  // namespace flannel
