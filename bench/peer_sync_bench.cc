// peer_sync_bench: N peers -> all kernel entries in place, for host-gw and vxlan, measured as the
// backend's sync() time directly in a fresh namespace (tests/support/peer_ns.h; no store, no
// flanneld), and the kernel floor measured in the same run with `ip -batch`.
//
//   sudo build/bench/peer_sync_bench [N ...] [--runs R]     (default N = 1000 5000 10000, R = 3)
//
// Modes of the backend (medians of R runs, each on an empty namespace):
//   before   : inline gateways, one request per round trip (FLANNEL_NEXTHOP_OBJECTS=off,
//              FLANNEL_NETLINK_WINDOW=1): what the agent did before issue 8
//   inline   : inline gateways, pipelined (the fallback path)
//   nexthop  : nexthop objects + routes by nhid, pipelined (the default)
// vxlan also writes a neighbour and an FDB entry per peer. Kernel floor: `ip -batch` of N
// `route add <subnet> via <gw> dev eth0` vs N `nexthop add` + N `route add ... nhid`.
//
// Every namespace is fl<pid>-pb<n> (removed by its destructor, and by cleanup_stale_labs() if the
// process dies); nothing touches the root namespace.
#include <net/if.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "backends/hostgw/hostgw.h"
#include "backends/vxlan/vxlan.h"
#include "bench/bench_util.h"
#include "core/config.h"
#include "tests/support/lab.h"
#include "tests/support/peer_ns.h"
#include "tests/support/process.h"

using namespace flannel;
using namespace flannel::testing;
using SteadyClock = std::chrono::steady_clock;

using namespace flannel::bench_util;

namespace {

double ms_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

struct Mode {
  const char* name;
  const char* nexthops;  // FLANNEL_NEXTHOP_OBJECTS
  const char* window;    // FLANNEL_NETLINK_WINDOW (nullptr = default)
};
const Mode kModes[] = {
    {"before", "off", "1"}, {"inline", "off", nullptr}, {"nexthop", "on", nullptr}};

void set_env(const char* name, const char* value) {
  if (value) setenv(name, value, 1);
  else unsetenv(name);
}

// One backend sync of `peers` on an empty namespace; returns milliseconds, or -1 on failure.
double backend_sync_ms(const std::string& type, const std::vector<Lease>& peers, const Mode& m) {
  set_env("FLANNEL_NEXTHOP_OBJECTS", m.nexthops);
  set_env("FLANNEL_NETLINK_WINDOW", m.window);
  PeerNs ns("pb");
  PeerNs::Enter in(ns);
  std::unique_ptr<Backend> b;
  if (type == "vxlan") b = std::make_unique<VxlanBackend>();
  else b = std::make_unique<HostGwBackend>();
  ExternalInterface ext;
  ext.name = "eth0";
  ext.index = static_cast<int>(if_nametoindex("eth0"));
  ext.mtu = 1500;
  ext.iface_addr = ext.ext_addr = IP4::parse(PeerNs::kEthAddr);
  b->setup(parse_config(synthetic_config_json(type)), ext);
  b->lease_acquired(synthetic_own_lease(type));
  auto t0 = SteadyClock::now();
  try {
    b->sync(peers);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s sync failed: %s\n", type.c_str(), e.what());
    return -1;
  }
  double ms = ms_since(t0);
  // Sanity: every peer has its route.
  size_t routes = 0;
  std::string out = ns.run({"ip", "route", "show", "proto", "boot"});
  for (char c : out) routes += c == '\n';
  if (routes != peers.size()) {
    std::fprintf(stderr, "%s: %zu routes for %zu peers\n", type.c_str(), routes, peers.size());
    return -1;
  }
  return ms;
}

// `ip -batch` of the host-gw route form on an empty namespace; returns milliseconds.
double floor_ms(size_t n, bool nexthops) {
  PeerNs ns("pb");
  std::string file = "/tmp/fl" + std::to_string(getpid()) + "-floor.batch";
  {
    std::ofstream f(file);
    auto peers = synthetic_peers(n, "host-gw");
    for (size_t i = 0; i < n; ++i) {
      const auto& p = peers[i];
      if (nexthops) {
        f << "nexthop add id " << 0xF1000000u + i << " via " << p.attrs.public_ip.str()
          << " dev eth0\n";
        f << "route add " << p.subnet.str() << " nhid " << 0xF1000000u + i << " proto boot\n";
      } else {
        f << "route add " << p.subnet.str() << " via " << p.attrs.public_ip.str()
          << " dev eth0 proto boot\n";
      }
    }
  }
  auto t0 = SteadyClock::now();
  std::string out;
  int rc = run_command({"ip", "-n", ns.name(), "-batch", file}, &out);
  double ms = ms_since(t0);
  unlink(file.c_str());
  if (rc != 0) {
    std::fprintf(stderr, "ip -batch failed: %s\n", out.c_str());
    return -1;
  }
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes;
  int runs = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else sizes.push_back(static_cast<size_t>(std::strtoul(argv[i], nullptr, 10)));
  }
  if (sizes.empty()) sizes = {1000, 5000, 10000};
  if (geteuid() != 0) {
    std::fprintf(stderr, "peer_sync_bench needs root (it builds network namespaces)\n");
    return 2;
  }
  cleanup_stale_labs();
  std::printf(
      "peer_sync_bench: backend sync() of N peers on an empty namespace, median of %d "
      "runs (ms)\n",
      runs);
  std::printf("%-8s %6s | %9s %9s %9s | %8s %8s | %12s %12s %6s\n", "backend", "N", "before",
              "inline", "nexthop", "bef/nh", "inl/nh", "floor inline", "floor nh", "ratio");
  int failures = 0;
  for (size_t n : sizes) {
    std::vector<double> floor_inline, floor_nh;
    for (int r = 0; r < runs; ++r) {
      floor_inline.push_back(floor_ms(n, false));
      floor_nh.push_back(floor_ms(n, true));
    }
    double fi = median(floor_inline), fn = median(floor_nh);
    for (const std::string type : {"host-gw", "vxlan"}) {
      auto peers = synthetic_peers(n, type);
      double med[3];
      for (int m = 0; m < 3; ++m) {
        std::vector<double> v;
        for (int r = 0; r < runs; ++r) {
          double ms = backend_sync_ms(type, peers, kModes[m]);
          if (ms < 0) ++failures;
          v.push_back(ms);
        }
        med[m] = median(v);
      }
      std::printf("%-8s %6zu | %9.1f %9.1f %9.1f | %7.1fx %7.1fx | %12.1f %12.1f %5.1fx\n",
                  type.c_str(), n, med[0], med[1], med[2], med[0] / med[2], med[1] / med[2], fi, fn,
                  fi / fn);
      std::fflush(stdout);
    }
  }
  unsetenv("FLANNEL_NEXTHOP_OBJECTS");
  unsetenv("FLANNEL_NETLINK_WINDOW");
  return failures ? 1 : 0;
}
