// Lease changes as plain data: what a Store's watch reports (LeaseEvent) and what a Backend is
// told about its peers (PeerEvent). Pure values shared by stores/, backends/ and daemon/.
#pragma once

#include "core/lease.h"

namespace flannel {

enum class LeaseEventType {
  kAdded,    // created, renewed or changed (etcd actions set/create/update/compareAndSwap)
  kRemoved,  // deleted or expired (etcd actions delete/expire/compareAndDelete)
};

struct LeaseEvent {
  LeaseEventType type = LeaseEventType::kAdded;
  // For kAdded: the lease as written (attrs, expiration, revision). For kRemoved: subnet and
  // revision are set; attrs are empty (the caller keeps its own cache if it needs them).
  Lease lease;
  bool expired = false;  // kRemoved because the TTL ran out (etcd "expire")
};

// A peer change as the backend sees it: for kRemoved, `lease` carries the last attrs the daemon
// knew for that subnet, so the backend can find what to remove.
struct PeerEvent {
  enum class Type { kAdded, kRemoved } type = Type::kAdded;
  Lease lease;
};

}  // namespace flannel
