// Kernel notifications for the benchmarks: an rtnetlink socket subscribed to groups inside a
// lab namespace (open_rtnl_watch), and RouteWatch, which stamps the moment an IPv4 route to a
// destination appears in, and leaves, each of N namespaces' main tables. The sockets are opened
// before the agents write, so the bench takes no RTNL lock while they do; one thread reads them
// all and stamps each notification as it reads it.
#pragma once

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/peer_ns.h"

namespace flannel::bench_util {

// A netlink route socket opened inside `netns`, member of `groups` (RTNLGRP_*), with a large
// receive buffer (root may exceed rmem_max). Throws std::runtime_error.
inline nl_sock* open_rtnl_watch(const std::string& netns, const std::vector<int>& groups) {
  nl_sock* sk = nullptr;
  {
    flannel::testing::PeerNs::Enter in(netns);
    sk = nl_socket_alloc();
    if (!sk) throw std::runtime_error("kernel watch: no socket");
    nl_socket_disable_seq_check(sk);
    // Non-blocking once connected (nl_socket_set_nonblocking needs the fd).
    bool ok = nl_connect(sk, NETLINK_ROUTE) == 0 && nl_socket_set_nonblocking(sk) == 0;
    for (int g : groups) ok = ok && nl_socket_add_membership(sk, g) == 0;
    if (!ok) {
      nl_socket_free(sk);
      throw std::runtime_error("kernel watch: cannot subscribe in " + netns);
    }
  }
  int size = 256 << 20;
  setsockopt(nl_socket_get_fd(sk), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
  return sk;
}

class RouteWatch {
 public:
  using Clock = std::chrono::steady_clock;
  using Key = std::pair<uint32_t, int>;  // destination (host order), prefix length

  explicit RouteWatch(const std::vector<std::string>& netns) : seen_(netns.size()) {
    for (size_t i = 0; i < netns.size(); ++i) {
      socks_.push_back(open_rtnl_watch(netns[i], {RTNLGRP_IPV4_ROUTE}));
      ctx_.push_back(std::make_unique<Ctx>(Ctx{this, i}));
    }
    thread_ = std::thread([this] { loop(); });
  }
  ~RouteWatch() {
    stop_ = true;
    thread_.join();
    for (nl_sock* sk : socks_) nl_socket_free(sk);
  }
  RouteWatch(const RouteWatch&) = delete;
  RouteWatch& operator=(const RouteWatch&) = delete;

  // Per namespace, when the route to dst/prefix was added at or after `since`; nullopt for the
  // namespaces where it had not come by `deadline` (or the watch overflowed).
  std::vector<std::optional<Clock::time_point>> wait_added(uint32_t dst, int prefix,
                                                           Clock::time_point since,
                                                           Clock::time_point deadline) {
    return wait(Key{dst, prefix}, since, deadline, &Seen::added);
  }
  // True once every namespace saw the route removed at or after `since`.
  bool wait_removed(uint32_t dst, int prefix, Clock::time_point since, Clock::time_point deadline) {
    for (const auto& t : wait(Key{dst, prefix}, since, deadline, &Seen::removed))
      if (!t) return false;
    return true;
  }

 private:
  struct Seen {
    Clock::time_point added{}, removed{};
  };
  struct Ctx {
    RouteWatch* self;
    size_t index;
  };

  std::vector<std::optional<Clock::time_point>> wait(Key key, Clock::time_point since,
                                                     Clock::time_point deadline,
                                                     Clock::time_point Seen::*which) {
    std::unique_lock lock(mu_);
    auto all = [&] {
      if (overflow_) return true;
      for (auto& m : seen_) {
        auto it = m.find(key);
        if (it == m.end() || it->second.*which < since) return false;
      }
      return true;
    };
    cv_.wait_until(lock, deadline, all);
    std::vector<std::optional<Clock::time_point>> out(seen_.size());
    for (size_t i = 0; i < seen_.size() && !overflow_; ++i) {
      auto it = seen_[i].find(key);
      if (it != seen_[i].end() && it->second.*which >= since) out[i] = it->second.*which;
    }
    return out;
  }

  static int on_msg(nl_msg* msg, void* arg) {
    auto now = Clock::now();
    auto* ctx = static_cast<Ctx*>(arg);
    nlmsghdr* h = nlmsg_hdr(msg);
    if (h->nlmsg_type != RTM_NEWROUTE && h->nlmsg_type != RTM_DELROUTE) return NL_OK;
    auto* rt = static_cast<rtmsg*>(nlmsg_data(h));
    nlattr* tb[RTA_MAX + 1];
    if (rt->rtm_family != AF_INET || rt->rtm_table != RT_TABLE_MAIN ||
        nlmsg_parse(h, sizeof(rtmsg), tb, RTA_MAX, nullptr) < 0 || !tb[RTA_DST])
      return NL_OK;
    Key key{ntohl(nla_get_u32(tb[RTA_DST])), rt->rtm_dst_len};
    std::lock_guard lock(ctx->self->mu_);
    Seen& s = ctx->self->seen_[ctx->index][key];
    (h->nlmsg_type == RTM_NEWROUTE ? s.added : s.removed) = now;
    ctx->self->cv_.notify_all();
    return NL_OK;
  }

  void loop() {
    std::vector<nl_cb*> cbs;
    std::vector<pollfd> fds;
    for (size_t i = 0; i < socks_.size(); ++i) {
      nl_cb* base = nl_socket_get_cb(socks_[i]);  // a new reference (nl_cb_get)
      cbs.push_back(nl_cb_clone(base));
      nl_cb_put(base);
      nl_cb_set(cbs.back(), NL_CB_VALID, NL_CB_CUSTOM, &RouteWatch::on_msg, ctx_[i].get());
      fds.push_back({nl_socket_get_fd(socks_[i]), POLLIN, 0});
    }
    while (!stop_) {
      if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
      for (size_t i = 0; i < fds.size(); ++i) {
        if (!(fds[i].revents & POLLIN)) continue;
        int n = nl_recvmsgs_report(socks_[i], cbs[i]);
        if (n < 0 && n != -NLE_AGAIN) {
          std::lock_guard lock(mu_);
          overflow_ = true;
          cv_.notify_all();
        }
      }
    }
    for (nl_cb* cb : cbs) nl_cb_put(cb);
  }

  std::vector<nl_sock*> socks_;
  std::vector<std::unique_ptr<Ctx>> ctx_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::map<Key, Seen>> seen_;
  bool overflow_ = false;
};

}  // namespace flannel::bench_util
