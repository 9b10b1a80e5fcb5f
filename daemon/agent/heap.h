// Giving the heap's free memory back to the kernel. A full peer sync builds large transient data
// (the store's list answer and its decoded leases, a netlink message per request: libnl
// allocates each one a page), which glibc keeps mapped after it is freed because the long-lived
// peer records allocated meanwhile pin the top of the heap. malloc_trim(0) returns every free
// page (MADV_DONTNEED), not only the top: at 10,000 vxlan peers ~180 MB of private memory.
#pragma once

#include <cstddef>

namespace flannel {

// libnl gives every message it builds (nlmsg_alloc) a page, zeroed: a full sync queues 3-4
// messages per vxlan peer before the first is sent, 160 MB at 10,000 peers, and the freed pages
// stay fragmented between the peer records. Our messages (routes, nexthops, neighbours, FDB
// entries, links) are a few hundred bytes at most; kNetlinkMessageSize becomes libnl's default.
// Called once at the start of flanneld, before any netlink socket exists.
constexpr size_t kNetlinkMessageSize = 512;
void shrink_netlink_messages();

// Returns the heap's free pages to the kernel; the bytes of private RSS released (0 where the C
// library has no malloc_trim, or nothing was free).
long release_free_heap();

}  // namespace flannel
