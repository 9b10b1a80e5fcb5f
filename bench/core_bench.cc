// core_bench: micro benchmarks of the pure pieces on the agent's hot paths.
//   ./bench/core_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <random>

#include "core/allocator.h"
#include "core/config.h"
#include "core/lease.h"
#include "core/peer_cache.h"

namespace flannel {
namespace {

std::vector<Lease> make_leases(int n) {
  std::vector<Lease> v;
  for (int i = 0; i < n; ++i) {
    Lease l;
    l.subnet = IP4Net{IP4{(10u << 24) | (static_cast<uint32_t>(i + 1) << 8)}, 24};
    l.attrs.public_ip = IP4{(192u << 24) | (168u << 16) | static_cast<uint32_t>(i)};
    l.attrs.backend_type = "vxlan";
    l.attrs.backend_data = R"({"VtepMAC":"82:4b:b6:2f:54:4e"})";
    l.revision = static_cast<uint64_t>(i + 1);
    v.push_back(l);
  }
  return v;
}

void BM_AllocateNewSubnet(benchmark::State& state) {
  Config c = parse_config(R"({"Network":"10.0.0.0/8","SubnetLen":24})");
  auto leases = make_leases(static_cast<int>(state.range(0)));
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    auto a = allocate_subnet(c, leases, IP4::parse("172.16.0.1"), std::nullopt, rng);
    benchmark::DoNotOptimize(a);
  }
  state.SetLabel(std::to_string(state.range(0)) + " leases");
}
BENCHMARK(BM_AllocateNewSubnet)->Arg(10)->Arg(1000)->Arg(10000);

void BM_LeaseEncode(benchmark::State& state) {
  LeaseAttrs a{IP4::parse("10.37.7.195"), "vxlan", R"({"VtepMAC":"82:4b:b6:2f:54:4e"})", {}, ""};
  for (auto _ : state) benchmark::DoNotOptimize(encode_lease_attrs(a));
}
BENCHMARK(BM_LeaseEncode);

void BM_LeaseDecode(benchmark::State& state) {
  std::string v =
      R"({"PublicIP":"10.37.7.195","BackendType":"vxlan","BackendData":{"VtepMAC":"82:4b:b6:2f:54:4e"}})";
  for (auto _ : state) benchmark::DoNotOptimize(decode_lease_attrs(v));
}
BENCHMARK(BM_LeaseDecode);

void BM_ParseConfig(benchmark::State& state) {
  std::string c = R"({"Network":"172.30.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan"}})";
  for (auto _ : state) benchmark::DoNotOptimize(parse_config(c));
}
BENCHMARK(BM_ParseConfig);

// Initial sync of N peers: the batch the backend receives in one call.
void BM_PeerCacheResync(benchmark::State& state) {
  auto leases = make_leases(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    PeerCache cache;
    cache.set_own(leases[0].subnet);
    benchmark::DoNotOptimize(cache.resync(leases));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_PeerCacheResync)->Arg(1000)->Arg(10000);

// The same with admission (core/admission.h) as the agent runs it: every lease checked against
// the Network, our subnet and this host's address (the backend's BackendData check not included).
void BM_PeerCacheResyncWithAdmission(benchmark::State& state) {
  auto leases = make_leases(static_cast<int>(state.range(0)));
  AdmissionRules rules;
  rules.network = IP4Net::parse("10.0.0.0/8");
  rules.own_ip4 = {IP4::parse("172.16.0.1")};
  for (auto _ : state) {
    PeerCache cache;
    cache.set_rules(rules);
    cache.set_own(leases[0].subnet);
    benchmark::DoNotOptimize(cache.resync(leases));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_PeerCacheResyncWithAdmission)->Arg(1000)->Arg(10000);

}  // namespace
}  // namespace flannel

BENCHMARK_MAIN();
