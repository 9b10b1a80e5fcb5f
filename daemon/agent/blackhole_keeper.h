// BlackholeKeeper: current flannel's -ip-blackhole-route. Keeps a blackhole route (main table)
// for this host's own pod subnet (and IPv6 subnet with dual stack), so a packet to an unused pod
// address of ours is dropped here instead of leaving by the default route. The bridge CNI plugin
// makes this unnecessary (its route to cni0 is more specific); setups without it (Canal) want
// it. Checked every -iptables-resync seconds by its own thread (one route dump per family);
// a route deleted by hand comes back at the next check. The route is never removed (as current
// flannel), so a restart leaves no gap either.
//
// Thread safety: set() and stop() are for one owner thread; the check runs on its own thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <optional>
#include <thread>

#include "core/ip.h"
#include "core/thread_annotations.h"

namespace flannel {

class BlackholeKeeper {
 public:
  BlackholeKeeper() = default;
  ~BlackholeKeeper();  // stop()
  BlackholeKeeper(const BlackholeKeeper&) = delete;
  BlackholeKeeper& operator=(const BlackholeKeeper&) = delete;

  // Adds the route(s) now, in the calling thread's network namespace (logged on failure, never
  // thrown), and starts (or keeps) the checking thread with these subnets. A subnet that changed
  // gets its new route; the old one stays (current flannel removes none).
  void set(std::optional<IP4Net> subnet, std::optional<IP6Net> subnet6, std::chrono::seconds period)
      EXCLUDES(mu_);
  // Stops and joins the thread. Idempotent.
  void stop() EXCLUDES(mu_);

  // Adds what is missing; returns how many routes it added. Throws NetlinkError.
  static int ensure(const std::optional<IP4Net>& subnet, const std::optional<IP6Net>& subnet6);

 private:
  void run(std::chrono::seconds period) EXCLUDES(mu_);

  Mutex mu_;
  std::condition_variable cv_;
  std::optional<IP4Net> subnet_ GUARDED_BY(mu_);
  std::optional<IP6Net> subnet6_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;  // owner thread only
};

}  // namespace flannel
