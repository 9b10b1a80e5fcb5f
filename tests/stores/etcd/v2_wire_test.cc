// The exact HTTP requests EtcdV2Store sends (flannel v0.11 facts §2.4), and its reaction to server
// answers that a healthy etcd rarely gives (5xx, an empty long-poll answer). A tiny recording
// HTTP server on loopback stands in for etcd here only because these checks are about bytes on
// the wire; everything behavioural runs against a real etcd in v2_store_test.cc.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "stores/etcd/v2_store.h"
#include "tests/support/loopback.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

struct Recorded {
  std::string method, target, content_type, body;
};

struct Canned {
  int status = 200;
  std::string body;
  // Never below an index the fake hands out in an event (12): a real etcd's X-Etcd-Index does
  // not go below what it already answered, and a lower one is a store reset to EtcdV2Store.
  std::string etcd_index = "12";
  std::string cluster_id{};  // X-Etcd-Cluster-Id, not sent when empty
};

// Serves one connection at a time, one request per connection (Connection: close).
class RecordingServer {
 public:
  using Handler = std::function<Canned(const Recorded&)>;
  explicit RecordingServer(Handler handler) : handler_(std::move(handler)) {
    int port = 0;
    fd_ = bind_loopback(&port);
    url_ = "http://127.0.0.1:" + std::to_string(port);
    thread_ = std::thread([this] { serve(); });
  }
  ~RecordingServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  const std::string& url() const { return url_; }
  std::vector<Recorded> requests() {
    std::lock_guard l(mu_);
    return requests_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      handle(c);
      ::close(c);
    }
  }
  void handle(int c) {
    std::string data;
    char buf[4096];
    size_t header_end = std::string::npos;
    size_t content_length = 0;
    for (;;) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 2000) <= 0) return;
      ssize_t n = ::read(c, buf, sizeof(buf));
      if (n <= 0) return;
      data.append(buf, n);
      if (header_end == std::string::npos) {
        header_end = data.find("\r\n\r\n");
        if (header_end != std::string::npos) {
          std::string head = data.substr(0, header_end);
          for (std::string name : {"Content-Length:", "content-length:"}) {
            size_t pos = head.find(name);
            if (pos != std::string::npos)
              content_length = std::stoul(head.substr(pos + name.size()));
          }
        }
      }
      if (header_end != std::string::npos && data.size() >= header_end + 4 + content_length) break;
    }
    Recorded r;
    std::string head = data.substr(0, header_end);
    std::string line = head.substr(0, head.find("\r\n"));
    r.method = line.substr(0, line.find(' '));
    r.target = line.substr(line.find(' ') + 1, line.rfind(' ') - line.find(' ') - 1);
    size_t ct = head.find("Content-Type: ");
    if (ct != std::string::npos)
      r.content_type = head.substr(ct + 14, head.find("\r\n", ct) - ct - 14);
    r.body = data.substr(header_end + 4, content_length);
    {
      std::lock_guard l(mu_);
      requests_.push_back(r);
    }
    Canned out = handler_(r);
    std::string resp = "HTTP/1.1 " + std::to_string(out.status) + " X\r\n" +
                       "Content-Type: application/json\r\nX-Etcd-Index: " + out.etcd_index +
                       (out.cluster_id.empty() ? "" : "\r\nX-Etcd-Cluster-Id: " + out.cluster_id) +
                       "\r\nContent-Length: " + std::to_string(out.body.size()) +
                       "\r\nConnection: close\r\n\r\n" + out.body;
    (void)!::write(c, resp.data(), resp.size());
  }

  Handler handler_;
  int fd_ = -1;
  std::string url_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Recorded> requests_;
};

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

constexpr char kValue[] =
    R"({"PublicIP":"10.37.7.195","BackendType":"vxlan","BackendData":{"VtepMAC":"82:4b:b6:2f:54:4e"}})";
const std::string kKey = "/coreos.com/network/subnets/10.5.34.0-24";

Canned answer(const Recorded& r) {
  if (r.method == "GET" && r.target.find("/config") != std::string::npos) {
    return {
        200,
        R"({"action":"get","node":{"key":"/coreos.com/network/config","value":"{}","modifiedIndex":3,"createdIndex":3}})"};
  }
  if (r.method == "GET" && r.target.find("wait=true") != std::string::npos) {
    return {200, R"({"action":"expire","node":{"key":")" + kKey +
                     R"(","modifiedIndex":12,"createdIndex":7},"prevNode":{"key":")" + kKey +
                     R"(","value":"{}","modifiedIndex":7,"createdIndex":7}})"};
  }
  if (r.method == "GET" && r.target.find("subnets?") != std::string::npos) {
    return {200, R"({"action":"get","node":{"key":"/coreos.com/network/subnets","dir":true}})"};
  }
  if (r.method == "GET") {
    return {
        200,
        R"({"action":"get","node":{"key":")" + kKey + R"(","value":")" +
            std::string(R"({\"PublicIP\":\"10.37.7.195\"})") +
            R"(","expiration":"2030-01-01T00:00:00.5Z","ttl":100,"modifiedIndex":7,"createdIndex":7}})"};
  }
  if (r.method == "PUT") {
    bool ttl = r.body.starts_with("ttl=");
    std::string node = R"({"key":")" + kKey + R"(","value":"{}",)" +
                       (ttl ? R"("expiration":"2030-01-01T00:00:00.5Z","ttl":86400,)" : "") +
                       R"("modifiedIndex":9,"createdIndex":7})";
    return {r.target.find("prevExist=false") != std::string::npos ? 201 : 200,
            R"({"action":"set","node":)" + node + "}"};
  }
  return {200, R"({"action":"delete","node":{"key":")" + kKey +
                   R"(","modifiedIndex":11,"createdIndex":7}})"};
}

TEST(EtcdWire, RequestsAreTheOnesFlannelSends) {
  RecordingServer server(answer);
  EtcdOptions o;
  o.endpoints = {server.url() + "/"};
  o.prefix = "/coreos.com/network/";  // a trailing slash is harmless (path.Join)
  auto store = EtcdV2Store::open(o);

  Lease lease;
  lease.subnet = IP4Net::parse("10.5.34.0/24");
  lease.attrs.public_ip = IP4::parse("10.37.7.195");
  lease.attrs.backend_type = "vxlan";
  lease.attrs.backend_data = R"({"VtepMAC":"82:4b:b6:2f:54:4e"})";

  std::string cfg;
  ASSERT_TRUE(store->get_config(&cfg).ok());
  LeaseList list;
  ASSERT_TRUE(store->list_leases(&list).ok());
  EXPECT_EQ(list.revision, 12u);  // X-Etcd-Index
  Lease got;
  ASSERT_TRUE(store->get_lease(lease.subnet, &got).ok());
  EXPECT_EQ(got.revision, 7u);
  Lease created;
  ASSERT_TRUE(store->create_lease(lease, std::chrono::seconds(86400), &created).ok());
  EXPECT_EQ(created.revision, 9u);
  ASSERT_TRUE(store->create_lease(lease, std::chrono::seconds(0), &created).ok());
  EXPECT_FALSE(created.expiration.has_value());
  lease.revision = 7;
  Lease renewed;
  ASSERT_TRUE(store->renew_lease(lease, std::chrono::seconds(86400), &renewed).ok());
  ASSERT_TRUE(store->delete_lease(lease.subnet).ok());
  ASSERT_TRUE(store->delete_lease(lease.subnet, 7).ok());
  WatchResult w = store->watch_leases(11, std::chrono::seconds(2), {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  ASSERT_EQ(w.events.size(), 1u);
  EXPECT_EQ(w.events[0].type, LeaseEventType::kRemoved);
  EXPECT_TRUE(w.events[0].expired);
  EXPECT_EQ(w.revision, 12u);
  ASSERT_TRUE(store->set_config("{\"Network\":\"10.5.0.0/16\"}").ok());

  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 10u);
  const std::string k = "/v2/keys/coreos.com/network";
  EXPECT_EQ(reqs[0].method + " " + reqs[0].target,
            "GET " + k + "/config?quorum=true&recursive=false&sorted=false");
  EXPECT_EQ(reqs[1].method + " " + reqs[1].target,
            "GET " + k + "/subnets?quorum=true&recursive=true&sorted=false");
  EXPECT_EQ(reqs[2].method + " " + reqs[2].target,
            "GET " + k + "/subnets/10.5.34.0-24?quorum=true&recursive=false&sorted=false");
  EXPECT_EQ(reqs[3].method + " " + reqs[3].target,
            "PUT " + k + "/subnets/10.5.34.0-24?prevExist=false");
  EXPECT_EQ(reqs[3].content_type, "application/x-www-form-urlencoded");
  ASSERT_TRUE(reqs[3].body.starts_with("ttl=86400&value=")) << reqs[3].body;
  EXPECT_EQ(url_decode(reqs[3].body.substr(16)), kValue);
  EXPECT_EQ(reqs[4].method + " " + reqs[4].target,
            "PUT " + k + "/subnets/10.5.34.0-24?prevExist=false");
  ASSERT_TRUE(reqs[4].body.starts_with("value=")) << reqs[4].body;  // no ttl for a reservation
  EXPECT_EQ(url_decode(reqs[4].body.substr(6)), kValue);
  EXPECT_EQ(reqs[5].method + " " + reqs[5].target,
            "PUT " + k + "/subnets/10.5.34.0-24?prevIndex=7");
  EXPECT_EQ(url_decode(reqs[5].body), std::string("ttl=86400&value=") + kValue);
  EXPECT_EQ(reqs[6].method + " " + reqs[6].target, "DELETE " + k + "/subnets/10.5.34.0-24");
  EXPECT_EQ(reqs[7].method + " " + reqs[7].target,
            "DELETE " + k + "/subnets/10.5.34.0-24?prevIndex=7");
  EXPECT_EQ(reqs[8].method + " " + reqs[8].target,
            "GET " + k + "/subnets?recursive=true&wait=true&waitIndex=12");
  EXPECT_EQ(reqs[9].method + " " + reqs[9].target, "PUT " + k + "/config");
  EXPECT_EQ(url_decode(reqs[9].body), "value={\"Network\":\"10.5.0.0/16\"}");
}

TEST(EtcdWire, ServerErrorsFailOverOnlyForRequestsThatAreSafeToRepeat) {
  RecordingServer broken([](const Recorded&) {
    return Canned{
        500,
        R"({"errorCode":300,"message":"Raft Internal Error","cause":"etcdserver: request timed out","index":0})"};
  });
  RecordingServer good(answer);
  EtcdOptions o;
  o.endpoints = {broken.url(), good.url()};
  auto store = EtcdV2Store::open(o);

  Lease lease;
  lease.subnet = IP4Net::parse("10.5.34.0/24");
  lease.attrs.public_ip = IP4::parse("10.37.7.195");
  Lease created;
  Status s = store->create_lease(lease, std::chrono::seconds(60), &created);
  EXPECT_EQ(s.code, StoreCode::kUnavailable);
  EXPECT_NE(s.message.find("Raft Internal Error"), std::string::npos) << s.message;
  EXPECT_NE(s.message.find(broken.url()), std::string::npos) << s.message;
  EXPECT_TRUE(good.requests().empty());  // a create that may have been applied is not replayed

  std::string cfg;
  ASSERT_TRUE(store->get_config(&cfg).ok());  // GET fails over and pins the good endpoint
  EXPECT_EQ(good.requests().size(), 1u);
  size_t broken_before = broken.requests().size();
  ASSERT_TRUE(store->get_config(&cfg).ok());
  EXPECT_EQ(broken.requests().size(), broken_before);  // pinned: straight to the good one
  EXPECT_EQ(good.requests().size(), 2u);
}

TEST(EtcdWire, EmptyLongPollAnswerIsReissued) {
  std::atomic<int> polls{0};
  RecordingServer server([&](const Recorded& r) {
    if (r.target.find("wait=true") != std::string::npos && polls++ == 0) return Canned{200, ""};
    return answer(r);
  });
  EtcdOptions o;
  o.endpoints = {server.url()};
  auto store = EtcdV2Store::open(o);
  WatchResult w = store->watch_leases(11, std::chrono::seconds(2), {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  EXPECT_EQ(w.events.size(), 1u);
  EXPECT_EQ(polls.load(), 2);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target, reqs[1].target);  // same waitIndex
}

TEST(EtcdWire, EventIndexClearedIsHistoryGone) {
  RecordingServer server([](const Recorded&) {
    return Canned{
        400,
        R"({"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [1008/5]","index":2007})"};
  });
  EtcdOptions o;
  o.endpoints = {server.url()};
  auto store = EtcdV2Store::open(o);
  WatchResult w = store->watch_leases(4, std::chrono::seconds(2), {});
  EXPECT_EQ(w.status.code, StoreCode::kHistoryGone) << w.status.message;
  EXPECT_EQ(w.revision, 4u);
}

}  // namespace
}  // namespace flannel::testing

namespace flannel::testing {
namespace {

// A 404 for the config, carrying the given headers.
Canned config_404(const std::string& index, const std::string& cluster) {
  return Canned{404, R"({"errorCode":100,"message":"Key not found","index":)" + index + "}", index,
                cluster};
}

TEST(EtcdWire, ChangedClusterIdIsAResetReportedOnce) {
  std::atomic<int> calls{0};
  RecordingServer server(
      [&](const Recorded&) { return config_404("12", calls++ < 2 ? "aaaa" : "bbbb"); });
  EtcdOptions o;
  o.endpoints = {server.url()};
  auto store = EtcdV2Store::open(o);
  std::string cfg;
  EXPECT_EQ(store->get_config(&cfg).code, StoreCode::kNotFound);
  EXPECT_EQ(store->get_config(&cfg).code, StoreCode::kNotFound);
  Status s = store->get_config(&cfg);
  EXPECT_EQ(s.code, StoreCode::kStoreReset) << s.message;
  EXPECT_NE(s.message.find("cluster id changed from aaaa to bbbb"), std::string::npos) << s.message;
  EXPECT_EQ(store->get_config(&cfg).code, StoreCode::kNotFound);  // re-based: once only
  EXPECT_EQ(server.requests().size(), 4u);  // no quorum read needed for a new cluster id
}

// A watch served by a member that lags behind (after a failover) answers with a lower index;
// the quorum read shows the cluster did not go back, so it is no reset.
TEST(EtcdWire, LaggingMemberIsNotAReset) {
  RecordingServer server([&](const Recorded& r) {
    if (r.target.find("wait=true") != std::string::npos) {
      Canned c = answer(r);  // an event at index 12
      c.etcd_index = "12";   // behind the 20 seen before
      return c;
    }
    return config_404("20", "");
  });
  EtcdOptions o;
  o.endpoints = {server.url()};
  auto store = EtcdV2Store::open(o);
  std::string cfg;
  EXPECT_EQ(store->get_config(&cfg).code, StoreCode::kNotFound);  // index 20 seen
  WatchResult w = store->watch_leases(11, std::chrono::seconds(2), {});
  ASSERT_TRUE(w.status.ok()) << w.status.message;
  EXPECT_EQ(w.events.size(), 1u);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 3u);  // config, watch, the quorum read that confirmed no reset
  EXPECT_EQ(reqs[2].target,
            "/v2/keys/coreos.com/network/config?quorum=true&recursive=false&sorted=false");
  EXPECT_EQ(store->get_config(&cfg).code, StoreCode::kNotFound);
}

TEST(EtcdWire, IndexGoingBackConfirmedByQuorumIsAReset) {
  std::atomic<int> calls{0};
  RecordingServer server([&](const Recorded&) { return config_404(calls++ < 1 ? "20" : "3", ""); });
  EtcdOptions o;
  o.endpoints = {server.url()};
  auto store = EtcdV2Store::open(o);
  std::string cfg;
  EXPECT_EQ(store->get_config(&cfg).code, StoreCode::kNotFound);
  Status s = store->get_config(&cfg);
  EXPECT_EQ(s.code, StoreCode::kStoreReset) << s.message;
  EXPECT_NE(s.message.find("went back from 20 to 3"), std::string::npos) << s.message;
  EXPECT_EQ(server.requests().size(), 3u);  // the answer and its quorum confirmation
  EXPECT_EQ(store->get_config(&cfg).code, StoreCode::kNotFound);
}

}  // namespace
}  // namespace flannel::testing
