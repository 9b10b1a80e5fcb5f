// The kernel WireGuard client's pure parts (this machine's kernel has no wireguard module, so the
// kernel path is tested here, not in a lab): the WG_CMD_SET_DEVICE messages built for a device and
// peer set, parsed back with libnl's genlmsg_parse / nla_parse_nested, attribute by attribute; the
// GET_DEVICE answer parser fed messages built with nla_put, as the kernel sends them; the
// per-peer metrics from such an answer; and the choice between kernel and wireguard-go.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <linux/time_types.h>
#include <linux/wireguard.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "backends/backend.h"
#include "backends/wireguard/config.h"
#include "backends/wireguard/genl.h"
#include "backends/wireguard/wireguard.h"

namespace flannel {
namespace {

constexpr int kFamily = 0x1d;  // any resolved family id

WgKey key(uint8_t fill) {
  WgKey k;
  k.bytes.fill(fill);
  return k;
}
WgKey key_at(const nlattr* a) {
  EXPECT_EQ(nla_len(a), 32);
  WgKey k;
  std::memcpy(k.bytes.data(), nla_data(a), 32);
  return k;
}

using Attrs = std::vector<nlattr*>;
Attrs parse_nested(nlattr* a, int max) {
  EXPECT_NE(a->nla_type & NLA_F_NESTED, 0)
      << "nest without NLA_F_NESTED (the kernel validates strictly)";
  Attrs tb(static_cast<size_t>(max) + 1);
  EXPECT_EQ(nla_parse_nested(tb.data(), max, a, nullptr), 0);
  return tb;
}
std::vector<nlattr*> elements(nlattr* list) {
  std::vector<nlattr*> out;
  nlattr* e;
  int rem;
  nla_for_each_nested(e, list, rem) out.push_back(e);
  EXPECT_EQ(rem, 0);
  return out;
}

struct SetMessage {
  nlmsghdr* hdr;
  Attrs tb;
};
SetMessage parse_set(const NlMsgPtr& msg) {
  nlmsghdr* hdr = nlmsg_hdr(msg.get());
  EXPECT_EQ(hdr->nlmsg_type, kFamily);
  EXPECT_EQ(hdr->nlmsg_flags & (NLM_F_REQUEST | NLM_F_ACK), NLM_F_REQUEST | NLM_F_ACK);
  genlmsghdr* g = genlmsg_hdr(hdr);
  EXPECT_EQ(g->cmd, WG_CMD_SET_DEVICE);
  EXPECT_EQ(g->version, WG_GENL_VERSION);
  Attrs tb(WGDEVICE_A_MAX + 1);
  EXPECT_EQ(genlmsg_parse(hdr, 0, tb.data(), WGDEVICE_A_MAX, nullptr), 0);
  EXPECT_TRUE(tb[WGDEVICE_A_IFNAME]);
  if (tb[WGDEVICE_A_IFNAME]) { EXPECT_STREQ(nla_get_string(tb[WGDEVICE_A_IFNAME]), "flannel-wg"); }
  return {hdr, tb};
}

TEST(WireguardGenl, SetDeviceCarriesEveryAttribute) {
  UapiSet set;
  set.private_key = key(0x11);
  set.listen_port = 51820;
  set.replace_peers = true;
  UapiPeerSet full;  // as the backend's peer_set() with a PSK and keepalive
  full.public_key = key(0x22);
  full.preshared_key = key(0x33);
  full.endpoint = "10.250.0.2:51820";
  full.keepalive = 25;
  full.replace_allowed_ips = true;
  full.allowed_ips = {IP4Net::parse("10.5.34.0/24")};
  UapiPeerSet gone;
  gone.public_key = key(0x44);
  gone.remove = true;
  gone.endpoint = "10.250.0.9:1";  // ignored with remove, as in the UAPI rendering
  UapiPeerSet v6;  // keepalive 0 explicitly, PSK cleared, an IPv6 endpoint, no allowed IPs
  v6.public_key = key(0x55);
  v6.preshared_key = WgKey{};
  v6.endpoint = "[fd00::2]:51821";
  v6.keepalive = 0;
  UapiPeerSet untouched;  // only the key: nothing else is sent
  untouched.public_key = key(0x66);
  set.peers = {full, gone, v6, untouched};

  auto msgs = build_wg_set_messages(kFamily, "flannel-wg", set);
  ASSERT_EQ(msgs.size(), 1u);
  auto m = parse_set(msgs[0]);
  ASSERT_TRUE(m.tb[WGDEVICE_A_PRIVATE_KEY]);
  EXPECT_EQ(key_at(m.tb[WGDEVICE_A_PRIVATE_KEY]), key(0x11));
  ASSERT_TRUE(m.tb[WGDEVICE_A_LISTEN_PORT]);
  EXPECT_EQ(nla_get_u16(m.tb[WGDEVICE_A_LISTEN_PORT]), 51820);
  ASSERT_TRUE(m.tb[WGDEVICE_A_FLAGS]);
  EXPECT_EQ(nla_get_u32(m.tb[WGDEVICE_A_FLAGS]), static_cast<uint32_t>(WGDEVICE_F_REPLACE_PEERS));
  EXPECT_FALSE(m.tb[WGDEVICE_A_IFINDEX]);
  EXPECT_FALSE(m.tb[WGDEVICE_A_FWMARK]);
  ASSERT_TRUE(m.tb[WGDEVICE_A_PEERS]);
  EXPECT_NE(m.tb[WGDEVICE_A_PEERS]->nla_type & NLA_F_NESTED, 0);
  auto peers = elements(m.tb[WGDEVICE_A_PEERS]);
  ASSERT_EQ(peers.size(), 4u);

  auto p = parse_nested(peers[0], WGPEER_A_MAX);
  EXPECT_EQ(key_at(p[WGPEER_A_PUBLIC_KEY]), key(0x22));
  ASSERT_TRUE(p[WGPEER_A_PRESHARED_KEY]);
  EXPECT_EQ(key_at(p[WGPEER_A_PRESHARED_KEY]), key(0x33));
  ASSERT_TRUE(p[WGPEER_A_FLAGS]);
  EXPECT_EQ(nla_get_u32(p[WGPEER_A_FLAGS]), static_cast<uint32_t>(WGPEER_F_REPLACE_ALLOWEDIPS));
  ASSERT_TRUE(p[WGPEER_A_ENDPOINT]);
  ASSERT_EQ(nla_len(p[WGPEER_A_ENDPOINT]), static_cast<int>(sizeof(sockaddr_in)));
  sockaddr_in sin;
  std::memcpy(&sin, nla_data(p[WGPEER_A_ENDPOINT]), sizeof(sin));
  EXPECT_EQ(sin.sin_family, AF_INET);
  EXPECT_EQ(ntohs(sin.sin_port), 51820);
  EXPECT_EQ(ntohl(sin.sin_addr.s_addr), IP4::parse("10.250.0.2").value);
  ASSERT_TRUE(p[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
  EXPECT_EQ(nla_get_u16(p[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]), 25);
  ASSERT_TRUE(p[WGPEER_A_ALLOWEDIPS]);
  auto ips = elements(p[WGPEER_A_ALLOWEDIPS]);
  ASSERT_EQ(ips.size(), 1u);
  auto ip = parse_nested(ips[0], WGALLOWEDIP_A_MAX);
  EXPECT_EQ(nla_get_u16(ip[WGALLOWEDIP_A_FAMILY]), AF_INET);
  ASSERT_EQ(nla_len(ip[WGALLOWEDIP_A_IPADDR]), 4);
  uint32_t addr;
  std::memcpy(&addr, nla_data(ip[WGALLOWEDIP_A_IPADDR]), 4);
  EXPECT_EQ(ntohl(addr), IP4::parse("10.5.34.0").value);
  EXPECT_EQ(nla_get_u8(ip[WGALLOWEDIP_A_CIDR_MASK]), 24);
  EXPECT_FALSE(p[WGPEER_A_LAST_HANDSHAKE_TIME]);

  p = parse_nested(peers[1], WGPEER_A_MAX);
  EXPECT_EQ(key_at(p[WGPEER_A_PUBLIC_KEY]), key(0x44));
  ASSERT_TRUE(p[WGPEER_A_FLAGS]);
  EXPECT_EQ(nla_get_u32(p[WGPEER_A_FLAGS]), static_cast<uint32_t>(WGPEER_F_REMOVE_ME));
  for (int a : {WGPEER_A_PRESHARED_KEY, WGPEER_A_ENDPOINT, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
                WGPEER_A_ALLOWEDIPS})
    EXPECT_FALSE(p[a]) << "attribute " << a << " sent with remove";

  p = parse_nested(peers[2], WGPEER_A_MAX);
  EXPECT_EQ(key_at(p[WGPEER_A_PUBLIC_KEY]), key(0x55));
  ASSERT_TRUE(p[WGPEER_A_PRESHARED_KEY]);
  EXPECT_EQ(key_at(p[WGPEER_A_PRESHARED_KEY]), WgKey{}) << "a zero PSK clears it";
  ASSERT_TRUE(p[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
  EXPECT_EQ(nla_get_u16(p[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]), 0);
  EXPECT_FALSE(p[WGPEER_A_FLAGS]);
  EXPECT_FALSE(p[WGPEER_A_ALLOWEDIPS]);
  ASSERT_EQ(nla_len(p[WGPEER_A_ENDPOINT]), static_cast<int>(sizeof(sockaddr_in6)));
  sockaddr_in6 sin6;
  std::memcpy(&sin6, nla_data(p[WGPEER_A_ENDPOINT]), sizeof(sin6));
  EXPECT_EQ(sin6.sin6_family, AF_INET6);
  EXPECT_EQ(ntohs(sin6.sin6_port), 51821);
  IP6 ip6;
  std::memcpy(ip6.bytes.data(), &sin6.sin6_addr, 16);
  EXPECT_EQ(ip6.str(), "fd00::2");

  p = parse_nested(peers[3], WGPEER_A_MAX);
  EXPECT_EQ(key_at(p[WGPEER_A_PUBLIC_KEY]), key(0x66));
  for (int a = WGPEER_A_PRESHARED_KEY; a <= WGPEER_A_MAX; ++a)
    EXPECT_FALSE(p[a]) << "attribute " << a;
}

TEST(WireguardGenl, SetWithoutDeviceFieldsOrPeersSendsOnlyTheName) {
  auto msgs = build_wg_set_messages(kFamily, "flannel-wg", UapiSet{});
  ASSERT_EQ(msgs.size(), 1u);
  auto m = parse_set(msgs[0]);
  for (int a = WGDEVICE_A_IFINDEX; a <= WGDEVICE_A_MAX; ++a) {
    if (a != WGDEVICE_A_IFNAME) { EXPECT_FALSE(m.tb[a]) << "attribute " << a; }
  }
}

TEST(WireguardGenl, LargeSetIsSplitAcrossMessagesKeepingOrder) {
  UapiSet set;
  set.private_key = key(0x01);
  set.listen_port = 51820;
  set.replace_peers = true;
  for (int i = 0; i < 300; ++i) {
    UapiPeerSet p;
    p.public_key.bytes[0] = static_cast<uint8_t>(i);
    p.public_key.bytes[1] = static_cast<uint8_t>(i >> 8);
    p.endpoint = "10.250.1." + std::to_string(i % 250 + 1) + ":51820";
    p.keepalive = 0;
    p.replace_allowed_ips = true;
    p.allowed_ips = {
        IP4Net{IP4{IP4::parse("10.5.0.0").value + (static_cast<uint32_t>(i) << 8)}, 24}};
    set.peers.push_back(p);
  }
  auto msgs = build_wg_set_messages(kFamily, "flannel-wg", set, 4096);
  ASSERT_GT(msgs.size(), 5u);
  std::vector<WgKey> seen;
  for (size_t n = 0; n < msgs.size(); ++n) {
    SCOPED_TRACE(n);
    EXPECT_LE(nlmsg_hdr(msgs[n].get())->nlmsg_len, 4096u);
    auto m = parse_set(msgs[n]);
    // Device attributes, REPLACE_PEERS above all, only in the first message: the later ones add.
    EXPECT_EQ(m.tb[WGDEVICE_A_PRIVATE_KEY] != nullptr, n == 0);
    EXPECT_EQ(m.tb[WGDEVICE_A_LISTEN_PORT] != nullptr, n == 0);
    EXPECT_EQ(m.tb[WGDEVICE_A_FLAGS] != nullptr, n == 0);
    ASSERT_TRUE(m.tb[WGDEVICE_A_PEERS]);
    for (nlattr* e : elements(m.tb[WGDEVICE_A_PEERS])) {
      auto p = parse_nested(e, WGPEER_A_MAX);
      ASSERT_TRUE(p[WGPEER_A_ALLOWEDIPS]) << "a peer was cut";
      seen.push_back(key_at(p[WGPEER_A_PUBLIC_KEY]));
    }
  }
  ASSERT_EQ(seen.size(), 300u);
  for (size_t i = 0; i < 300; ++i) EXPECT_EQ(seen[i], set.peers[i].public_key) << i;
}

std::string set_error(const UapiSet& set, const std::string& ifname = "flannel-wg",
                      size_t max = kWgGenlMaxMessage) {
  try {
    build_wg_set_messages(kFamily, ifname, set, max);
  } catch (const UapiError& e) { return e.what(); }
  return "(no error)";
}

TEST(WireguardGenl, ValuesTheKernelCannotTakeAreClearErrors) {
  UapiSet set;
  UapiPeerSet p;
  p.public_key = key(1);
  for (const std::string bad :
       {"10.250.0.2", "10.250.0.2:70000", "host:51820", "[fd00::2:51820", "10.250.0.2:"}) {
    p.endpoint = bad;
    set.peers = {p};
    EXPECT_EQ(set_error(set), "WireGuard endpoint \"" + bad + "\" is not IPv4:port or [IPv6]:port");
  }
  p.endpoint = "";
  p.keepalive = 70000;
  set.peers = {p};
  EXPECT_EQ(set_error(set), "WireGuard persistent keepalive 70000 is not 0..65535");
  EXPECT_EQ(set_error(UapiSet{}, "a-very-long-device-name"),
            "WireGuard device name \"a-very-long-device-name\" is not 1 to 15 bytes");
  p.keepalive.reset();
  p.allowed_ips.assign(100, IP4Net::parse("10.5.1.0/24"));
  set.peers = {p};
  EXPECT_NE(set_error(set, "flannel-wg", 1024).find("does not fit in a 1024-byte request"),
            std::string::npos);
}

TEST(WireguardGenl, GetDeviceIsADumpNamingTheDevice) {
  NlMsgPtr msg = build_wg_get_message(kFamily, "flannel-wg");
  nlmsghdr* hdr = nlmsg_hdr(msg.get());
  EXPECT_EQ(hdr->nlmsg_type, kFamily);
  EXPECT_EQ(hdr->nlmsg_flags & NLM_F_DUMP, NLM_F_DUMP);
  EXPECT_EQ(genlmsg_hdr(hdr)->cmd, WG_CMD_GET_DEVICE);
  EXPECT_EQ(genlmsg_hdr(hdr)->version, WG_GENL_VERSION);
  nlattr* tb[WGDEVICE_A_MAX + 1] = {};
  ASSERT_EQ(genlmsg_parse(hdr, 0, tb, WGDEVICE_A_MAX, nullptr), 0);
  ASSERT_TRUE(tb[WGDEVICE_A_IFNAME]);
  EXPECT_STREQ(nla_get_string(tb[WGDEVICE_A_IFNAME]), "flannel-wg");
}

// A GET_DEVICE answer message as the kernel builds it (wireguard's netlink.c get_device_dump).
class Reply {
 public:
  Reply() : msg_(nlmsg_alloc_size(8192)) {
    genlmsg_put(msg_.get(), 0, 1, kFamily, 0, NLM_F_MULTI, WG_CMD_GET_DEVICE, WG_GENL_VERSION);
  }
  nl_msg* get() { return msg_.get(); }
  nlmsghdr* hdr() { return nlmsg_hdr(msg_.get()); }
  nlattr* nest(int type) { return nla_nest_start(get(), NLA_F_NESTED | type); }
  void end(nlattr* a) { nla_nest_end(get(), a); }
  void key(int type, const WgKey& k) { nla_put(get(), type, 32, k.bytes.data()); }
  void allowed(int family, const void* addr, int len, int cidr) {
    nlattr* a = nest(0);
    nla_put_u16(get(), WGALLOWEDIP_A_FAMILY, static_cast<uint16_t>(family));
    nla_put(get(), WGALLOWEDIP_A_IPADDR, len, addr);
    nla_put_u8(get(), WGALLOWEDIP_A_CIDR_MASK, static_cast<uint8_t>(cidr));
    end(a);
  }

 private:
  NlMsgPtr msg_;
};

TEST(WireguardGenl, ParsesGetDeviceAnswersMergingSplitPeers) {
  Reply r1;
  r1.key(WGDEVICE_A_PRIVATE_KEY, key(0x11));
  r1.key(WGDEVICE_A_PUBLIC_KEY, key(0x12));
  nla_put_u16(r1.get(), WGDEVICE_A_LISTEN_PORT, 51820);
  nla_put_u32(r1.get(), WGDEVICE_A_IFINDEX, 7);
  nla_put_string(r1.get(), WGDEVICE_A_IFNAME, "flannel-wg");
  nlattr* peers = r1.nest(WGDEVICE_A_PEERS);
  {
    nlattr* p = r1.nest(0);
    r1.key(WGPEER_A_PUBLIC_KEY, key(0x22));
    r1.key(WGPEER_A_PRESHARED_KEY, key(0x33));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(51820);
    sin.sin_addr.s_addr = htonl(IP4::parse("10.250.0.2").value);
    nla_put(r1.get(), WGPEER_A_ENDPOINT, sizeof(sin), &sin);
    nla_put_u16(r1.get(), WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 25);
    __kernel_timespec ts{1764750000, 250000000};
    nla_put(r1.get(), WGPEER_A_LAST_HANDSHAKE_TIME, sizeof(ts), &ts);
    nla_put_u64(r1.get(), WGPEER_A_RX_BYTES, 123456789012ULL);
    nla_put_u64(r1.get(), WGPEER_A_TX_BYTES, 42);
    nla_put_u32(r1.get(), WGPEER_A_PROTOCOL_VERSION, 1);
    nlattr* ips = r1.nest(WGPEER_A_ALLOWEDIPS);
    uint32_t a4 = htonl(IP4::parse("10.5.34.0").value);
    r1.allowed(AF_INET, &a4, 4, 24);
    IP6 a6 = IP6::parse("fd00:5:22::");
    r1.allowed(AF_INET6, a6.bytes.data(), 16, 64);
    r1.end(ips);
    r1.end(p);
  }
  {  // never handshaked, no PSK, no endpoint yet; its allowed IPs go on in the next message
    nlattr* p = r1.nest(0);
    r1.key(WGPEER_A_PUBLIC_KEY, key(0x44));
    r1.key(WGPEER_A_PRESHARED_KEY, WgKey{});
    nla_put_u16(r1.get(), WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 0);
    __kernel_timespec zero{0, 0};
    nla_put(r1.get(), WGPEER_A_LAST_HANDSHAKE_TIME, sizeof(zero), &zero);
    nla_put_u64(r1.get(), WGPEER_A_RX_BYTES, 0);
    nla_put_u64(r1.get(), WGPEER_A_TX_BYTES, 0);
    nlattr* ips = r1.nest(WGPEER_A_ALLOWEDIPS);
    uint32_t a4 = htonl(IP4::parse("10.5.35.0").value);
    r1.allowed(AF_INET, &a4, 4, 24);
    r1.end(ips);
    r1.end(p);
  }
  r1.end(peers);
  Reply r2;  // the dump's next message: device attributes again, the same peer continued
  nla_put_u16(r2.get(), WGDEVICE_A_LISTEN_PORT, 51820);
  peers = r2.nest(WGDEVICE_A_PEERS);
  {
    nlattr* p = r2.nest(0);
    r2.key(WGPEER_A_PUBLIC_KEY, key(0x44));
    nlattr* ips = r2.nest(WGPEER_A_ALLOWEDIPS);
    uint32_t a4 = htonl(IP4::parse("10.6.0.0").value);
    r2.allowed(AF_INET, &a4, 4, 16);
    r2.end(ips);
    r2.end(p);
  }
  r2.end(peers);

  UapiDevice dev;
  parse_wg_get_reply(r1.hdr(), &dev);
  parse_wg_get_reply(r2.hdr(), &dev);
  ASSERT_TRUE(dev.private_key);
  EXPECT_EQ(*dev.private_key, key(0x11));
  EXPECT_EQ(dev.listen_port, 51820);
  ASSERT_EQ(dev.peers.size(), 2u);
  const UapiPeerStatus& a = dev.peers[0];
  EXPECT_EQ(a.public_key, key(0x22));
  EXPECT_TRUE(a.has_preshared_key);
  EXPECT_EQ(a.preshared_key, key(0x33));
  EXPECT_EQ(a.endpoint, "10.250.0.2:51820");
  EXPECT_EQ(a.keepalive, 25);
  EXPECT_EQ(a.last_handshake_sec, 1764750000);
  EXPECT_EQ(a.last_handshake_nsec, 250000000);
  EXPECT_EQ(a.rx_bytes, 123456789012ULL);
  EXPECT_EQ(a.tx_bytes, 42u);
  EXPECT_EQ(a.allowed_ips, std::vector<IP4Net>{IP4Net::parse("10.5.34.0/24")});
  EXPECT_EQ(a.allowed_ips_v6, std::vector<std::string>{"fd00:5:22::/64"});
  const UapiPeerStatus& b = dev.peers[1];
  EXPECT_EQ(b.public_key, key(0x44));
  EXPECT_FALSE(b.has_preshared_key);
  EXPECT_EQ(b.endpoint, "");
  EXPECT_EQ(b.last_handshake_sec, 0);
  EXPECT_EQ((std::vector<IP4Net>{IP4Net::parse("10.5.35.0/24"), IP4Net::parse("10.6.0.0/16")}),
            b.allowed_ips);

  // The metrics from this answer: the same figures the wireguard-go path exposes.
  std::map<WgKey, IP4Net> subnets{{key(0x22), IP4Net::parse("10.5.34.0/24")}};
  auto stats = wg_peer_stats(
      dev,
      [&](const WgKey& k) -> std::optional<IP4Net> {
        auto it = subnets.find(k);
        return it == subnets.end() ? std::nullopt : std::optional<IP4Net>(it->second);
      },
      1764750010.75);
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].public_key, key(0x22).base64());
  EXPECT_EQ(stats[0].subnet, IP4Net::parse("10.5.34.0/24"));
  ASSERT_TRUE(stats[0].handshake_age_seconds);
  EXPECT_DOUBLE_EQ(*stats[0].handshake_age_seconds, 10.5);
  EXPECT_EQ(stats[0].rx_bytes, 123456789012ULL);
  EXPECT_EQ(stats[0].tx_bytes, 42u);
  EXPECT_FALSE(stats[1].handshake_age_seconds);
  EXPECT_EQ(stats[1].subnet, IP4Net{});
  std::string text = render_wireguard_metrics(stats, 0);
  EXPECT_NE(
      text.find(
          "flannel_wireguard_peer_last_handshake_age_seconds{peer=\"10.5.34.0/24\",public_key=\"" +
          key(0x22).base64() + "\"} 10.500\n"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("flannel_wireguard_peer_rx_bytes{peer=\"10.5.34.0/24\",public_key=\"" +
                      key(0x22).base64() + "\"} 123456789012\n"),
            std::string::npos)
      << text;
}

std::string reply_error(Reply& r) {
  UapiDevice dev;
  try {
    parse_wg_get_reply(r.hdr(), &dev);
  } catch (const UapiError& e) { return e.what(); }
  return "(no error)";
}

TEST(WireguardGenl, MalformedAnswersAreErrorsNotCrashes) {
  {
    Reply r;
    uint8_t short_key[31] = {};
    nla_put(r.get(), WGDEVICE_A_PRIVATE_KEY, sizeof(short_key), short_key);
    EXPECT_EQ(reply_error(r), "generic netlink GET_DEVICE: the private key has 31 bytes, not 32");
  }
  {
    Reply r;
    nlattr* peers = r.nest(WGDEVICE_A_PEERS);
    nlattr* p = r.nest(0);
    nla_put_u64(r.get(), WGPEER_A_RX_BYTES, 1);
    r.end(p);
    r.end(peers);
    EXPECT_EQ(reply_error(r), "generic netlink GET_DEVICE: a peer without a public key");
  }
  {
    Reply r;
    nlattr* peers = r.nest(WGDEVICE_A_PEERS);
    nlattr* p = r.nest(0);
    r.key(WGPEER_A_PUBLIC_KEY, key(1));
    uint8_t junk[5] = {};
    nla_put(r.get(), WGPEER_A_ENDPOINT, sizeof(junk), junk);
    r.end(p);
    r.end(peers);
    EXPECT_EQ(reply_error(r),
              "generic netlink GET_DEVICE: a peer endpoint of 5 bytes is neither sockaddr_in nor "
              "sockaddr_in6");
  }
  {
    Reply r;
    nlattr* peers = r.nest(WGDEVICE_A_PEERS);
    nlattr* p = r.nest(0);
    r.key(WGPEER_A_PUBLIC_KEY, key(1));
    nlattr* ips = r.nest(WGPEER_A_ALLOWEDIPS);
    uint32_t a4 = 0;
    r.allowed(AF_INET, &a4, 4, 33);
    r.end(ips);
    r.end(p);
    r.end(peers);
    EXPECT_EQ(reply_error(r),
              "generic netlink GET_DEVICE: an allowed IP of family 2, 4 address bytes, /33");
  }
}

// The client on this machine's kernel, which has no wireguard module: resolving the family fails
// with an error naming the family, the module and the device (read-only, nothing is created).
TEST(WireguardGenl, ClientWithoutTheKernelFamilyIsAClearError) {
  GenlDeviceClient client("flannel-wg-ut");
  try {
    client.get();
    GTEST_SKIP() << "this kernel has the wireguard family (and no device flannel-wg-ut?)";
  } catch (const UapiError& e) {
    std::string what = e.what();
    if (what.find("no \"wireguard\" family") == std::string::npos) {
      GTEST_SKIP() << "this kernel has the wireguard family: " << what;
    }
    EXPECT_NE(what.find("is the wireguard module loaded?), needed for device flannel-wg-ut"),
              std::string::npos)
        << what;
  }
  EXPECT_THROW(client.set(UapiSet{}), UapiError);
}

// ---- the choice between kernel WireGuard and wireguard-go ----

struct Probe {
  bool kernel;
  int calls = 0;
  std::function<bool()> fn() {
    return [this] {
      ++calls;
      return kernel;
    };
  }
};

TEST(WireguardImplementationChoice, AutoFollowsTheProbe) {
  std::string why;
  Probe yes{true};
  EXPECT_EQ(choose_wg_implementation(WgImplementation::kAuto, yes.fn(), &why),
            WgImplementation::kKernel);
  EXPECT_EQ(yes.calls, 1);
  EXPECT_EQ(why, "wireguard: the kernel has WireGuard; using kernel WireGuard (generic netlink)");
  Probe no{false};
  EXPECT_EQ(choose_wg_implementation(WgImplementation::kAuto, no.fn(), &why),
            WgImplementation::kUserspace);
  EXPECT_EQ(why,
            "wireguard: no kernel WireGuard on this host (no wireguard module); using userspace "
            "WireGuard "
            "(wireguard-go)");
}

TEST(WireguardImplementationChoice, UserspaceForcedNeverProbes) {
  std::string why;
  for (bool kernel : {true, false}) {
    Probe probe{kernel};
    EXPECT_EQ(choose_wg_implementation(WgImplementation::kUserspace, probe.fn(), &why),
              WgImplementation::kUserspace);
    EXPECT_EQ(probe.calls, 0);
    EXPECT_EQ(why,
              "wireguard: using userspace WireGuard (wireguard-go), as configured "
              "(\"Implementation\":\"userspace\")");
  }
}

TEST(WireguardImplementationChoice, KernelForcedNeedsTheModule) {
  std::string why;
  Probe yes{true};
  EXPECT_EQ(choose_wg_implementation(WgImplementation::kKernel, yes.fn(), &why),
            WgImplementation::kKernel);
  EXPECT_EQ(why,
            "wireguard: using kernel WireGuard (generic netlink), as configured "
            "(\"Implementation\":\"kernel\")");
  Probe no{false};
  try {
    choose_wg_implementation(WgImplementation::kKernel, no.fn(), &why);
    ADD_FAILURE() << "kernel forced without a module did not fail";
  } catch (const BackendError& e) {
    EXPECT_STREQ(e.what(),
                 "kernel WireGuard not available on this host (no wireguard module); use "
                 "\"Implementation\":\"userspace\" (Debian's wireguard-go) or \"auto\" in the "
                 "Backend config");
  }
}

}  // namespace
}  // namespace flannel
