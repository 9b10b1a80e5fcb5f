#include "backends/wireguard/genl.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <linux/time_types.h>
#include <linux/wireguard.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include <charconv>
#include <cstring>

namespace flannel {

void NlMsgFree::operator()(nl_msg* m) const { nlmsg_free(m); }

namespace {

static_assert(WG_KEY_LEN == 32, "WgKey holds 32 bytes");

// A put that did not fit: the caller starts a new message.
struct NoRoom {};

void check_put(int err) {
  if (err == -NLE_NOMEM) throw NoRoom{};
  if (err < 0)
    throw UapiError(std::string("generic netlink: building a WireGuard request: ") +
                    nl_geterror(err));
}

nlattr* nest(nl_msg* msg, int type) {
  nlattr* a = nla_nest_start(msg, NLA_F_NESTED | type);
  if (!a) throw NoRoom{};
  return a;
}

NlMsgPtr new_message(int family, int cmd, int flags, size_t size, const std::string& ifname) {
  NlMsgPtr msg(nlmsg_alloc_size(size));
  if (!msg) throw UapiError("generic netlink: out of memory for a WireGuard request");
  if (!genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, flags,
                   static_cast<uint8_t>(cmd), WG_GENL_VERSION)) {
    throw UapiError("generic netlink: a WireGuard request buffer of " + std::to_string(size) +
                    " bytes is too small");
  }
  if (nla_put_string(msg.get(), WGDEVICE_A_IFNAME, ifname.c_str()) < 0) {
    throw UapiError("generic netlink: a WireGuard request buffer of " + std::to_string(size) +
                    " bytes is too small");
  }
  return msg;
}

template <typename T>
bool to_number(std::string_view s, T* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// "1.2.3.4:51820" -> sockaddr_in, "[fd00::1]:51820" -> sockaddr_in6 (as the UAPI's endpoint=).
void put_endpoint(nl_msg* msg, const std::string& endpoint) {
  auto bad = [&] {
    return UapiError("WireGuard endpoint \"" + endpoint + "\" is not IPv4:port or [IPv6]:port");
  };
  size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos) throw bad();
  std::string_view host = std::string_view(endpoint).substr(0, colon);
  uint32_t port = 0;
  if (!to_number(std::string_view(endpoint).substr(colon + 1), &port) || port > 65535) throw bad();
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto ip = IP6::try_parse(host.substr(1, host.size() - 2));
    if (!ip) throw bad();
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(static_cast<uint16_t>(port));
    std::memcpy(&sa.sin6_addr, ip->bytes.data(), 16);
    check_put(nla_put(msg, WGPEER_A_ENDPOINT, sizeof(sa), &sa));
    return;
  }
  auto ip = IP4::try_parse(host);
  if (!ip) throw bad();
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(ip->value);
  check_put(nla_put(msg, WGPEER_A_ENDPOINT, sizeof(sa), &sa));
}

void put_peer(nl_msg* msg, const UapiPeerSet& p) {
  nlattr* peer = nest(msg, 0);
  check_put(nla_put(msg, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, p.public_key.bytes.data()));
  uint32_t flags = 0;
  if (p.remove) {
    flags |= WGPEER_F_REMOVE_ME;
  } else {
    if (p.replace_allowed_ips) flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
    if (p.preshared_key)
      check_put(nla_put(msg, WGPEER_A_PRESHARED_KEY, WG_KEY_LEN, p.preshared_key->bytes.data()));
    if (!p.endpoint.empty()) put_endpoint(msg, p.endpoint);
    if (p.keepalive) {
      if (*p.keepalive < 0 || *p.keepalive > 65535) {
        throw UapiError("WireGuard persistent keepalive " + std::to_string(*p.keepalive) +
                        " is not 0..65535");
      }
      check_put(nla_put_u16(msg, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
                            static_cast<uint16_t>(*p.keepalive)));
    }
    if (!p.allowed_ips.empty()) {
      nlattr* ips = nest(msg, WGPEER_A_ALLOWEDIPS);
      for (const auto& net : p.allowed_ips) {
        nlattr* ip = nest(msg, 0);
        uint32_t addr = htonl(net.ip.value);
        check_put(nla_put_u16(msg, WGALLOWEDIP_A_FAMILY, AF_INET));
        check_put(nla_put(msg, WGALLOWEDIP_A_IPADDR, sizeof(addr), &addr));
        check_put(nla_put_u8(msg, WGALLOWEDIP_A_CIDR_MASK, static_cast<uint8_t>(net.prefix)));
        nla_nest_end(msg, ip);
      }
      nla_nest_end(msg, ips);
    }
  }
  if (flags) check_put(nla_put_u32(msg, WGPEER_A_FLAGS, flags));
  nla_nest_end(msg, peer);
}

const uint8_t* key_bytes(const nlattr* a, const char* what) {
  if (nla_len(a) != WG_KEY_LEN) {
    throw UapiError(std::string("generic netlink GET_DEVICE: ") + what + " has " +
                    std::to_string(nla_len(a)) + " bytes, not 32");
  }
  return static_cast<const uint8_t*>(nla_data(a));
}

WgKey key_of(const nlattr* a, const char* what) {
  WgKey k;
  std::memcpy(k.bytes.data(), key_bytes(a, what), WG_KEY_LEN);
  return k;
}

// The UAPI's spelling of an endpoint: "1.2.3.4:51820", "[fd00::1]:51820".
std::string endpoint_text(const nlattr* a) {
  if (nla_len(a) == static_cast<int>(sizeof(sockaddr_in))) {
    sockaddr_in sa;
    std::memcpy(&sa, nla_data(a), sizeof(sa));
    if (sa.sin_family == AF_INET)
      return IP4{ntohl(sa.sin_addr.s_addr)}.str() + ":" + std::to_string(ntohs(sa.sin_port));
  } else if (nla_len(a) == static_cast<int>(sizeof(sockaddr_in6))) {
    sockaddr_in6 sa;
    std::memcpy(&sa, nla_data(a), sizeof(sa));
    if (sa.sin6_family == AF_INET6) {
      IP6 ip;
      std::memcpy(ip.bytes.data(), &sa.sin6_addr, 16);
      std::string out = "[";  // piece by piece: GCC 12 -O3 -Wrestrict false positive on "[" + s
      out += ip.str();
      out += "]:";
      out += std::to_string(ntohs(sa.sin6_port));
      return out;
    }
  }
  throw UapiError("generic netlink GET_DEVICE: a peer endpoint of " + std::to_string(nla_len(a)) +
                  " bytes is neither sockaddr_in nor sockaddr_in6");
}

void parse_allowed_ip(const nlattr* a, UapiPeerStatus* peer) {
  nlattr* tb[WGALLOWEDIP_A_MAX + 1] = {};
  if (nla_parse_nested(tb, WGALLOWEDIP_A_MAX, const_cast<nlattr*>(a), nullptr) < 0 ||
      !tb[WGALLOWEDIP_A_FAMILY] || !tb[WGALLOWEDIP_A_IPADDR] || !tb[WGALLOWEDIP_A_CIDR_MASK]) {
    throw UapiError("generic netlink GET_DEVICE: an allowed IP without family, address or mask");
  }
  const int family = nla_get_u16(tb[WGALLOWEDIP_A_FAMILY]);
  const int len = nla_len(tb[WGALLOWEDIP_A_IPADDR]);
  const int prefix = nla_get_u8(tb[WGALLOWEDIP_A_CIDR_MASK]);
  if (family == AF_INET && len == 4 && prefix <= 32) {
    uint32_t addr;
    std::memcpy(&addr, nla_data(tb[WGALLOWEDIP_A_IPADDR]), 4);
    peer->allowed_ips.push_back(IP4Net{IP4{ntohl(addr)}, prefix});
  } else if (family == AF_INET6 && len == 16 && prefix <= 128) {
    IP6Net net;
    std::memcpy(net.ip.bytes.data(), nla_data(tb[WGALLOWEDIP_A_IPADDR]), 16);
    net.prefix = prefix;
    peer->allowed_ips_v6.push_back(net.str());
  } else {
    throw UapiError("generic netlink GET_DEVICE: an allowed IP of family " +
                    std::to_string(family) + ", " + std::to_string(len) + " address bytes, /" +
                    std::to_string(prefix));
  }
}

void parse_peer(const nlattr* a, UapiDevice* dev) {
  nlattr* tb[WGPEER_A_MAX + 1] = {};
  if (nla_parse_nested(tb, WGPEER_A_MAX, const_cast<nlattr*>(a), nullptr) < 0 ||
      !tb[WGPEER_A_PUBLIC_KEY]) {
    throw UapiError("generic netlink GET_DEVICE: a peer without a public key");
  }
  WgKey key = key_of(tb[WGPEER_A_PUBLIC_KEY], "a peer's public key");
  // The previous message ended inside this peer's allowed IPs: continue it.
  if (dev->peers.empty() || dev->peers.back().public_key != key) {
    dev->peers.push_back({});
    dev->peers.back().public_key = key;
  }
  UapiPeerStatus& p = dev->peers.back();
  if (tb[WGPEER_A_PRESHARED_KEY]) {
    p.preshared_key = key_of(tb[WGPEER_A_PRESHARED_KEY], "a peer's preshared key");
    p.has_preshared_key = p.preshared_key != WgKey{};
  }
  if (tb[WGPEER_A_ENDPOINT]) p.endpoint = endpoint_text(tb[WGPEER_A_ENDPOINT]);
  if (tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL])
    p.keepalive = nla_get_u16(tb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
  if (const nlattr* t = tb[WGPEER_A_LAST_HANDSHAKE_TIME]) {
    __kernel_timespec ts;
    if (nla_len(t) != static_cast<int>(sizeof(ts))) {
      throw UapiError("generic netlink GET_DEVICE: a last handshake time of " +
                      std::to_string(nla_len(t)) + " bytes, not " + std::to_string(sizeof(ts)));
    }
    std::memcpy(&ts, nla_data(t), sizeof(ts));
    p.last_handshake_sec = ts.tv_sec;
    p.last_handshake_nsec = ts.tv_nsec;
  }
  if (tb[WGPEER_A_RX_BYTES]) p.rx_bytes = nla_get_u64(tb[WGPEER_A_RX_BYTES]);
  if (tb[WGPEER_A_TX_BYTES]) p.tx_bytes = nla_get_u64(tb[WGPEER_A_TX_BYTES]);
  if (const nlattr* ips = tb[WGPEER_A_ALLOWEDIPS]) {
    const nlattr* ip;
    int rem;
    nla_for_each_nested(ip, ips, rem) parse_allowed_ip(ip, &p);
  }
}

// One socket per call, connected and with the family resolved.
struct Socket {
  nl_sock* sock = nullptr;
  int family = 0;
  explicit Socket(const std::string& ifname) {
    sock = nl_socket_alloc();
    if (!sock) throw UapiError("generic netlink: out of memory for a socket");
    int err = genl_connect(sock);
    if (err < 0) {
      nl_socket_free(sock);
      throw UapiError(std::string("generic netlink: cannot open a socket: ") + nl_geterror(err));
    }
    nl_socket_enable_msg_peek(sock);  // dump answers may exceed a page
    family = genl_ctrl_resolve(sock, WG_GENL_NAME);
    if (family < 0) {
      std::string why = nl_geterror(family);
      nl_socket_free(sock);
      throw UapiError("generic netlink: no \"" WG_GENL_NAME "\" family in this kernel (" + why +
                      "; is the wireguard module loaded?), needed for device " + ifname);
    }
  }
  ~Socket() { nl_socket_free(sock); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
};

struct Exchange {
  UapiDevice* dev = nullptr;  // GET: the answer being collected
  int error = 0;              // the kernel's errno, positive
  std::string parse_error;    // a malformed answer
  bool done = false;
};

int on_valid(nl_msg* msg, void* arg) {
  auto* x = static_cast<Exchange*>(arg);
  if (!x->dev) return NL_OK;
  try {
    parse_wg_get_reply(nlmsg_hdr(msg), x->dev);
  } catch (const UapiError& e) {
    x->parse_error = e.what();
    return NL_STOP;
  }
  return NL_OK;
}
int on_error(sockaddr_nl*, nlmsgerr* e, void* arg) {
  static_cast<Exchange*>(arg)->error = -e->error;
  return NL_STOP;
}
int on_done(nl_msg*, void* arg) {
  static_cast<Exchange*>(arg)->done = true;
  return NL_STOP;
}

// Sends `msg` and reads until its ack (or, for a dump, NLMSG_DONE). Throws UapiError.
void exchange(Socket& s, nl_msg* msg, UapiDevice* dev, const std::string& what) {
  std::unique_ptr<nl_cb, void (*)(nl_cb*)> cb(nl_cb_alloc(NL_CB_DEFAULT), nl_cb_put);
  if (!cb) throw UapiError(what + ": out of memory");
  Exchange x;
  x.dev = dev;
  nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, on_valid, &x);
  nl_cb_set(cb.get(), NL_CB_ACK, NL_CB_CUSTOM, on_done, &x);
  nl_cb_set(cb.get(), NL_CB_FINISH, NL_CB_CUSTOM, on_done, &x);
  nl_cb_err(cb.get(), NL_CB_CUSTOM, on_error, &x);
  int err = nl_send_auto(s.sock, msg);
  if (err < 0) throw UapiError(what + ": cannot send: " + nl_geterror(err));
  while (!x.done && !x.error && x.parse_error.empty()) {
    err = nl_recvmsgs(s.sock, cb.get());
    if (x.error || !x.parse_error.empty()) break;
    if (err < 0) throw UapiError(what + ": " + nl_geterror(err));
  }
  if (!x.parse_error.empty()) throw UapiError(what + ": " + x.parse_error);
  if (x.error) {
    throw UapiError(what + ": the kernel answered " + std::strerror(x.error) + " (errno " +
                        std::to_string(x.error) + ")",
                    x.error);
  }
}

}  // namespace

std::vector<NlMsgPtr> build_wg_set_messages(int family, const std::string& ifname,
                                            const UapiSet& set, size_t max_size) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    throw UapiError("WireGuard device name \"" + ifname + "\" is not 1 to 15 bytes");
  }
  if (set.listen_port && (*set.listen_port < 0 || *set.listen_port > 65535)) {
    throw UapiError("WireGuard listen port " + std::to_string(*set.listen_port) +
                    " is not 0..65535");
  }
  const int flags = NLM_F_REQUEST | NLM_F_ACK;
  std::vector<NlMsgPtr> out;
  NlMsgPtr msg = new_message(family, WG_CMD_SET_DEVICE, flags, max_size, ifname);
  try {
    if (set.private_key)
      check_put(
          nla_put(msg.get(), WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, set.private_key->bytes.data()));
    if (set.listen_port)
      check_put(
          nla_put_u16(msg.get(), WGDEVICE_A_LISTEN_PORT, static_cast<uint16_t>(*set.listen_port)));
    if (set.replace_peers)
      check_put(nla_put_u32(msg.get(), WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS));
  } catch (const NoRoom&) {
    throw UapiError("generic netlink: a WireGuard request buffer of " + std::to_string(max_size) +
                    " bytes is too small");
  }
  size_t i = 0;
  while (i < set.peers.size()) {
    nlattr* peers = nullptr;
    size_t in_this = 0;
    try {
      peers = nest(msg.get(), WGDEVICE_A_PEERS);
      for (; i < set.peers.size(); ++i, ++in_this) {
        nlattr* before = reinterpret_cast<nlattr*>(nlmsg_tail(nlmsg_hdr(msg.get())));
        try {
          put_peer(msg.get(), set.peers[i]);
        } catch (const NoRoom&) {
          nla_nest_cancel(msg.get(), before);  // drop the partial peer
          throw;
        }
      }
      nla_nest_end(msg.get(), peers);
    } catch (const NoRoom&) {
      if (in_this == 0) {
        throw UapiError("generic netlink: WireGuard peer " + set.peers[i].public_key.base64() +
                        " does not fit in a " + std::to_string(max_size) + "-byte request");
      }
      nla_nest_end(msg.get(), peers);
    }
    if (i < set.peers.size()) {  // full: send what we have, go on in a new message
      out.push_back(std::move(msg));
      msg = new_message(family, WG_CMD_SET_DEVICE, flags, max_size, ifname);
    }
  }
  out.push_back(std::move(msg));
  return out;
}

NlMsgPtr build_wg_get_message(int family, const std::string& ifname) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    throw UapiError("WireGuard device name \"" + ifname + "\" is not 1 to 15 bytes");
  }
  return new_message(family, WG_CMD_GET_DEVICE, NLM_F_REQUEST | NLM_F_DUMP, 256, ifname);
}

void parse_wg_get_reply(nlmsghdr* hdr, UapiDevice* dev) {
  nlattr* tb[WGDEVICE_A_MAX + 1] = {};
  int err = genlmsg_parse(hdr, 0, tb, WGDEVICE_A_MAX, nullptr);
  if (err < 0)
    throw UapiError(std::string("generic netlink GET_DEVICE: malformed answer: ") +
                    nl_geterror(err));
  if (tb[WGDEVICE_A_PRIVATE_KEY]) {
    WgKey k = key_of(tb[WGDEVICE_A_PRIVATE_KEY], "the private key");
    if (k != WgKey{})
      dev->private_key = k;  // the kernel sends zeros for "no key", the UAPI nothing
  }
  if (tb[WGDEVICE_A_LISTEN_PORT]) dev->listen_port = nla_get_u16(tb[WGDEVICE_A_LISTEN_PORT]);
  if (const nlattr* peers = tb[WGDEVICE_A_PEERS]) {
    const nlattr* p;
    int rem;
    nla_for_each_nested(p, peers, rem) parse_peer(p, dev);
  }
}

void GenlDeviceClient::set(const UapiSet& s) const {
  const std::string what = "WireGuard SET_DEVICE on " + ifname_;
  Socket sock(ifname_);
  for (auto& msg : build_wg_set_messages(sock.family, ifname_, s))
    exchange(sock, msg.get(), nullptr, what);
}

UapiDevice GenlDeviceClient::get() const {
  const std::string what = "WireGuard GET_DEVICE on " + ifname_;
  Socket sock(ifname_);
  NlMsgPtr msg = build_wg_get_message(sock.family, ifname_);
  UapiDevice dev;
  exchange(sock, msg.get(), &dev, what);
  return dev;
}

}  // namespace flannel
