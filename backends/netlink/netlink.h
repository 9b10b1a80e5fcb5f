// The netlink layer (libnl-route-3): one RAII session whose operations read like the `ip` and
// `bridge` commands an operator would type: link, addr, route, neigh, fdb. Every message is built
// by libnl; every libnl object is owned by a smart pointer.
//
// A session operates in the network namespace its socket was opened in (the calling thread's at
// construction). It is not thread-safe: use one session per thread. Every failure throws
// NetlinkError whose message names the operation, the object and libnl's reason, e.g.
// "netlink route replace 10.5.34.0/24 via 10.250.0.2 dev 2: Object exists"; code() keeps libnl's
// error number (NLE_*) for callers that need to tell "not found" or "exists" apart.
//
// Implementation is split by object: netlink.cc (session, dumps), link.cc (link, addr,
// vxlan), route.cc (route), neigh.cc (neigh, fdb), nexthop.cc (nexthop
// objects, `ip nexthop`), batch.{h,cc} (pipelined requests: many per sendmsg, acks
// matched back by sequence number).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/ip.h"

struct nl_sock;

namespace flannel {

class NetlinkError : public std::runtime_error {
 public:
  explicit NetlinkError(const std::string& what, int code = 0)
      : std::runtime_error(what), code_(code) {}
  // libnl's error number (NLE_OBJ_NOTFOUND, NLE_EXIST, ...), positive; 0 when not from libnl.
  int code() const { return code_; }

 private:
  int code_ = 0;
};

// An Ethernet (link-layer) address.
struct MacAddr {
  std::array<uint8_t, 6> bytes{};

  // Accepts "aa:bb:cc:dd:ee:ff" and "aa-bb-cc-dd-ee-ff" in any case, as Go's net.ParseMAC does for
  // 6-byte addresses. Throws ParseError naming the text.
  static MacAddr parse(std::string_view text);
  static std::optional<MacAddr> try_parse(std::string_view text);
  // Lowercase, colon separated ("82:4b:b6:2f:54:4e"), as Go's net.HardwareAddr.String().
  std::string str() const;
  bool is_zero() const { return bytes == std::array<uint8_t, 6>{}; }
  auto operator<=>(const MacAddr&) const = default;
};

struct LinkInfo {
  int index = 0;
  std::string name;
  int mtu = 0;
  unsigned flags = 0;  // IFF_*
  std::string kind;    // IFLA_INFO_KIND ("vxlan", "veth", "bridge", "tun"); "" for plain devices
  MacAddr mac;         // zero when the link has no 6-byte address (tun, lo)
};

struct Addr4Info {
  int index = 0;  // link index
  IP4 addr;
  int prefix = 0;
  bool operator==(const Addr4Info&) const = default;
};

// One IPv4 route of the main table with a single next hop. Writes always use table main,
// protocol boot, scope universe, type unicast and no metric, as flannel does (facts §3.0).
// A route through a nexthop object (nhid != 0) is written with RTA_NH_ID only; gw/oif/onlink
// then describe the nexthop (the kernel reports them in dumps, nexthop_compat_mode=1, so
// `ip route` still shows "via" and "dev").
struct Route4 {
  IP4Net dst;           // the destination network (host bits as given)
  IP4 gw;               // 0.0.0.0 = no gateway (a directly connected route)
  int oif = 0;          // output link index; 0 = let the kernel pick from the gateway
  bool onlink = false;  // RTNH_F_ONLINK: the gateway is reachable on oif without a covering route
  int protocol = 3;     // filled by routes4()/route_get(); writes always send RTPROT_BOOT (3)
  uint32_t nhid = 0;    // RTA_NH_ID: the nexthop object the route points at; 0 = inline gateway
  std::string str() const;  // "10.5.34.0/24 nhid 7 via 10.250.0.2 dev 2 onlink", for messages
  bool operator==(const Route4&) const = default;
};

// A nexthop object (`ip nexthop`, RTM_NEWNEXTHOP, kernel >= 5.3): a single IPv4 gateway on one
// link. Writes always use protocol boot; groups and blackholes are not modelled (dumps skip them).
struct Nexthop4 {
  uint32_t id = 0;
  IP4 gw;
  int oif = 0;
  bool onlink = false;
  int protocol = 3;         // filled by nexthops4(); writes always send RTPROT_BOOT (3)
  std::string str() const;  // "id 7 via 10.250.0.2 dev 2 onlink"
  bool operator==(const Nexthop4&) const = default;
};

// One IPv6 route of the main table with a single inline next hop (no nexthop objects: the
// v6 peers of a cluster are few enough that the O(n) insert does not matter, and it keeps the
// v6 path identical to current flannel's). Same write defaults as Route4.
struct Route6 {
  IP6Net dst;
  IP6 gw;  // :: = no gateway
  int oif = 0;
  bool onlink = false;
  int protocol = 3;         // filled by routes6()/route_get(); writes always send RTPROT_BOOT (3)
  std::string str() const;  // "fc00:0:0:2::/64 via fc00:0:0:2:: dev 5 onlink"
  bool operator==(const Route6&) const = default;
};

struct Addr6Info {
  int index = 0;  // link index
  IP6 addr;
  int prefix = 0;
  bool deprecated = false;  // IFA_F_DEPRECATED (preferred lifetime over)
  bool operator==(const Addr6Info&) const = default;
};

// An IPv6 neighbour (NDP) entry: `ip -6 neigh` on one link.
struct Neigh6 {
  int index = 0;
  IP6 dst;
  MacAddr mac;
  int state = 0;  // NUD_*
};

// A neighbour (ARP) entry: `ip neigh` on one link.
struct Neigh4 {
  int index = 0;
  IP4 dst;
  MacAddr mac;
  int state = 0;  // NUD_*
};

// A forwarding database entry of a VXLAN device: `bridge fdb ... dst <IP> self`.
struct FdbEntry {
  int index = 0;
  MacAddr mac;
  IP4 dst;                  // 0.0.0.0 when the entry has no IPv4 NDA_DST
  std::optional<IP6> dst6;  // the NDA_DST when it is an IPv6 address (a flannel-v6.N entry)
  int state = 0;            // NUD_*
  unsigned flags = 0;       // NTF_*
};

// What a VXLAN link is made of (the attributes flannel sets or compares, facts §3.2).
struct VxlanLink {
  std::string name;  // e.g. "flannel.1"
  uint32_t vni = 0;
  int link_index = 0;         // the underlying (external) link; 0 = none
  IP4 local;                  // source address of the tunnel; 0 = unset
  std::optional<IP6> local6;  // IPv6 source address (flannel-v6.N); set instead of local
  IP4 group;                  // multicast group / default remote; 0 = unset (flannel never sets it)
  int port = 0;               // UDP destination port; 0 = kernel default (8472)
  bool gbp = false;
  bool learning = false;
  bool l2miss = false;
  MacAddr mac;  // on create: the address to set (zero = let the kernel pick one)
  int mtu = 0;  // on create: the MTU to set (0 = kernel default)
};

// One connected NETLINK_ROUTE socket. Non-copyable; closes on destruction.
class NetlinkSession {
 public:
  NetlinkSession();
  ~NetlinkSession();
  NetlinkSession(const NetlinkSession&) = delete;
  NetlinkSession& operator=(const NetlinkSession&) = delete;

  // The sockets are owned by the session: valid as long as it is.
  nl_sock* sock() const { return sock_; }
  // A second socket of the same namespace, used only by NetlinkBatch (its sequence numbers run
  // independently of the one-request-one-ack operations below).
  nl_sock* batch_sock() const { return batch_sock_; }
  // Requests sent through NetlinkBatch on this session so far (tests: "a restart writes nothing").
  size_t batched_requests() const { return batched_; }
  void count_batched(size_t n) { batched_ += n; }

  // ---- link (`ip link`) ----
  // `ip link show`: every link, in kernel index order.
  std::vector<LinkInfo> links();
  // `ip link show dev NAME`: nullopt when there is no such link.
  std::optional<LinkInfo> link_by_name(const std::string& name);
  // `ip link show` by index: nullopt when there is no such link.
  std::optional<LinkInfo> link_by_index(int index);
  // `ip link set dev X up`.
  void link_set_up(int index);
  // `ip link set dev X mtu N`.
  void link_set_mtu(int index, int mtu);
  // `ip link set dev X address MAC`.
  void link_set_address(int index, const MacAddr& mac);
  // `ip link del dev X`. Deleting a link that is already gone is not an error.
  void link_delete(int index);
  // `ip link add NAME type KIND [mtu MTU]` for a kind that needs no further attributes
  // ("wireguard"). Throws NetlinkError: code() NLE_EXIST if NAME exists, NLE_OPNOTSUPP when the
  // kernel does not know KIND (its module is missing). Returns the new link's index.
  int link_add(const std::string& name, const std::string& kind, int mtu = 0);

  // ---- vxlan (`ip link add NAME type vxlan ...`) ----
  // `ip link add NAME type vxlan id VNI dev LINK local LOCAL [dstport PORT] [gbp] [nolearning]
  //  [address MAC] [mtu MTU]`. Throws NetlinkError with code() == NLE_EXIST if NAME exists.
  // Returns the new link's index.
  int vxlan_add(const VxlanLink& spec);
  // `ip -d link show dev NAME` for a VXLAN link: nullopt if there is no link of that name;
  // throws NetlinkError if the link exists but is not of kind vxlan. mac and mtu are filled.
  std::optional<VxlanLink> vxlan_show(const std::string& name);

  // ---- addr (`ip addr`) ----
  // `ip -4 addr show`: every IPv4 address, in netlink dump order.
  std::vector<Addr4Info> addrs4();
  // `ip -4 addr show dev X`.
  std::vector<Addr4Info> addrs4(int index);
  // `ip addr add A/N dev X`, `ip addr del A/N dev X`.
  void addr_add(int index, const IP4Net& addr);
  void addr_delete(int index, const IP4Net& addr);
  // Makes `addr` (address and prefix as given, host bits kept) the only IPv4 address of the
  // link, as flannel's EnsureV4AddressOnLink: a single different address is removed first;
  // several addresses are an error (the operator has to remove the extra ones). Not atomic: if
  // the add fails after the delete, the link is left with no IPv4 address.
  void ensure_v4_address(int index, const IP4Net& addr);
  // `ip -6 addr show [dev X]` (link-local fe80::/10 addresses included).
  std::vector<Addr6Info> addrs6();
  std::vector<Addr6Info> addrs6(int index);
  // `ip -6 addr add A/N dev X nodad`, `ip -6 addr del A/N dev X`.
  void addr_add(int index, const IP6Net& addr);
  void addr_delete(int index, const IP6Net& addr);
  // As ensure_v4_address for the link's global IPv6 addresses (flannel's
  // EnsureV6AddressOnLink); the kernel's own link-local address is left alone. Not atomic either.
  void ensure_v6_address(int index, const IP6Net& addr);
  // Writes net.ipv6.conf.<name>.accept_ra = 0 (through /proc/sys of the calling thread's
  // namespace, which must be the session's), as flannel does for flannel-v6.N.
  static void disable_accept_ra(const std::string& name);

  // ---- route (`ip route`, main table) ----
  // `ip route show` (main table, IPv4, unicast, single next hop; multipath routes are skipped).
  // Routes through a nexthop object carry its id in nhid.
  std::vector<Route4> routes4();
  // `ip route add` (fails with NLE_EXIST if the route exists).
  void route_add(const Route4& r);
  // `ip route replace`.
  void route_replace(const Route4& r);
  // `ip route del`: matches dst, and nhid, or else gw and oif, when set, in any protocol and
  // scope (the kernel does not match a nexthop-object route by gw/oif). Throws
  // NetlinkError with code() == NLE_OBJ_NOTFOUND when no route matches.
  void route_delete(const Route4& r);
  // `ip route get DST`: the route the kernel would use (all tables, policy routing applied).
  // Throws NetlinkError when the kernel has no route to DST.
  Route4 route_get(IP4 dst);
  // `ip route show default` (main table): the oif of the first IPv4 default route; nullopt when
  // there is none. Throws if that route has no single output interface (multipath).
  std::optional<int> default_route_ifindex();
  // `ip -6 route show` (main table, unicast, single next hop), and the same operations as
  // for Route4.
  std::vector<Route6> routes6();
  void route_add(const Route6& r);
  void route_replace(const Route6& r);
  void route_delete(const Route6& r);
  Route6 route_get(const IP6& dst);
  // `ip route show type blackhole` / `ip -6 route show type blackhole` (main table): the
  // destinations (route_blackhole.cc).
  std::vector<IP4Net> blackholes4();
  std::vector<IP6Net> blackholes6();
  // `ip route add blackhole DST proto boot` (NLE_EXIST if a route to DST exists in main).
  void blackhole_add(const IP4Net& dst);
  void blackhole_add(const IP6Net& dst);

  // ---- nexthop (`ip nexthop`) ----
  // `ip -4 nexthop show`: single-gateway IPv4 nexthop objects. Throws NetlinkError (code()
  // NLE_OPNOTSUPP on kernels without nexthop objects) when the kernel refuses the dump.
  std::vector<Nexthop4> nexthops4();
  // `ip nexthop replace id ID via GW dev X [onlink] proto boot`.
  void nexthop_replace(const Nexthop4& nh);
  // `ip nexthop del id ID` (routes using it go with it). NLE_OBJ_NOTFOUND when absent.
  void nexthop_delete(uint32_t id);

  // ---- neigh (`ip neigh`) ----
  // `ip -4 neigh show dev X`.
  std::vector<Neigh4> neighs4(int index);
  // `ip neigh replace DST lladdr MAC dev X nud permanent`.
  void neigh_replace(int index, IP4 dst, const MacAddr& mac);
  // `ip neigh del DST dev X`. Throws with code() == NLE_OBJ_NOTFOUND when absent.
  void neigh_delete(int index, IP4 dst);
  // `ip -6 neigh show dev X`, `ip -6 neigh replace DST lladdr MAC dev X nud permanent`,
  // `ip -6 neigh del DST dev X`.
  std::vector<Neigh6> neighs6(int index);
  void neigh_replace(int index, const IP6& dst, const MacAddr& mac);
  void neigh_delete(int index, const IP6& dst);

  // ---- fdb (`bridge fdb`) ----
  // `bridge fdb show dev X` (entries of any kind on that link).
  std::vector<FdbEntry> fdbs(int index);
  // `bridge fdb replace MAC dev X dst DST self permanent`.
  void fdb_replace(int index, const MacAddr& mac, IP4 dst);
  // `bridge fdb del MAC dev X dst DST self`. Throws with code() == NLE_OBJ_NOTFOUND when absent.
  void fdb_delete(int index, const MacAddr& mac, IP4 dst);
  // The same with an IPv6 dst (entries of flannel-v6.N).
  void fdb_replace(int index, const MacAddr& mac, const IP6& dst);
  void fdb_delete(int index, const MacAddr& mac, const IP6& dst);

 private:
  nl_sock* sock_ = nullptr;
  nl_sock* batch_sock_ = nullptr;
  size_t batched_ = 0;
};

// True if `e` reports that the object was not there (libnl's NLE_OBJ_NOTFOUND, NLE_NODEV or
// NLE_NOADDR, which the kernel's ENOENT, ESRCH, ENODEV and EADDRNOTAVAIL map to).
bool is_not_found(const NetlinkError& e);

}  // namespace flannel
