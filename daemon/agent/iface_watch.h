// IfaceWatch: tells the agent that its external interface may have changed, from the kernel's
// rtnetlink notifications (links, IPv4 and IPv6 addresses, and IPv4 routes when the choice
// depends on them), with no polling.
//
// One thread, started by the constructor and joined by the destructor, reads the socket and
// calls `changed` after each batch of notifications that concerns the followed interface (by
// index), or any interface while follow(0) is in force (the interface is gone: whatever comes may
// bring it back), after any link's deletion (it may be the backend's device), and after a change
// of a route the choice depends on (IfaceRoutes). A lost notification (the socket's buffer
// overflowed) counts as a change. `changed` runs on that thread: it must be cheap and
// thread-safe (the agent sets a flag and wakes its store watch, waker.h).
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <thread>

#include "backends/unique_fd.h"
#include "core/ip.h"

struct nl_sock;
struct nl_msg;

namespace flannel {

// The IPv4 routes whose changes can change the choice (iface.h). None when -iface or
// -iface-regex name the link; with no flag, the default routes (the interface is the default
// route's); with -iface-can-reach, every route whose prefix holds that address (the kernel's
// route to it), default routes included. The local table (addresses) never counts.
struct IfaceRoutes {
  bool follow = false;
  std::optional<IP4> toward;
};

class IfaceWatch {
 public:
  // Whether a route notification (family, destination prefix, table) concerns `routes`.
  static bool route_counts(const IfaceRoutes& routes, int family, IP4Net dst, unsigned table);

  // Subscribes in the calling thread's network namespace, following interface `index`. Throws
  // std::runtime_error naming what failed.
  IfaceWatch(int index, std::function<void()> changed, IfaceRoutes routes = IfaceRoutes());
  ~IfaceWatch();
  IfaceWatch(const IfaceWatch&) = delete;
  IfaceWatch& operator=(const IfaceWatch&) = delete;

  // Thread-safe. 0: every interface's notifications count.
  void follow(int index) { index_ = index; }

 private:
  void run();  // the thread: poll, read, call changed_
  static int on_message(::nl_msg* msg, void* self);

  std::function<void()> changed_;
  const IfaceRoutes routes_;
  std::atomic<int> index_;
  bool hit_ = false;  // the thread's own: a message of this batch concerned us
  nl_sock* sock_ = nullptr;
  UniqueFd stop_fd_;  // eventfd: the destructor's signal to the thread
  std::thread thread_;
};

}  // namespace flannel
