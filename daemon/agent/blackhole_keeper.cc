#include "daemon/agent/blackhole_keeper.h"

#include <algorithm>

#include "backends/netlink/netlink.h"
#include "daemon/common/logging.h"

namespace flannel {
namespace {

template <typename Net>
bool listed(const std::vector<Net>& routes, const Net& dst) {
  return std::find(routes.begin(), routes.end(), dst) != routes.end();
}

}  // namespace

BlackholeKeeper::~BlackholeKeeper() { stop(); }

int BlackholeKeeper::ensure(const std::optional<IP4Net>& subnet,
                            const std::optional<IP6Net>& subnet6) {
  NetlinkSession nl;
  int added = 0;
  if (subnet && !listed(nl.blackholes4(), *subnet)) {
    nl.blackhole_add(*subnet);
    ++added;
  }
  if (subnet6 && !listed(nl.blackholes6(), *subnet6)) {
    nl.blackhole_add(*subnet6);
    ++added;
  }
  return added;
}

void BlackholeKeeper::set(std::optional<IP4Net> subnet, std::optional<IP6Net> subnet6,
                          std::chrono::seconds period) {
  try {
    if (int n = ensure(subnet, subnet6); n > 0)
      FLOG_INFO("Added blackhole route(s) for {}{}", subnet ? subnet->str() : "",
                subnet6 ? " " + subnet6->str() : "");
  } catch (const std::exception& e) {
    FLOG_ERROR("cannot add the blackhole route for our subnet (will retry every {}s): {}",
               period.count(), e.what());
  }
  {
    MutexLock lock(&mu_);
    subnet_ = subnet;
    subnet6_ = subnet6;
    stopping_ = false;
  }
  if (!thread_.joinable()) thread_ = std::thread([this, period] { run(period); });
}

void BlackholeKeeper::stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BlackholeKeeper::run(std::chrono::seconds period) {
  std::string reported;  // a persisting failure is logged once
  for (;;) {
    std::optional<IP4Net> subnet;
    std::optional<IP6Net> subnet6;
    {
      MutexLock lock(&mu_);
      if (lock.wait_for(cv_, period, [this]() REQUIRES(mu_) { return stopping_; })) return;
      subnet = subnet_;
      subnet6 = subnet6_;
    }
    try {
      if (int n = ensure(subnet, subnet6); n > 0)
        FLOG_WARNING("Blackhole route for our subnet was missing; added {} route(s) again", n);
      reported.clear();
    } catch (const std::exception& e) {
      if (reported != e.what()) FLOG_ERROR("cannot check the blackhole route: {}", e.what());
      reported = e.what();
    }
  }
}

}  // namespace flannel
