// The netlink session, the shared helpers of netlink/internal.h, MacAddr, and the whole-namespace
// dumps used by interface selection (links, addresses, default route).
#include "backends/netlink/netlink.h"

#include <linux/if_addr.h>

#include <arpa/inet.h>
#include <linux/rtnetlink.h>

#include <cstring>

#include "backends/netlink/internal.h"

namespace flannel {

namespace nl {

void fail(const std::string& what, int err) {
  int code = err < 0 ? -err : err;
  throw NetlinkError("netlink " + what + ": " + nl_geterror(code), code);
}

void fail_alloc(const std::string& what) {
  throw NetlinkError("netlink " + what + ": out of memory", NLE_NOMEM);
}

AddrPtr make_addr4(IP4 ip, int prefix) {
  uint32_t be = htonl(ip.value);
  AddrPtr a(nl_addr_build(AF_INET, &be, 4));
  if (!a) fail_alloc("address " + ip.str());
  nl_addr_set_prefixlen(a.get(), prefix);
  return a;
}

AddrPtr make_addr6(const IP6& ip, int prefix) {
  AddrPtr a(nl_addr_build(AF_INET6, ip.bytes.data(), 16));
  if (!a) fail_alloc("address " + ip.str());
  nl_addr_set_prefixlen(a.get(), prefix);
  return a;
}

std::optional<IP6> to_ip6(const nl_addr* a) {
  if (!a || nl_addr_get_len(a) != 16) return std::nullopt;
  IP6 ip;
  std::memcpy(ip.bytes.data(), nl_addr_get_binary_addr(a), 16);
  return ip;
}

AddrPtr make_mac(const MacAddr& mac) {
  AddrPtr a(nl_addr_build(AF_LLC, mac.bytes.data(), mac.bytes.size()));
  if (!a) fail_alloc("lladdr " + mac.str());
  return a;
}

std::optional<IP4> to_ip4(const nl_addr* a) {
  if (!a || nl_addr_get_len(a) != 4) return std::nullopt;
  uint32_t be = 0;
  std::memcpy(&be, nl_addr_get_binary_addr(a), 4);
  return IP4{ntohl(be)};
}

MacAddr to_mac(const nl_addr* a) {
  MacAddr m;
  if (a && nl_addr_get_len(a) == 6) std::memcpy(m.bytes.data(), nl_addr_get_binary_addr(a), 6);
  return m;
}

std::string dev(int index) { return "dev " + std::to_string(index); }

void send_and_ack(nl_sock* sock, nl_msg* msg, const std::string& what) {
  if (int err = nl_send_auto(sock, msg); err < 0) fail(what, err);
  if (int err = nl_wait_for_ack(sock); err < 0) fail(what, err);
}

void dump(nl_sock* sock, int type, const void* hdr, size_t hdr_len, const std::string& what,
          int (*on_msg)(nl_msg*, void*), void* arg) {
  CbPtr base(nl_socket_get_cb(sock));  // a new reference: put back when done, or the socket's
  CbPtr cb(nl_cb_clone(base.get()));   // callbacks outlive nl_socket_free (a leak at exit)
  if (!cb) fail_alloc(what);
  nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, on_msg, arg);
  // nl_send_simple wants a non-const payload pointer; it only copies it.
  if (int err = nl_send_simple(sock, type, NLM_F_DUMP, const_cast<void*>(hdr), hdr_len); err < 0)
    fail(what, err);
  if (int err = nl_recvmsgs(sock, cb.get()); err < 0) fail(what, err);
}

}  // namespace nl

using namespace nl;

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<MacAddr> MacAddr::try_parse(std::string_view text) {
  MacAddr m;
  // Go's net.ParseMAC forms for 6 bytes: xx:xx:xx:xx:xx:xx, xx-xx-xx-xx-xx-xx, xxxx.xxxx.xxxx.
  if (text.size() == 17 && (text[2] == ':' || text[2] == '-')) {
    char sep = text[2];
    for (size_t i = 0; i < 6; ++i) {
      size_t p = i * 3;
      if (i < 5 && text[p + 2] != sep) return std::nullopt;
      int hi = hex_digit(text[p]), lo = hex_digit(text[p + 1]);
      if (hi < 0 || lo < 0) return std::nullopt;
      m.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return m;
  }
  if (text.size() == 14 && text[4] == '.' && text[9] == '.') {
    for (size_t i = 0; i < 3; ++i) {
      size_t p = i * 5;
      int d[4];
      for (int k = 0; k < 4; ++k) {
        d[k] = hex_digit(text[p + k]);
        if (d[k] < 0) return std::nullopt;
      }
      m.bytes[2 * i] = static_cast<uint8_t>(d[0] << 4 | d[1]);
      m.bytes[2 * i + 1] = static_cast<uint8_t>(d[2] << 4 | d[3]);
    }
    return m;
  }
  return std::nullopt;
}

MacAddr MacAddr::parse(std::string_view text) {
  if (auto m = try_parse(text)) return *m;
  throw ParseError("invalid MAC address \"" + std::string(text) +
                   "\" (expected six hex bytes like 82:4b:b6:2f:54:4e)");
}

std::string MacAddr::str() const {
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i) s += ':';
    s += hex[bytes[i] >> 4];
    s += hex[bytes[i] & 15];
  }
  return s;
}

std::string Route4::str() const {
  // Appended piece by piece: `s += " via " + gw.str()` trips GCC 12's -Wrestrict false positive
  // at -O3 (the inlined operator+(const char*, string&&) insert), which -Werror turns fatal.
  std::string s = dst.str();
  if (nhid) s.append(" nhid ").append(std::to_string(nhid));
  if (!gw.is_zero()) s.append(" via ").append(gw.str());
  if (oif) s.append(" ").append(nl::dev(oif));
  if (onlink) s.append(" onlink");
  return s;
}

std::string Route6::str() const {
  std::string s = dst.str();
  if (gw != IP6{}) s.append(" via ").append(gw.str());
  if (oif) s.append(" ").append(nl::dev(oif));
  if (onlink) s.append(" onlink");
  return s;
}

bool is_not_found(const NetlinkError& e) {
  return e.code() == NLE_OBJ_NOTFOUND || e.code() == NLE_NODEV || e.code() == NLE_NOADDR;
}

namespace {

nl_sock* open_route_socket() {
  nl_sock* s = nl_socket_alloc();
  if (!s) throw NetlinkError("netlink: cannot allocate socket", NLE_NOMEM);
  if (int err = nl_connect(s, NETLINK_ROUTE); err < 0) {
    nl_socket_free(s);
    fail("connect", err);
  }
  return s;
}

}  // namespace

NetlinkSession::NetlinkSession() {
  sock_ = open_route_socket();
  try {
    batch_sock_ = open_route_socket();
  } catch (...) {
    nl_socket_free(sock_);
    throw;
  }
  // Batches match acks by sequence number themselves; room for a window of acks.
  nl_socket_disable_seq_check(batch_sock_);
  nl_socket_set_buffer_size(batch_sock_, 1 << 20, 1 << 20);
}

NetlinkSession::~NetlinkSession() {
  if (batch_sock_) nl_socket_free(batch_sock_);
  if (sock_) nl_socket_free(sock_);  // also closes
}

std::vector<Addr4Info> NetlinkSession::addrs4() {
  nl_cache* raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(sock_, &raw); err < 0) fail("addr show", err);
  CachePtr cache(raw);
  std::vector<Addr4Info> out;
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_family(a) != AF_INET) continue;
    auto local = to_ip4(rtnl_addr_get_local(a));
    if (!local) continue;
    out.push_back({rtnl_addr_get_ifindex(a), *local, rtnl_addr_get_prefixlen(a)});
  }
  return out;
}

std::vector<Addr4Info> NetlinkSession::addrs4(int index) {
  std::vector<Addr4Info> out;
  for (auto& a : addrs4())
    if (a.index == index) out.push_back(a);
  return out;
}

std::vector<Addr6Info> NetlinkSession::addrs6() {
  nl_cache* raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(sock_, &raw); err < 0) fail("addr show", err);
  CachePtr cache(raw);
  std::vector<Addr6Info> out;
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_family(a) != AF_INET6) continue;
    auto local = to_ip6(rtnl_addr_get_local(a));
    if (!local) continue;
    out.push_back({rtnl_addr_get_ifindex(a), *local, rtnl_addr_get_prefixlen(a),
                   (rtnl_addr_get_flags(a) & IFA_F_DEPRECATED) != 0});
  }
  return out;
}

std::vector<Addr6Info> NetlinkSession::addrs6(int index) {
  std::vector<Addr6Info> out;
  for (auto& a : addrs6())
    if (a.index == index) out.push_back(a);
  return out;
}

std::optional<int> NetlinkSession::default_route_ifindex() {
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(sock_, AF_INET, 0, &raw); err < 0) fail("route show", err);
  CachePtr cache(raw);
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN) continue;
    nl_addr* dst = rtnl_route_get_dst(r);
    if (dst && nl_addr_get_prefixlen(dst) != 0) continue;
    if (rtnl_route_get_nnexthops(r) != 1) {
      throw NetlinkError("the default route has " + std::to_string(rtnl_route_get_nnexthops(r)) +
                         " next hops; choose the interface with -iface");
    }
    return rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(r, 0));
  }
  return std::nullopt;
}

}  // namespace flannel
