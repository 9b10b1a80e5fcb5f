// store_list_bench: listing 10,000 leases through the Store, etcd v3 versus etcd v2, each on its
// own real etcd on loopback (v3: v2 API disabled). The v3 list is one range request (no
// timetolive per lease: see stores/etcd/v3_store.h); the v2 list one recursive GET.
//
// Usage: store_list_bench [leases=10000] [runs=10]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "stores/etcd/v2_store.h"
#include "stores/etcd/v3_store.h"
#include "tests/support/etcd_server.h"

using namespace flannel;
using namespace flannel::testing;
using SteadyClock = std::chrono::steady_clock;

using namespace flannel::bench_util;

namespace {

bool fill(Store& store, int leases) {
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  std::atomic<bool> ok{true};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < leases && ok; i += kThreads) {
        Lease l;
        l.subnet.ip.value = (10u << 24) | (static_cast<uint32_t>(i) << 8);  // 10.x.y.0/24
        l.subnet.prefix = 24;
        l.attrs.public_ip.value = (192u << 24) | (168u << 16) | static_cast<uint32_t>(i & 0xffff);
        l.attrs.backend_type = "vxlan";
        l.attrs.backend_data = R"({"VtepMAC":"82:4b:b6:2f:54:4e"})";
        Lease out;
        Status s = store.create_lease(l, std::chrono::hours(24), &out);
        if (!s.ok()) {
          std::fprintf(stderr, "create %s: %s\n", l.subnet.str().c_str(), s.message.c_str());
          ok = false;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return ok;
}

// The same listing as raw HTTP (libcurl, no parsing): the server's and the wire's share.
using RawList = std::function<bool()>;

void bench(const char* name, Store& store, int leases, int runs, const RawList& raw) {
  auto t0 = SteadyClock::now();
  if (!fill(store, leases)) return;
  double fill_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  std::vector<double> ms;
  size_t got = 0;
  for (int r = 0; r < runs; ++r) {
    LeaseList list;
    auto t1 = SteadyClock::now();
    Status s = store.list_leases(&list);
    ms.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - t1).count());
    if (!s.ok()) {
      std::fprintf(stderr, "%s list: %s\n", name, s.message.c_str());
      return;
    }
    got = list.leases.size();
  }
  std::printf("%-8s list of %zu leases  median %7.1f ms  (runs=%d; writing them took %.1f s)\n",
              name, got, median(ms), runs, fill_s);
  std::vector<double> raw_ms;
  for (int r = 0; r < runs; ++r) {
    auto t1 = SteadyClock::now();
    if (!raw()) return;
    raw_ms.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - t1).count());
  }
  std::printf("%-8s   of which the raw HTTP request alone (etcd + wire)  median %7.1f ms\n", name,
              median(raw_ms));
}

}  // namespace

int main(int argc, char** argv) {
  const int leases = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 10;
  {
    EtcdServer v3(EtcdServer::Options{.enable_v2 = false});
    auto store = EtcdV3Store::open(v3.client_options("/flannel-bench/network"));
    const std::string body =
        etcd_v3::range_request("/flannel-bench/network/subnets/", "/flannel-bench/network/subnets0")
            .dump();
    bench("etcd v3", *store, leases, runs,
          [&] { return v3.raw("POST", "/v3/kv/range", body).status == 200; });
  }
  {
    EtcdServer v2;
    auto store = EtcdV2Store::open(v2.client_options("/flannel-bench/network"));
    bench("etcd v2", *store, leases, runs, [&] {
      return v2.raw("GET", "/v2/keys/flannel-bench/network/subnets?recursive=true&quorum=true")
                 .status == 200;
    });
  }
  return 0;
}
