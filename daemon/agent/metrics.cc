#include "daemon/agent/metrics.h"

#include <sstream>

namespace flannel {
namespace {

template <class T>
void emit(std::ostringstream& out, const char* name, const char* type, const char* help, T value) {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
      << name << ' ' << value << '\n';
}

}  // namespace

void LatencyHistogram::observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i]++;
  count_++;
  double sum = sum_.load();
  while (!sum_.compare_exchange_weak(sum, sum + seconds)) {}
}

std::string LatencyHistogram::render(const char* name, const char* help) const {
  std::ostringstream o;
  o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i].load();
    o << name << "_bucket{le=\"" << kBounds[i] << "\"} " << cumulative << '\n';
  }
  cumulative += buckets_[kBounds.size()].load();
  o << name << "_bucket{le=\"+Inf\"} " << cumulative << '\n';
  o << name << "_sum " << sum_.load() << '\n' << name << "_count " << cumulative << '\n';
  return o.str();
}

std::string Metrics::render() const {
  std::ostringstream o;
  emit(o, "flannel_ready", "gauge", "1 when the lease is held and the subnet file written.",
       ready.load() ? 1 : 0);
  emit(o, "flannel_lease_acquisitions_total", "counter", "Leases acquired.",
       lease_acquisitions.load());
  emit(o, "flannel_lease_renewals_total", "counter", "Successful lease renewals.",
       lease_renewals.load());
  emit(o, "flannel_lease_renewal_failures_total", "counter", "Failed lease renewals.",
       lease_renewal_failures.load());
  emit(o, "flannel_leases_lost_total", "counter", "Times our lease was deleted, expired or taken.",
       leases_lost.load());
  emit(o, "flannel_store_errors_total", "counter", "Failed store operations.", store_errors.load());
  emit(o, "flannel_watch_events_total", "counter", "Lease events received from the store.",
       watch_events.load());
  emit(o, "flannel_watch_resyncs_total", "counter", "Full resyncs after the store lost history.",
       watch_resyncs.load());
  emit(
      o, "flannel_store_resets_total", "counter",
      "Times the store lost its data (wiped, restored, file replaced) and the agent re-registered.",
      store_resets.load());
  emit(o, "flannel_malformed_entries_total", "counter", "Malformed leases or events skipped.",
       malformed_entries.load());
  emit(o, "flannel_peers", "gauge", "Other hosts' leases currently known.", peers.load());
  emit(o, "flannel_ipv6_peers", "gauge",
       "Other hosts' leases currently known that hold an IPv6 subnet.", ipv6_peers.load());
  emit(o, "flannel_refused_leases", "gauge",
       "Other hosts' leases refused by admission (not programmed, left in the store).",
       refused_leases.load());
  emit(o, "flannel_peers_set_aside", "gauge",
       "Peers the backend failed to program, set aside and retried alone with backoff.",
       peers_set_aside.load());
  o << "# HELP flannel_lease_refusals_total Leases refused by admission, by reason (a lease counts "
       "once per reason).\n# TYPE flannel_lease_refusals_total counter\n";
  for (size_t i = 0; i < kRefusalReasons; ++i) {
    o << "flannel_lease_refusals_total{reason=\"" << refusal_name(static_cast<RefusalReason>(i))
      << "\"} " << refusals[i].load() << '\n';
  }
  o << "# HELP flannel_rule_repairs_total Masquerade and forward rules the periodic check put "
       "back after someone removed or changed them (iptables: rules; nftables: table "
       "rewrites).\n# TYPE flannel_rule_repairs_total counter\n";
  for (size_t i = 0; i < rule_repairs.size(); ++i) {
    o << "flannel_rule_repairs_total{mode=\"" << (i < 2 ? "iptables" : "nftables") << "\",family=\""
      << (i % 2 ? "ipv6" : "ipv4") << "\"} " << rule_repairs[i].load() << '\n';
  }
  std::ostringstream exp;
  exp.precision(15);
  exp << lease_expiry_seconds.load();
  emit(o, "flannel_lease_expiry_timestamp_seconds", "gauge",
       "Unix time our lease expires (0 = no expiry).", exp.str());
  o << peer_apply_seconds.render(
      "flannel_peer_apply_seconds",
      "Agent time per watch answer with peer changes: from the store's answer (decoded) to the "
      "backend's last netlink ack.");
  return o.str();
}

}  // namespace flannel
