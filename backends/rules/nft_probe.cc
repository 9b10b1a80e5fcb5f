#include "backends/rules/nft_generation.h"

#include <arpa/inet.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

namespace flannel {
namespace {

struct SockFree {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct MsgFree {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};

// NFT_MSG_NEWGEN answer: NFTA_GEN_ID (big-endian u32) after the nfgenmsg header.
int on_gen(nl_msg* msg, void* arg) {
  nlmsghdr* h = nlmsg_hdr(msg);
  if ((h->nlmsg_type & 0xff) != NFT_MSG_NEWGEN || !nlmsg_valid_hdr(h, sizeof(nfgenmsg)))
    return NL_OK;
  nlattr* tb[NFTA_GEN_MAX + 1];
  if (nlmsg_parse(h, sizeof(nfgenmsg), tb, NFTA_GEN_MAX, nullptr) < 0 || !tb[NFTA_GEN_ID])
    return NL_OK;
  *static_cast<std::optional<uint32_t>*>(arg) = ntohl(nla_get_u32(tb[NFTA_GEN_ID]));
  return NL_OK;
}

}  // namespace

std::optional<uint32_t> nft_ruleset_generation() {
  std::unique_ptr<nl_sock, SockFree> sock(nl_socket_alloc());
  if (!sock || nl_connect(sock.get(), NETLINK_NETFILTER) < 0) return std::nullopt;
  std::unique_ptr<nl_msg, MsgFree> msg(
      nlmsg_alloc_simple((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST));
  if (!msg) return std::nullopt;
  nfgenmsg hdr{};
  hdr.nfgen_family = AF_UNSPEC;
  hdr.version = NFNETLINK_V0;
  if (nlmsg_append(msg.get(), &hdr, sizeof hdr, NLMSG_ALIGNTO) < 0) return std::nullopt;
  if (nl_send_auto(sock.get(), msg.get()) < 0) return std::nullopt;
  std::optional<uint32_t> gen;
  nl_socket_modify_cb(sock.get(), NL_CB_VALID, NL_CB_CUSTOM, on_gen, &gen);
  if (nl_recvmsgs_default(sock.get()) < 0) return std::nullopt;
  return gen;
}

}  // namespace flannel
