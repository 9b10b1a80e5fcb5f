// NetlinkBatch: requests built by the per-object builders (netlink/internal.h), sent a window at
// a time as soon as the window is full (and the rest on commit) with nl_send_iovec (one sendmsg,
// one iovec per message) and acknowledged through nl_recvmsgs callbacks that match each ack or
// error to its request by sequence number.
#include "backends/netlink/batch.h"

#include <sys/uio.h>

#include <cstdlib>

#include "backends/netlink/internal.h"

namespace flannel {

using namespace nl;

struct NetlinkBatch::Request {
  MsgPtr msg;
  std::string what;
  size_t tag = 0;
  bool is_delete = false;
  bool done = false;  // acked or failed
  int code = 0;       // NLE_* when failed
};

namespace {

bool not_found_code(int code) {
  return code == NLE_OBJ_NOTFOUND || code == NLE_NODEV || code == NLE_NOADDR;
}

// What the ack callbacks need: the window's requests and the sequence number of the first.
struct Window {
  std::vector<NetlinkBatch::Failure>* failures;
  void* requests;  // NetlinkBatch::Request*, opaque here (private type)
  size_t count = 0;
  uint32_t first_seq = 0;
  size_t pending = 0;
  void (*settle)(Window*, size_t index, int code);
};

Window* window_of(void* arg) { return static_cast<Window*>(arg); }

void settle_seq(Window* w, uint32_t seq, int code) {
  uint32_t index = seq - w->first_seq;  // wraps correctly with the socket's u32 counter
  if (index >= w->count) return;        // an ack of an earlier, abandoned window
  w->settle(w, index, code);
}

int on_ack(nl_msg* msg, void* arg) {
  settle_seq(window_of(arg), nlmsg_hdr(msg)->nlmsg_seq, 0);
  return NL_OK;
}

int on_error(sockaddr_nl* /*who*/, nlmsgerr* err, void* arg) {
  settle_seq(window_of(arg), err->msg.nlmsg_seq, nl_syserr2nlerr(-err->error));
  return NL_SKIP;  // carry on with the next message of the datagram
}

int accept_any_seq(nl_msg* /*msg*/, void* /*arg*/) { return NL_OK; }

}  // namespace

std::string NetlinkBatch::Failure::message() const {
  return "netlink " + what + ": " + nl_geterror(code);
}

size_t NetlinkBatch::window_from_env() {
  if (const char* v = std::getenv("FLANNEL_NETLINK_WINDOW"); v && *v) {
    long n = std::strtol(v, nullptr, 10);
    if (n >= 1 && n <= 1024) return static_cast<size_t>(n);  // 1024 = UIO_MAXIOV
  }
  return kDefaultWindow;
}

NetlinkBatch::NetlinkBatch(NetlinkSession& session, size_t window)
    : session_(session), window_(window < 1 ? 1 : (window > 1024 ? 1024 : window)) {}

NetlinkBatch::~NetlinkBatch() = default;

void NetlinkBatch::push(nl_msg* msg, std::string what, size_t tag, bool is_delete) {
  Request r;
  r.msg.reset(msg);
  r.what = std::move(what);
  r.tag = tag;
  r.is_delete = is_delete;
  if (queue_.capacity() < window_) queue_.reserve(window_);
  queue_.push_back(std::move(r));
  ++requests_;
  if (queue_.size() >= window_) send_window();
}

void NetlinkBatch::route_replace(const Route4& r, size_t tag) {
  std::string what = "route replace " + r.str();
  push(route_request(r, Op::kReplace, what).release(), std::move(what), tag, false);
}

void NetlinkBatch::route_delete(const Route4& r, size_t tag) {
  std::string what = "route del " + r.str();
  push(route_request(r, Op::kDelete, what).release(), std::move(what), tag, true);
}

void NetlinkBatch::nexthop_replace(const Nexthop4& nh, size_t tag) {
  std::string what = "nexthop replace " + nh.str();
  push(nexthop_request(nh, Op::kReplace, what).release(), std::move(what), tag, false);
}

void NetlinkBatch::nexthop_delete(uint32_t id, size_t tag) {
  std::string what = "nexthop del id " + std::to_string(id);
  push(nexthop_delete_request(id, what).release(), std::move(what), tag, true);
}

void NetlinkBatch::neigh_replace(int index, IP4 dst, const MacAddr& mac, size_t tag) {
  std::string what =
      "neigh replace " + dst.str() + " lladdr " + mac.str() + " " + dev(index) + " nud permanent";
  push(neigh_request(index, dst, &mac, Op::kReplace, what).release(), std::move(what), tag, false);
}

void NetlinkBatch::route_replace(const Route6& r, size_t tag) {
  std::string what = "route replace " + r.str();
  push(route6_request(r, Op::kReplace, what).release(), std::move(what), tag, false);
}

void NetlinkBatch::route_delete(const Route6& r, size_t tag) {
  std::string what = "route del " + r.str();
  push(route6_request(r, Op::kDelete, what).release(), std::move(what), tag, true);
}

void NetlinkBatch::neigh_replace(int index, const IP6& dst, const MacAddr& mac, size_t tag) {
  std::string what =
      "neigh replace " + dst.str() + " lladdr " + mac.str() + " " + dev(index) + " nud permanent";
  push(neigh6_request(index, dst, &mac, Op::kReplace, what).release(), std::move(what), tag, false);
}

void NetlinkBatch::neigh_delete(int index, const IP6& dst, size_t tag) {
  std::string what = "neigh del " + dst.str() + " " + dev(index);
  push(neigh6_request(index, dst, nullptr, Op::kDelete, what).release(), std::move(what), tag,
       true);
}

void NetlinkBatch::fdb_replace(int index, const MacAddr& mac, const IP6& dst, size_t tag) {
  std::string what =
      "fdb replace " + mac.str() + " " + dev(index) + " dst " + dst.str() + " self permanent";
  push(fdb6_request(index, mac, dst, Op::kReplace, what).release(), std::move(what), tag, false);
}

void NetlinkBatch::fdb_delete(int index, const MacAddr& mac, const IP6& dst, size_t tag) {
  std::string what = "fdb del " + mac.str() + " " + dev(index) + " dst " + dst.str() + " self";
  push(fdb6_request(index, mac, dst, Op::kDelete, what).release(), std::move(what), tag, true);
}

void NetlinkBatch::neigh_delete(int index, IP4 dst, size_t tag) {
  std::string what = "neigh del " + dst.str() + " " + dev(index);
  push(neigh_request(index, dst, nullptr, Op::kDelete, what).release(), std::move(what), tag, true);
}

void NetlinkBatch::fdb_replace(int index, const MacAddr& mac, IP4 dst, size_t tag) {
  std::string what =
      "fdb replace " + mac.str() + " " + dev(index) + " dst " + dst.str() + " self permanent";
  push(fdb_request(index, mac, dst, Op::kReplace, what).release(), std::move(what), tag, false);
}

void NetlinkBatch::fdb_delete(int index, const MacAddr& mac, IP4 dst, size_t tag) {
  std::string what = "fdb del " + mac.str() + " " + dev(index) + " dst " + dst.str() + " self";
  push(fdb_request(index, mac, dst, Op::kDelete, what).release(), std::move(what), tag, true);
}

std::vector<NetlinkBatch::Failure> NetlinkBatch::commit() {
  if (!queue_.empty()) send_window();
  requests_ = 0;
  std::vector<Failure> failures;
  failures.swap(failures_);
  return failures;
}

void NetlinkBatch::send_window() {
  nl_sock* sock = session_.batch_sock();
  const size_t n = queue_.size();
  session_.count_batched(n);
  std::vector<iovec> iov(n);
  for (size_t i = 0; i < n; ++i) {
    nl_msg* msg = queue_[i].msg.get();
    nl_complete_msg(sock, msg);  // our port id, the next sequence number, NLM_F_REQUEST|ACK
    nlmsghdr* h = nlmsg_hdr(msg);
    iov[i].iov_base = h;
    iov[i].iov_len = NLMSG_ALIGN(h->nlmsg_len);  // the kernel steps by the aligned length
  }

  Window w;
  w.failures = &failures_;
  w.requests = queue_.data();
  w.count = n;
  w.first_seq = nlmsg_hdr(queue_[0].msg.get())->nlmsg_seq;
  w.pending = n;
  w.settle = [](Window* win, size_t index, int code) {
    auto* r = static_cast<Request*>(win->requests) + index;
    if (r->done) return;
    r->done = true;
    r->code = code;
    --win->pending;
  };

  auto fail_pending = [&](int code) {
    for (auto& r : queue_) {
      if (!r.done) {
        r.done = true;
        r.code = code;
      }
    }
    w.pending = 0;
  };

  int sent = nl_send_iovec(sock, queue_[0].msg.get(), iov.data(), static_cast<unsigned>(n));
  if (sent < 0) {
    fail_pending(-sent);
  } else {
    CbPtr base(nl_socket_get_cb(sock));  // a new reference (nl_cb_get): put back when done
    CbPtr cb(nl_cb_clone(base.get()));
    if (!cb) {
      fail_pending(NLE_NOMEM);
    } else {
      nl_cb_set(cb.get(), NL_CB_SEQ_CHECK, NL_CB_CUSTOM, accept_any_seq, nullptr);
      nl_cb_set(cb.get(), NL_CB_ACK, NL_CB_CUSTOM, on_ack, &w);
      nl_cb_err(cb.get(), NL_CB_CUSTOM, on_error, &w);
      while (w.pending > 0) {
        // One datagram per call (acks are not multipart); blocks until the kernel answers.
        if (int err = nl_recvmsgs(sock, cb.get()); err < 0) {
          fail_pending(-err);
          break;
        }
      }
    }
  }

  for (auto& r : queue_) {
    if (r.code == 0 || (r.is_delete && not_found_code(r.code))) continue;
    failures_.push_back(Failure{r.tag, std::move(r.what), r.code});
  }
  queue_.clear();  // frees the window's messages; the capacity stays for the next window
}

}  // namespace flannel
