#include "backends/rules/resync.h"

#include <stdexcept>
#include <utility>

namespace flannel {

ResyncThread::~ResyncThread() { stop(); }

void ResyncThread::start(std::string name, std::string failure, std::chrono::milliseconds period,
                         Pass pass, Listener listener) {
  if (period < std::chrono::seconds(1)) {
    throw std::invalid_argument(name + ": resync period must be at least 1 second, got " +
                                std::to_string(period.count()) +
                                " ms (a period of 0 would busy-loop; set -iptables-resync "
                                "to 1 or more)");
  }
  MutexLock lock(&mu_);
  if (thread_.joinable()) throw std::logic_error(name + ": resync started twice");
  stopping_ = false;
  thread_ = std::thread(
      [this, name = std::move(name), failure = std::move(failure), period, pass = std::move(pass),
       listener = std::move(listener)] { run(name, failure, period, pass, listener); });
}

void ResyncThread::stop() {
  std::thread t;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();
}

ResyncThread::Stats ResyncThread::stats() const {
  MutexLock lock(&stats_mu_);
  return stats_;
}

// The resync thread: one per started keeper, ended by stop().
void ResyncThread::run(const std::string& name, const std::string& failure,
                       std::chrono::milliseconds period, const Pass& pass,
                       const Listener& listener) {
  std::string reported_error;  // the failure last reported, so a persisting one is logged once
  auto report = [&](ResyncEvent::Kind kind, std::string message) {
    if (listener) listener(ResyncEvent{kind, std::move(message)});
  };
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (lock.wait_for(cv_, period, [this]() REQUIRES(mu_) { return stopping_; })) return;
    }
    std::vector<std::string> restored;
    try {
      restored = pass();
      MutexLock lock(&stats_mu_);
      ++stats_.passes;
      stats_.last_error.clear();
    } catch (const std::exception& e) {
      {
        MutexLock lock(&stats_mu_);
        ++stats_.passes;
        ++stats_.failures;
        stats_.last_error = e.what();
      }
      if (e.what() != reported_error) {
        report(ResyncEvent::Kind::kFailed, failure + ": " + e.what() + " (retrying every " +
                                               std::to_string(period.count() / 1000) + " s)");
        reported_error = e.what();
      }
      continue;
    }
    if (!reported_error.empty()) {
      report(ResyncEvent::Kind::kRecovered, name + ": checked fine again");
      reported_error.clear();
    }
    for (auto& m : restored) report(ResyncEvent::Kind::kRestored, std::move(m));
  }
}

}  // namespace flannel
