// NetlinkBatch: pipelined netlink requests. Requests (routes, nexthops, neighbours, FDB entries)
// are queued with a caller's tag (e.g. the index of the peer they belong to). As soon as a window
// of window() messages is queued it is sent, many per sendmsg (one iovec each), its acks are
// collected and matched back to their requests by sequence number, and its messages are freed;
// commit() sends the last, partial window and returns every failure of the batch. So a failure
// names its request and tag, every other request is still applied (the kernel handles the
// messages of one sendmsg one after another and acks each), and at most one window of messages
// is alive at a time, however many requests a full sync makes (memory: a sync of 10,000 vxlan
// peers no longer holds 30,000 messages whose freed chunks end up pinned between the peer
// records allocated meanwhile).
//
// Requests are therefore applied in queue order while the batch is still being filled: a caller
// must not expect the kernel to be unchanged until commit().
//
// Uses the session's batch_sock() (same namespace as the session), keeping a reference: the
// session must outlive the batch. Not thread-safe; one batch at a time per session. Every queued
// message is owned by the batch (freed once its window is acknowledged, on commit() or on
// destruction). A batch destroyed without commit() (an exception in its caller) drops the last,
// partial window unsent and the failures of the windows already sent: those were applied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/netlink/netlink.h"

struct nl_msg;

namespace flannel {

class NetlinkBatch {
 public:
  // One request the kernel refused (or whose ack was lost with the socket's error).
  struct Failure {
    size_t tag = 0;    // as given when queued
    std::string what;  // "route replace 10.5.3.0/24 nhid ... via ... dev 4"
    int code = 0;      // libnl's NLE_* (positive)
    // "netlink <what>: <libnl reason>", as NetlinkError messages read.
    std::string message() const;
  };

  // Messages per sendmsg and per ack collection. The default fits the ack burst in the socket
  // buffer; FLANNEL_NETLINK_WINDOW overrides it (1 = one round trip per request, the old way,
  // kept for benchmarks).
  static constexpr size_t kDefaultWindow = 256;
  static size_t window_from_env();

  explicit NetlinkBatch(NetlinkSession& session, size_t window = window_from_env());
  ~NetlinkBatch();
  NetlinkBatch(const NetlinkBatch&) = delete;
  NetlinkBatch& operator=(const NetlinkBatch&) = delete;

  // Queue one request each; the same semantics as the NetlinkSession operation of that name.
  // Deletes of objects already gone are not failures. Throw NetlinkError only when the message
  // cannot be built (out of memory, invalid address); that request is then not queued, the
  // others stay. A request that fills the window sends it and waits for its acks, inside the
  // call.
  void route_replace(const Route4& r, size_t tag);
  void route_delete(const Route4& r, size_t tag);
  void nexthop_replace(const Nexthop4& nh, size_t tag);
  void nexthop_delete(uint32_t id, size_t tag);
  void neigh_replace(int index, IP4 dst, const MacAddr& mac, size_t tag);
  void neigh_delete(int index, IP4 dst, size_t tag);
  void fdb_replace(int index, const MacAddr& mac, IP4 dst, size_t tag);
  void fdb_delete(int index, const MacAddr& mac, IP4 dst, size_t tag);
  // IPv6 (flannel-v6.N, host-gw v6 routes).
  void route_replace(const Route6& r, size_t tag);
  void route_delete(const Route6& r, size_t tag);
  void neigh_replace(int index, const IP6& dst, const MacAddr& mac, size_t tag);
  void neigh_delete(int index, const IP6& dst, size_t tag);
  void fdb_replace(int index, const MacAddr& mac, const IP6& dst, size_t tag);
  void fdb_delete(int index, const MacAddr& mac, const IP6& dst, size_t tag);

  // Requests queued since the last commit(), including those already sent with a full window.
  size_t size() const { return requests_; }
  bool empty() const { return size() == 0; }

  // Sends what is still queued and waits for every ack. Returns the failed requests of the whole
  // batch (since the last commit) in queue order (empty: all applied); the batch is empty
  // afterwards. A socket error (e.g. a lost ack burst) is reported as a failure of each request
  // of that window whose ack had not arrived.
  std::vector<Failure> commit();

 private:
  struct Request;
  void push(nl_msg* msg, std::string what, size_t tag, bool is_delete);
  // Sends queue_ as one window, appends its failures to failures_, empties queue_.
  void send_window();

  NetlinkSession& session_;
  size_t window_;
  std::vector<Request> queue_;     // not sent yet: at most window_
  std::vector<Failure> failures_;  // of the windows sent since the last commit()
  size_t requests_ = 0;            // queued since the last commit()
};

}  // namespace flannel
