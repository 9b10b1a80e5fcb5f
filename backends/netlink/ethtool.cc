#include "backends/netlink/ethtool.h"

#include <linux/ethtool.h>
#include <linux/ethtool_netlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "backends/netlink/internal.h"

namespace flannel {

using namespace nl;

namespace {

// A generic netlink socket with the "ethtool" family resolved; closed on destruction.
class EthtoolSocket {
 public:
  explicit EthtoolSocket(const std::string& what) {
    sock_ = nl_socket_alloc();
    if (!sock_) fail_alloc(what);
    if (int err = genl_connect(sock_); err < 0) {
      nl_socket_free(sock_);
      fail(what, err);
    }
    nl_socket_enable_msg_peek(sock_);  // a verbose FEATURES_GET reply can exceed a page
    family_ = genl_ctrl_resolve(sock_, ETHTOOL_GENL_NAME);
    if (family_ < 0) {
      nl_socket_free(sock_);
      throw NetlinkError(
          "netlink " + what + ": the kernel has no \"ethtool\" generic netlink family (before 5.6)",
          NLE_OPNOTSUPP);
    }
  }
  ~EthtoolSocket() { nl_socket_free(sock_); }
  EthtoolSocket(const EthtoolSocket&) = delete;
  EthtoolSocket& operator=(const EthtoolSocket&) = delete;

  nl_sock* sock() const { return sock_; }
  // A FEATURES_GET or FEATURES_SET request for link `index` carrying the request header.
  MsgPtr request(uint8_t cmd, int index, uint32_t flags, const std::string& what) const {
    MsgPtr msg(nlmsg_alloc());
    if (!msg) fail_alloc(what);
    if (!genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, family_, 0, 0, cmd,
                     ETHTOOL_GENL_VERSION))
      fail_alloc(what);
    nlattr* hdr = nla_nest_start(msg.get(), NLA_F_NESTED | ETHTOOL_A_FEATURES_HEADER);
    if (!hdr || nla_put_u32(msg.get(), ETHTOOL_A_HEADER_DEV_INDEX, static_cast<uint32_t>(index)) ||
        nla_put_u32(msg.get(), ETHTOOL_A_HEADER_FLAGS, flags))
      fail_alloc(what);
    nla_nest_end(msg.get(), hdr);
    return msg;
  }

 private:
  nl_sock* sock_ = nullptr;
  int family_ = 0;
};

// What FEATURES_GET_REPLY said about one feature.
struct FeatureQuery {
  std::string name;
  bool answered = false;
  bool active = false;
};

// Whether the verbose bitset `set` lists `name` as set. The kernel sends ACTIVE without a mask
// (ETHTOOL_A_BITSET_NOMASK): the list holds the set bits only; with a mask a bit is set when it
// carries ETHTOOL_A_BITSET_BIT_VALUE.
bool bitset_has(nlattr* set, const std::string& name) {
  nlattr* tb[ETHTOOL_A_BITSET_MAX + 1];
  if (nla_parse_nested(tb, ETHTOOL_A_BITSET_MAX, set, nullptr) < 0 || !tb[ETHTOOL_A_BITSET_BITS])
    return false;
  const bool list = tb[ETHTOOL_A_BITSET_NOMASK] != nullptr;
  nlattr* bit;
  int rem;
  nla_for_each_nested(bit, tb[ETHTOOL_A_BITSET_BITS], rem) {
    nlattr* b[ETHTOOL_A_BITSET_BIT_MAX + 1];
    if (nla_parse_nested(b, ETHTOOL_A_BITSET_BIT_MAX, bit, nullptr) < 0) continue;
    if (!b[ETHTOOL_A_BITSET_BIT_NAME] || nla_get_string(b[ETHTOOL_A_BITSET_BIT_NAME]) != name)
      continue;
    return list || b[ETHTOOL_A_BITSET_BIT_VALUE] != nullptr;
  }
  return false;
}

int on_features(nl_msg* msg, void* arg) {
  auto* q = static_cast<FeatureQuery*>(arg);
  nlattr* tb[ETHTOOL_A_FEATURES_MAX + 1];
  if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, ETHTOOL_A_FEATURES_MAX, nullptr) < 0) return NL_SKIP;
  q->answered = true;
  q->active = tb[ETHTOOL_A_FEATURES_ACTIVE] && bitset_has(tb[ETHTOOL_A_FEATURES_ACTIVE], q->name);
  return NL_OK;
}

std::string what_of(const char* op, int index, const std::string& feature) {
  return std::string("ethtool ") + op + " " + dev(index) + " " + feature;
}

}  // namespace

bool ethtool_feature(int index, const std::string& feature) {
  const std::string what = what_of("-k", index, feature);
  EthtoolSocket s(what);
  MsgPtr msg = s.request(ETHTOOL_MSG_FEATURES_GET, index, 0, what);
  FeatureQuery q;
  q.name = feature;
  CbPtr base(nl_socket_get_cb(s.sock()));
  CbPtr cb(nl_cb_clone(base.get()));
  if (!cb) fail_alloc(what);
  nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, on_features, &q);
  if (int err = nl_send_auto(s.sock(), msg.get()); err < 0) fail(what, err);
  // The reply, then the ack (nl_send_auto asked for one); an error ends either wait.
  while (!q.answered)
    if (int err = nl_recvmsgs(s.sock(), cb.get()); err < 0) fail(what, err);
  if (int err = nl_wait_for_ack(s.sock()); err < 0) fail(what, err);
  return q.active;
}

void ethtool_feature_set(int index, const std::string& feature, bool on) {
  const std::string what = what_of("-K", index, feature) + (on ? " on" : " off");
  {
    EthtoolSocket s(what);
    MsgPtr msg = s.request(ETHTOOL_MSG_FEATURES_SET, index, ETHTOOL_FLAG_OMIT_REPLY, what);
    // WANTED as a verbose bitset without NOMASK: only the listed bit changes.
    nlattr* wanted = nla_nest_start(msg.get(), NLA_F_NESTED | ETHTOOL_A_FEATURES_WANTED);
    nlattr* bits =
        wanted ? nla_nest_start(msg.get(), NLA_F_NESTED | ETHTOOL_A_BITSET_BITS) : nullptr;
    nlattr* bit =
        bits ? nla_nest_start(msg.get(), NLA_F_NESTED | ETHTOOL_A_BITSET_BITS_BIT) : nullptr;
    if (!bit || nla_put_string(msg.get(), ETHTOOL_A_BITSET_BIT_NAME, feature.c_str()) ||
        (on && nla_put_flag(msg.get(), ETHTOOL_A_BITSET_BIT_VALUE)))
      fail_alloc(what);
    nla_nest_end(msg.get(), bit);
    nla_nest_end(msg.get(), bits);
    nla_nest_end(msg.get(), wanted);
    send_and_ack(s.sock(), msg.get(), what);
  }
  if (ethtool_feature(index, feature) != on) {
    throw NetlinkError("netlink " + what + ": the kernel kept it " + (on ? "off" : "on") +
                       " (a fixed feature of this device, or one it does not have)");
  }
}

void ethtool_tx_checksum_set_legacy(const std::string& name, bool on) {
  const std::string what = "ethtool -K " + name + " tx " + (on ? "on" : "off") + " (ioctl)";
  if (name.empty() || name.size() >= IFNAMSIZ)
    throw NetlinkError("netlink " + what + ": not a link name");
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw NetlinkError("netlink " + what + ": socket: " + std::strerror(errno));
  ethtool_value value{};
  value.cmd = ETHTOOL_STXCSUM;
  value.data = on ? 1 : 0;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.c_str(), name.size());
  ifr.ifr_data = reinterpret_cast<char*>(&value);
  int rc = ::ioctl(fd, SIOCETHTOOL, &ifr);
  int saved = errno;
  ::close(fd);
  if (rc < 0) throw NetlinkError("netlink " + what + ": " + std::strerror(saved));
}

}  // namespace flannel
