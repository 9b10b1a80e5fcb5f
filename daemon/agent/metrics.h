// The agent's counters and gauges, rendered in the Prometheus text format at /metrics.
// Updated from the agent thread, read from the HTTP thread: every field is atomic.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "core/admission.h"

namespace flannel {

// A Prometheus histogram of durations in seconds with fixed buckets (0.25 ms .. 1 s).
class LatencyHistogram {
 public:
  static constexpr std::array<double, 10> kBounds{0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                  0.01,    0.025,  0.1,   0.25,   1.0};
  void observe(double seconds);
  // `name`_bucket{le=...} (cumulative), `name`_sum, `name`_count with HELP and TYPE lines.
  std::string render(const char* name, const char* help) const;
  uint64_t count() const { return count_.load(); }

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};  // last: +Inf only
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

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
  std::atomic<uint64_t> refused_leases{0};     // peer leases refused by admission, now
  std::atomic<uint64_t> peers_set_aside{0};    // peers the backend failed to program, retried
  // Refusals by reason (RefusalReason order): a lease counts once per reason it is refused for.
  std::array<std::atomic<uint64_t>, kRefusalReasons> refusals{};
  void count_refusal(RefusalReason reason) { refusals[static_cast<size_t>(reason)]++; }
  // Masquerade/forward rule repairs by the periodic check (someone removed or changed them), by
  // mode (0 iptables: rules re-inserted; 1 nftables: tables rewritten) and family (0 IPv4, 1 IPv6).
  std::array<std::atomic<uint64_t>, 4> rule_repairs{};
  void count_rule_repairs(bool nftables, bool ipv6, uint64_t n) {
    rule_repairs[(nftables ? 2 : 0) + (ipv6 ? 1 : 0)] += n;
  }
  std::atomic<double> lease_expiry_seconds{0};  // unix time our lease expires (0 = none)
  // Agent time of one watch answer with peer changes: from the watch call's return (events
  // decoded) until the backend's last netlink ack for them.
  LatencyHistogram peer_apply_seconds;

  // The Prometheus text of every field; any thread. Fields are read one by one, so a render
  // racing an update may mix old and new values.
  std::string render() const;
};

}  // namespace flannel
