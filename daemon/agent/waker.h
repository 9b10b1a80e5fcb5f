// Waker: lets another thread cut short the agent's blocking store watch. Before each watch call
// the agent arms a fresh token; wake() (any thread) marks an input pending and stops the armed
// token; the agent takes the mark before it blocks again. A wake() that comes between take() and
// arm() is not lost: arm() then hands out a token already stopped.
#pragma once

#include <optional>
#include <stop_token>
#include <utility>

#include "core/thread_annotations.h"

namespace flannel {

class Waker {
 public:
  // Thread-safe.
  void wake() {
    MutexLock lock(&mu_);
    pending_ = true;
    armed_.request_stop();
  }
  // The agent's thread: true (and cleared) if wake() came since the last take().
  bool take() {
    MutexLock lock(&mu_);
    return std::exchange(pending_, false);
  }
  // The agent's thread: the token of the next blocking call. It stops when `outer` stops, at the
  // next wake(), or is stopped already if a wake() is pending. Valid until the next arm().
  std::stop_token arm(std::stop_token outer) {
    relay_.reset();
    std::stop_source source;
    {
      MutexLock lock(&mu_);
      if (pending_) source.request_stop();
      armed_ = source;
    }
    relay_.emplace(outer, Relay{source});
    return source.get_token();
  }

 private:
  struct Relay {
    std::stop_source to;
    void operator()() { to.request_stop(); }
  };
  Mutex mu_;
  bool pending_ GUARDED_BY(mu_) = false;
  std::stop_source armed_ GUARDED_BY(mu_);
  std::optional<std::stop_callback<Relay>> relay_;  // the agent's thread only
};

}  // namespace flannel
