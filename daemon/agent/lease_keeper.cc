#include "daemon/agent/lease_keeper.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "daemon/common/logging.h"

namespace flannel {

bool sleep_unless_stopped(std::stop_token stop, std::chrono::milliseconds d) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait_for(lock, stop, d, [] { return false; });
  return !stop.stop_requested();
}

LeaseKeeper::LeaseKeeper(Store& store, Metrics& metrics, std::chrono::seconds ttl)
    : store_(store), metrics_(metrics), ttl_(ttl), rng_(std::random_device{}()) {}

std::optional<Lease> LeaseKeeper::acquire(const Config& config, const LeaseAttrs& attrs,
                                          std::optional<LeaseKey> previous, std::stop_token stop,
                                          LeaseList* seen) {
  if (config.enable_ipv4) {
    FLOG_INFO("Picking subnet in range {} ... {}", config.subnet_min.str(),
              config.subnet_max.str());
  }
  if (config.enable_ipv6) {
    FLOG_INFO("Picking IPv6 subnet in range {} ... {}", config.ipv6_subnet_min.str(),
              config.ipv6_subnet_max.str());
  }
  for (int attempt = 1; !stop.stop_requested(); ++attempt) {
    std::chrono::milliseconds retry_after{0};
    if (auto lease = try_acquire(config, attrs, previous, &retry_after, seen)) {
      metrics_.lease_acquisitions++;
      return lease;
    }
    if (!sleep_unless_stopped(stop, retry_after)) break;
  }
  return std::nullopt;
}

std::optional<Lease> LeaseKeeper::try_acquire(const Config& config, const LeaseAttrs& attrs,
                                              std::optional<LeaseKey> previous,
                                              std::chrono::milliseconds* retry_after,
                                              LeaseList* seen) {
  std::optional<LeaseList> list = list_leases(retry_after);
  if (!list) return std::nullopt;
  Allocation a;
  try {
    a = allocate_subnet(config, list->leases, attrs.public_ip, previous, rng_, attrs.public_ipv6);
  } catch (const AllocError& e) {
    FLOG_ERROR("{}; retrying in 10s (free a subnet with: flannelctl subnets rm SUBNET)", e.what());
    *retry_after = std::chrono::seconds(10);
    return std::nullopt;
  }
  if (!a.reason.empty()) FLOG_INFO("{}", a.reason);
  delete_stale(a);
  std::optional<Lease> got = write_lease(a, attrs, retry_after);
  if (got && seen) *seen = peers_seen(std::move(*list), a);
  return got;
}

std::chrono::milliseconds LeaseKeeper::jitter() {
  return std::chrono::milliseconds(std::uniform_int_distribution<int>(1, 20)(rng_));
}

std::optional<LeaseList> LeaseKeeper::list_leases(std::chrono::milliseconds* retry_after) {
  LeaseList list;
  if (Status s = store_.list_leases(&list); !s.ok()) {
    if (s.code == StoreCode::kStoreReset) {  // re-based on the new store: list it at once
      FLOG_INFO("The store was reset while acquiring a lease ({}); listing again", s.message);
      *retry_after = jitter();
      return std::nullopt;
    }
    metrics_.store_errors++;
    FLOG_WARNING("Cannot list leases from the store ({}): {}; retrying in 1s", to_string(s.code),
                 s.message);
    *retry_after = std::chrono::seconds(1);
    return std::nullopt;
  }
  for (const auto& w : list.warnings) {
    metrics_.malformed_entries++;
    FLOG_WARNING("Ignoring bad subnet node: {}", w);
  }
  list.warnings.clear();  // logged and counted
  return list;
}

void LeaseKeeper::delete_stale(const Allocation& a) {
  for (const auto* group : {&a.incompatible, &a.duplicates}) {
    for (const auto& old : *group) {
      Status s = store_.delete_lease(old.key(), old.revision);
      if (s.ok()) {
        FLOG_INFO("Deleted stale lease {} of this host", old.key().str());
      } else if (s.code != StoreCode::kNotFound) {
        FLOG_WARNING("Cannot delete stale lease {}: {}", old.key().str(), s.message);
      }
    }
  }
}

std::optional<Lease> LeaseKeeper::write_lease(const Allocation& a, const LeaseAttrs& attrs,
                                              std::chrono::milliseconds* retry_after) {
  Lease want;
  want.subnet = a.subnet;
  want.ipv6_subnet = a.ipv6_subnet;
  want.attrs = attrs;
  Lease got;
  Status s;
  if (a.source == Allocation::Source::kExisting) {
    want.revision = a.existing->revision;
    // A reservation (no expiration) stays without TTL.
    auto ttl = a.existing->expiration ? ttl_ : std::chrono::seconds(0);
    s = store_.renew_lease(want, ttl, &got);
  } else {
    s = store_.create_lease(want, ttl_, &got);
    if (s.ok() && got.ipv6_subnet && lost_race(got)) {
      *retry_after = jitter();
      return std::nullopt;
    }
  }
  if (s.ok()) return got;
  if (s.code == StoreCode::kConflict || s.code == StoreCode::kNotFound ||
      s.code == StoreCode::kStoreReset) {
    FLOG_INFO("Subnet {} was taken or changed while acquiring it; trying again", a.key().str());
    *retry_after = jitter();
  } else {
    metrics_.store_errors++;
    FLOG_WARNING("Cannot write lease {} ({}): {}; retrying in 1s", a.key().str(), to_string(s.code),
                 s.message);
    *retry_after = std::chrono::seconds(1);
  }
  return std::nullopt;
}

LeaseList LeaseKeeper::peers_seen(LeaseList list, const Allocation& a) {
  // Our stale leases (deleted by delete_stale) are not peers.
  std::erase_if(list.leases, [&](const Lease& l) {
    auto same = [&](const Lease& o) { return o.key() == l.key(); };
    return std::any_of(a.incompatible.begin(), a.incompatible.end(), same) ||
           std::any_of(a.duplicates.begin(), a.duplicates.end(), same);
  });
  return list;
}

bool LeaseKeeper::lost_race(const Lease& created) {
  LeaseList list;
  if (Status s = store_.list_leases(&list); !s.ok()) {
    FLOG_WARNING("Cannot list leases to check that no other host took {} at the same time ({}): {}",
                 created.key().str(), to_string(s.code), s.message);
    return false;
  }
  auto rival = earlier_rival(created, list.leases);
  if (!rival) return false;
  FLOG_WARNING(
      "Lease {} collides with {} (PublicIP {}), created just before it by another host; "
      "deleting ours and picking again",
      created.key().str(), rival->key().str(), rival->attrs.public_ip.str());
  Status s = store_.delete_lease(created.key(), created.revision);
  if (!s.ok() && s.code != StoreCode::kNotFound) {
    metrics_.store_errors++;
    FLOG_WARNING("Cannot delete lease {} ({}): {}", created.key().str(), to_string(s.code),
                 s.message);
  }
  return true;
}

Status LeaseKeeper::renew(Lease* lease) {
  Lease renewed;
  auto ttl = lease->expiration ? ttl_ : std::chrono::seconds(0);
  Status s = store_.renew_lease(*lease, ttl, &renewed);
  if (s.ok()) {
    *lease = renewed;
    metrics_.lease_renewals++;
  } else {
    metrics_.lease_renewal_failures++;
  }
  return s;
}

}  // namespace flannel
