// The periodic check both rule keepers run (RuleKeeper for iptables, NftKeeper for nftables):
// one thread per started keeper that runs the keeper's pass every period, reports what the pass
// put back, reports a failure once per distinct message (not every period), and reports the
// recovery when a pass succeeds again.
//
// Thread safety: start() and stop() may be called from any thread (they serialise on a mutex);
// the pass and the listener run on the resync thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_annotations.h"

namespace flannel {

// What the resync thread reports, ready to log.
struct ResyncEvent {
  enum class Kind {
    kRestored,   // missing rules were put back (log as warning)
    kFailed,     // a pass failed; reported once per distinct message (log as error)
    kRecovered,  // a pass succeeded after failures (log as info)
  };
  Kind kind = Kind::kRestored;
  std::string message;
};

class ResyncThread {
 public:
  // One check: returns a message for each thing it put back (empty: all was in place); throws
  // std::exception when the check itself failed.
  using Pass = std::function<std::vector<std::string>()>;
  using Listener = std::function<void(const ResyncEvent&)>;

  ResyncThread() = default;
  ~ResyncThread();  // stop()
  ResyncThread(const ResyncThread&) = delete;
  ResyncThread& operator=(const ResyncThread&) = delete;

  // Starts the thread: the first pass runs one period after start. `failure` prefixes a failed
  // pass's message ("ip-masq: cannot check iptables rules"); `name` the recovery's. The listener
  // is kept until stop(), so what it captures must live that long; it must not call start() or
  // stop(). Throws std::invalid_argument if period < 1 s (0 would busy-loop), std::logic_error
  // if already started.
  void start(std::string name, std::string failure, std::chrono::milliseconds period, Pass pass,
             Listener listener) EXCLUDES(mu_);
  // Stops and joins the thread: at once when it waits, else after its pass. Idempotent.
  void stop() EXCLUDES(mu_);

  struct Stats {
    uint64_t passes = 0;     // passes run by the thread
    uint64_t failures = 0;   // passes that threw
    std::string last_error;  // "" once a pass succeeds
  };
  Stats stats() const EXCLUDES(stats_mu_);

 private:
  void run(const std::string& name, const std::string& failure, std::chrono::milliseconds period,
           const Pass& pass, const Listener& listener) EXCLUDES(mu_);

  Mutex mu_;
  std::condition_variable cv_;  // signalled when stopping_ is set
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_ GUARDED_BY(mu_);
  mutable Mutex stats_mu_;
  Stats stats_ GUARDED_BY(stats_mu_);
};

}  // namespace flannel
