// measure_fanout: how fast one new lease reaches N watching agents (issue 22). The bench's own
// store client writes single leases one at a time (a host-gw peer on the lab underlay, in a free
// /24 of the network); each is waited for in the main routing table of every agent's namespace
// (RouteWatch: netlink notifications, stamped as read), then deleted and waited for gone before
// the next one. Figures, all in ms from the write call:
//   kernel   per agent and lease: the route in that agent's kernel
//   last     per lease: the last of the N kernels
//   store    per agent and lease: kernel minus the agent's own time for that change (its -v=2
//            "Peer changes applied in N us" line: watch answer -> last netlink ack), i.e. the
//            write call plus the store's delivery to that agent's watch (wake-up and read
//            included). Only for agents whose log has exactly one such line per change.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "bench/lab_client.h"
#include "bench/route_watch.h"
#include "tests/support/lab.h"
#include "tests/support/lab_store.h"
#include "tests/support/peer_ns.h"
#include "tests/support/process.h"

namespace flannel::bench_util {

struct Fanout {
  std::vector<double> kernel_ms, last_ms, store_ms;
  int written = 0;
  int missed = 0;           // leases not in every kernel within 10 s
  int agents_no_store = 0;  // agents whose log did not pair one line per change
  std::string error;
};

inline long file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<long>(st.st_size) : 0;
}

// `network`: the config's Network (/24 leases); `gateway`: an unused underlay address of the lab
// (the peer's PublicIP); `logs`: each agent's log file, in the order of `lab.hosts()`.
inline Fanout measure_fanout(const flannel::testing::LabStore& ls, const flannel::testing::Lab& lab,
                             const std::vector<std::string>& logs, IP4Net network, IP4 gateway,
                             int leases) {
  using Clock = RouteWatch::Clock;
  using namespace std::chrono_literals;
  Fanout f;
  std::vector<std::string> netns;
  for (size_t i = 0; i < logs.size(); ++i) netns.push_back(lab.hosts()[i].netns);
  RouteWatch watch(netns);
  std::vector<long> offsets;
  for (const auto& l : logs) offsets.push_back(file_size(l));

  std::unique_ptr<flannel::testing::PeerNs::Enter> in;
  if (ls.is_etcd()) in = std::make_unique<flannel::testing::PeerNs::Enter>(lab.hub());
  auto store = open_lab_store(ls);
  LeaseList list;
  if (Status s = store->list_leases(&list); !s.ok()) {
    f.error = "list: " + s.message;
    return f;
  }
  std::set<uint32_t> used;
  for (const auto& l : list.leases) used.insert(l.subnet.ip.value);
  std::vector<std::vector<double>> kernel(logs.size());  // [agent][lease]
  uint32_t top = network.ip.value + static_cast<uint32_t>(network.size()) - 256;
  for (uint32_t net = top; f.written < leases && net >= network.ip.value; net -= 256) {
    if (used.count(net)) continue;
    Lease l;
    l.subnet.ip.value = net;
    l.subnet.prefix = 24;
    l.attrs.public_ip = gateway;
    l.attrs.backend_type = "host-gw";
    auto t0 = Clock::now();
    if (Status s = store->create_lease(l, std::chrono::hours(1), nullptr); !s.ok()) {
      f.error = "create " + l.subnet.str() + ": " + s.message;
      break;
    }
    auto seen = watch.wait_added(net, 24, t0, t0 + 10s);
    double last = 0;
    bool all = true;
    for (size_t a = 0; a < seen.size(); ++a) {
      double ms = seen[a] ? std::chrono::duration<double, std::milli>(*seen[a] - t0).count() : -1;
      kernel[a].push_back(ms);
      if (ms < 0) all = false;
      else {
        f.kernel_ms.push_back(ms);
        last = std::max(last, ms);
      }
    }
    if (all) f.last_ms.push_back(last);
    else ++f.missed;
    ++f.written;
    auto t1 = Clock::now();
    store->delete_lease(l.key());
    if (!watch.wait_removed(net, 24, t1, t1 + 10s)) {
      f.error = l.subnet.str() + " not removed from every kernel within 10 s";
      break;
    }
  }
  // The agents' own time per change: one line for each add and each delete, in order.
  for (size_t a = 0; a < logs.size(); ++a) {
    auto applied =
        applied_ms(flannel::testing::read_file(logs[a]).substr(static_cast<size_t>(offsets[a])));
    if (applied.size() != 2 * kernel[a].size()) {
      ++f.agents_no_store;
      continue;
    }
    for (size_t e = 0; e < kernel[a].size(); ++e)
      if (kernel[a][e] >= 0) f.store_ms.push_back(kernel[a][e] - applied[2 * e]);
  }
  return f;
}

}  // namespace flannel::bench_util
