#include "daemon/agent/iface_watch.h"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "daemon/common/logging.h"

namespace flannel {

namespace {

// The route's destination prefix and table, from its header and attributes; nullopt when the
// message is too short to be a route.
std::optional<std::pair<IP4Net, unsigned>> route_of(nlmsghdr* h, int* family) {
  if (!nlmsg_valid_hdr(h, sizeof(rtmsg))) return std::nullopt;
  const auto* rt = static_cast<const rtmsg*>(nlmsg_data(h));
  *family = rt->rtm_family;
  IP4Net dst{IP4{}, rt->rtm_dst_len};
  unsigned table = rt->rtm_table;
  nlattr* attrs[RTA_MAX + 1] = {};
  if (nlmsg_parse(h, sizeof(rtmsg), attrs, RTA_MAX, nullptr) < 0) return std::nullopt;
  if (attrs[RTA_TABLE] && nla_len(attrs[RTA_TABLE]) >= 4) table = nla_get_u32(attrs[RTA_TABLE]);
  if (attrs[RTA_DST] && nla_len(attrs[RTA_DST]) >= 4)
    dst.ip.value = ntohl(nla_get_u32(attrs[RTA_DST]));
  return std::make_pair(dst, table);
}

}  // namespace

bool IfaceWatch::route_counts(const IfaceRoutes& routes, int family, IP4Net dst, unsigned table) {
  if (!routes.follow || family != AF_INET || table == RT_TABLE_LOCAL) return false;
  if (dst.prefix == 0) return true;  // a default route
  return routes.toward && dst.network().contains(*routes.toward);
}

IfaceWatch::IfaceWatch(int index, std::function<void()> changed, IfaceRoutes routes)
    : changed_(std::move(changed)),
      routes_(routes),
      index_(index),
      stop_fd_(eventfd(0, EFD_CLOEXEC)) {
  if (!stop_fd_.valid())
    throw std::runtime_error(std::string("interface watch: eventfd: ") + std::strerror(errno));
  sock_ = nl_socket_alloc();
  if (!sock_) throw std::runtime_error("interface watch: cannot allocate a netlink socket");
  nl_socket_disable_seq_check(sock_);
  nl_socket_modify_cb(sock_, NL_CB_VALID, NL_CB_CUSTOM, &IfaceWatch::on_message, this);
  int err = nl_connect(sock_, NETLINK_ROUTE);
  if (err == 0) err = nl_socket_set_nonblocking(sock_);
  if (err == 0)
    err =
        nl_socket_add_memberships(sock_, RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, 0);
  // The agent's own route writes (host-gw, thousands of peers) come by too when routes are
  // followed: room for a sync's worth before an overflow (which only means "look again").
  if (err == 0 && routes_.follow) err = nl_socket_add_memberships(sock_, RTNLGRP_IPV4_ROUTE, 0);
  if (err == 0 && routes_.follow) err = nl_socket_set_buffer_size(sock_, 1 << 20, 0);
  if (err < 0) {
    nl_socket_free(sock_);
    throw std::runtime_error(std::string("interface watch: cannot subscribe to link, address "
                                         "and route notifications: ") +
                             nl_geterror(err));
  }
  thread_ = std::thread([this] { run(); });
}

IfaceWatch::~IfaceWatch() {
  uint64_t one = 1;
  if (::write(stop_fd_.get(), &one, sizeof(one)) < 0) {
    // Cannot happen with a valid eventfd; the join below would then hang, so say so.
    FLOG_ERROR("interface watch: cannot stop its thread: {}", std::strerror(errno));
  }
  thread_.join();
  nl_socket_free(sock_);
}

int IfaceWatch::on_message(nl_msg* msg, void* arg) {
  auto* self = static_cast<IfaceWatch*>(arg);
  nlmsghdr* h = nlmsg_hdr(msg);
  int index = -1;
  if ((h->nlmsg_type == RTM_NEWLINK || h->nlmsg_type == RTM_DELLINK) &&
      nlmsg_valid_hdr(h, sizeof(ifinfomsg))) {
    index = static_cast<const ifinfomsg*>(nlmsg_data(h))->ifi_index;
  } else if ((h->nlmsg_type == RTM_NEWADDR || h->nlmsg_type == RTM_DELADDR) &&
             nlmsg_valid_hdr(h, sizeof(ifaddrmsg))) {
    index = static_cast<int>(static_cast<const ifaddrmsg*>(nlmsg_data(h))->ifa_index);
  }
  if (h->nlmsg_type == RTM_NEWROUTE || h->nlmsg_type == RTM_DELROUTE) {
    int family = 0;
    auto route = route_of(h, &family);
    if (route && route_counts(self->routes_, family, route->first, route->second))
      self->hit_ = true;
    return NL_OK;
  }
  const int followed = self->index_.load();
  if (index >= 0 && (followed == 0 || index == followed)) self->hit_ = true;
  // Any deleted link: it may be the backend's device (Backend::device_gone()).
  if (h->nlmsg_type == RTM_DELLINK) self->hit_ = true;
  return NL_OK;
}

void IfaceWatch::run() {
  nl_cb* cb = nl_socket_get_cb(sock_);  // a reference of our own, put on return
  struct PutCb {
    nl_cb* cb;
    ~PutCb() { nl_cb_put(cb); }
  } put{cb};
  for (;;) {
    pollfd fds[2] = {{nl_socket_get_fd(sock_), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      FLOG_ERROR("interface watch: poll: {}; interface changes are no longer followed",
                 std::strerror(errno));
      return;
    }
    if (fds[1].revents) return;
    hit_ = false;
    // Everything queued: nl_recvmsgs_report() answers how many messages it read, 0 or
    // -NLE_AGAIN (the socket is non-blocking) when it is empty, another error when it failed
    // (an overflow: notifications were lost).
    for (;;) {
      int n = nl_recvmsgs_report(sock_, cb);
      if (n == 0 || n == -NLE_AGAIN) break;
      if (n < 0) {
        FLOG_V(1, "interface watch: {}; looking at the interface again", nl_geterror(n));
        hit_ = true;
        break;
      }
    }
    if (hit_) changed_();
  }
}

}  // namespace flannel
