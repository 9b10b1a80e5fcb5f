#include "backends/rules/nft_probe.h"

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

// NFT_MSG_NEWTABLE answers of a dump: the family (nfgenmsg) and NFTA_TABLE_NAME.
int on_table(nl_msg* msg, void* arg) {
  nlmsghdr* h = nlmsg_hdr(msg);
  if ((h->nlmsg_type & 0xff) != NFT_MSG_NEWTABLE || !nlmsg_valid_hdr(h, sizeof(nfgenmsg)))
    return NL_OK;
  nlattr* tb[NFTA_TABLE_MAX + 1];
  if (nlmsg_parse(h, sizeof(nfgenmsg), tb, NFTA_TABLE_MAX, nullptr) < 0 || !tb[NFTA_TABLE_NAME])
    return NL_OK;
  auto* gen = static_cast<nfgenmsg*>(nlmsg_data(h));
  static_cast<std::vector<NftTableName>*>(arg)->push_back(
      {gen->nfgen_family, nla_get_string(tb[NFTA_TABLE_NAME])});
  return NL_OK;
}

// A connected netfilter socket and the request `type` (with the nfgenmsg header) sent on it.
std::unique_ptr<nl_sock, SockFree> send_request(int type, int flags) {
  std::unique_ptr<nl_sock, SockFree> sock(nl_socket_alloc());
  if (!sock || nl_connect(sock.get(), NETLINK_NETFILTER) < 0) return nullptr;
  std::unique_ptr<nl_msg, MsgFree> msg(
      nlmsg_alloc_simple((NFNL_SUBSYS_NFTABLES << 8) | type, NLM_F_REQUEST | flags));
  if (!msg) return nullptr;
  nfgenmsg hdr{};
  hdr.nfgen_family = AF_UNSPEC;
  hdr.version = NFNETLINK_V0;
  if (nlmsg_append(msg.get(), &hdr, sizeof hdr, NLMSG_ALIGNTO) < 0) return nullptr;
  if (nl_send_auto(sock.get(), msg.get()) < 0) return nullptr;
  return sock;
}

}  // namespace

std::optional<std::vector<NftTableName>> nft_tables() {
  auto sock = send_request(NFT_MSG_GETTABLE, NLM_F_DUMP);
  if (!sock) return std::nullopt;
  std::vector<NftTableName> tables;
  nl_socket_modify_cb(sock.get(), NL_CB_VALID, NL_CB_CUSTOM, on_table, &tables);
  if (nl_recvmsgs_default(sock.get()) < 0) return std::nullopt;
  return tables;
}

std::optional<uint32_t> nft_ruleset_generation() {
  auto sock = send_request(NFT_MSG_GETGEN, 0);
  if (!sock) return std::nullopt;
  std::optional<uint32_t> gen;
  nl_socket_modify_cb(sock.get(), NL_CB_VALID, NL_CB_CUSTOM, on_gen, &gen);
  if (nl_recvmsgs_default(sock.get()) < 0) return std::nullopt;
  return gen;
}

}  // namespace flannel
