// Fuzzes admission in the peer cache (core/admission.h, core/peer_cache.h) with random lease
// streams: adds (new and rewritten leases), removals and full resyncs, with hostile values
// (any subnet, any prefix, host bits, any PublicIP). The peer events drive a model kernel; after
// every step it must hold only leases inside the Network with a longer prefix and no host bits,
// never our own subnet or one overlapping it, never a gateway that is not another host's unicast
// address, exactly the cache's peer set, and nothing the cache lists as refused. Peers never
// overlap, and they are the ones a fresh cache's resync of the store keeps (the outcome of an
// overlap does not depend on the order of the events).
#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "core/peer_cache.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace flannel;

const IP4Net kNetwork = IP4Net::parse("10.5.0.0/16");
const IP4Net kOwn = IP4Net::parse("10.5.1.0/24");
const IP4 kOwnIP = IP4::parse("192.168.0.1");

bool unicast_other(IP4 ip) {
  const uint32_t v = ip.value;
  return (v >> 24) != 0 && (v >> 24) != 127 && (v >> 16) != 0xa9fe && (v >> 28) != 0xe &&
         v != 0xffffffff && !kNetwork.contains(ip) && ip != kOwnIP;
}

void check_kernel(const std::map<LeaseKey, Lease>& kernel, const PeerCache& cache) {
  FUZZ_CHECK(kernel.size() == cache.size());
  for (const auto& [key, l] : kernel) {
    FUZZ_CHECK(cache.peers().count(key) == 1);
    FUZZ_CHECK(cache.refused().count(key) == 0);
    FUZZ_CHECK(kNetwork.contains(l.subnet) && l.subnet.prefix > kNetwork.prefix);
    FUZZ_CHECK(l.subnet.network() == l.subnet);
    FUZZ_CHECK(!l.subnet.overlaps(kOwn));
    FUZZ_CHECK(unicast_other(l.attrs.public_ip));
  }
  uint64_t next_free = 0;  // the kernel's map is in address order: each starts after the last
  for (const auto& [key, l] : kernel) {
    FUZZ_CHECK(l.subnet.ip.value >= next_free);
    next_free = uint64_t{l.subnet.ip.value} + l.subnet.size();
  }
}

PeerCache fresh_cache() {
  PeerCache cache;
  AdmissionRules rules;
  rules.network = kNetwork;
  rules.own_ip4 = {kOwnIP};
  cache.set_rules(rules);
  cache.set_own(LeaseKey{kOwn});
  return cache;
}

// The cache holds what judging the whole store afresh gives.
void check_order_free(const PeerCache& cache, const std::map<LeaseKey, Lease>& store) {
  PeerCache fresh = fresh_cache();
  std::vector<Lease> all;
  for (const auto& [k, v] : store) all.push_back(v);
  fresh.resync(all);
  FUZZ_CHECK(fresh.size() == cache.size());
  for (const auto& [key, l] : fresh.peers()) FUZZ_CHECK(cache.peers().count(key) == 1);
}

// One 10-byte record: op, subnet (4 address bytes, or 10.5.x.y when op's bit 3 is set), prefix,
// PublicIP (4 bytes).
Lease lease_of(const uint8_t* r, uint64_t revision) {
  Lease l;
  uint32_t addr = (uint32_t{r[1]} << 24) | (uint32_t{r[2]} << 16) | (uint32_t{r[3]} << 8) | r[4];
  if (r[0] & 8) addr = (10u << 24) | (5u << 16) | (addr & 0xffff);
  l.subnet = IP4Net{IP4{addr}, r[5] % 33};
  l.attrs.public_ip =
      IP4{(uint32_t{r[6]} << 24) | (uint32_t{r[7]} << 16) | (uint32_t{r[8]} << 8) | r[9]};
  l.attrs.backend_type = "host-gw";
  l.revision = revision;
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  PeerCache cache = fresh_cache();
  std::map<LeaseKey, Lease> store, kernel;
  auto run = [&](const std::vector<PeerEvent>& events) {
    for (const auto& e : events) {
      if (e.type == PeerEvent::Type::kAdded) kernel[e.lease.key()] = e.lease;
      else kernel.erase(e.lease.key());
    }
    check_kernel(kernel, cache);
    check_order_free(cache, store);
  };
  uint64_t revision = 10;
  for (size_t at = 0; at + 10 <= size && at < 10 * 200; at += 10) {
    const uint8_t* r = data + at;
    Lease l = lease_of(r, ++revision);
    switch (r[0] & 7) {
      case 6: {  // removal of a lease that is in the store (or of any key)
        LeaseEvent ev{LeaseEventType::kRemoved, l, false};
        if (!store.empty()) ev.lease = std::next(store.begin(), r[1] % store.size())->second;
        store.erase(ev.lease.key());
        run(cache.apply({ev}));
        break;
      }
      case 7: {  // a full resync of what the store holds
        std::vector<Lease> all;
        for (const auto& [k, v] : store) all.push_back(v);
        run(cache.resync(all));
        break;
      }
      default: {  // a new lease, or a rewrite of one (which keeps its creation revision)
        auto it = store.find(l.key());
        l.created = it != store.end() ? it->second.created : l.revision;
        store[l.key()] = l;
        run(cache.apply({LeaseEvent{LeaseEventType::kAdded, l, false}}));
      }
    }
    (void)cache.take_new_refusals();
  }
  return 0;
}
