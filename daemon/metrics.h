// The agent's counters and gauges, rendered in the Prometheus text format at /metrics.
// Updated from the agent thread, read from the HTTP thread: every field is atomic.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace flannel {

struct Metrics {
  std::atomic<bool> ready{false};  // mirrors Agent::ready() for rendering; never read as state
  std::atomic<uint64_t> lease_acquisitions{0};  // leases acquired (first and re-acquired)
  std::atomic<uint64_t> lease_renewals{0};
  std::atomic<uint64_t> lease_renewal_failures{0};
  std::atomic<uint64_t> leases_lost{0};        // our lease deleted, expired or taken over
  std::atomic<uint64_t> store_errors{0};       // failed store calls (any operation)
  std::atomic<uint64_t> watch_events{0};       // lease events received
  std::atomic<uint64_t> watch_resyncs{0};      // full resyncs after lost history
  std::atomic<uint64_t> store_resets{0};       // the store lost its data and we re-registered
  std::atomic<uint64_t> malformed_entries{0};  // skipped malformed leases/events
  std::atomic<uint64_t> peers{0};              // other hosts' leases currently known
  std::atomic<uint64_t> ipv6_peers{0};         // ... of which with an IPv6 subnet (dual stack)
  std::atomic<double> lease_expiry_seconds{0};  // unix time our lease expires (0 = none)

  std::string render() const;
};

}  // namespace flannel
