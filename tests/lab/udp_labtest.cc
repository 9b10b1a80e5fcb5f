// The udp backend end to end: real flanneld processes on lab hosts sharing a SQLite store, the
// TUN devices they create, and real packets between pods on different hosts (ping, iperf3), plus
// the v0.11 proxy bugs this backend fixes (unchecked UDP source, double TTL decrement, ICMP
// errors that never arrived).
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "backends/udp/ipv4_packet.h"
#include "backends/udp/udp.h"
#include "backends/udp/udp_proxy.h"
#include "backends/unique_fd.h"
#include "core/lease.h"
#include "core/subnet_env.h"
#include "tests/support/lab.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace flannel::testing {
namespace {

using namespace std::chrono_literals;

const std::string kBinDir = FLANNEL_BIN_DIR;

// ---- The backend's config handling (no devices needed) ----

Config udp_config(const std::string& backend_json) {
  Config c;
  c.network = IP4Net::parse("10.5.0.0/16");
  c.subnet_len = 24;
  c.backend_type = "udp";
  c.backend_json = backend_json;
  return c;
}

std::string port_error(const std::string& backend_json) {
  try {
    decode_udp_port(backend_json);
  } catch (const BackendError& e) { return e.what(); }
  return "(no error)";
}

TEST(UdpBackendConfig, DecodesPortLikeV011) {
  EXPECT_EQ(decode_udp_port(""), 8285);
  EXPECT_EQ(decode_udp_port(R"({"Type":"udp"})"), 8285);
  EXPECT_EQ(decode_udp_port(R"({"Type":"udp","Port":9000})"), 9000);
  EXPECT_EQ(decode_udp_port(R"({"type":"UDP","port":1})"), 1);
  EXPECT_EQ(decode_udp_port(R"({"PORT":1,"Port":65535})"), 65535);  // the last match wins
  EXPECT_EQ(decode_udp_port(R"({"Type":"udp","Port":null})"), 8285);
}

TEST(UdpBackendConfig, RejectsBadPorts) {
  EXPECT_EQ(port_error(R"({"Type":"udp","Port":"8285"})"),
            "error decoding UDP backend config: Port must be an integer like 8285, got \"8285\"");
  EXPECT_EQ(port_error(R"({"Type":"udp","Port":8285.5})"),
            "error decoding UDP backend config: Port must be an integer like 8285, got 8285.5");
  EXPECT_EQ(port_error(R"({"Type":"udp","Port":true})"),
            "error decoding UDP backend config: Port must be an integer like 8285, got true");
  // v0.11 silently binds port 0 (random) or truncates to a C short; say what is wrong instead.
  for (const char* bad : {"0", "-1", "65536", "99999999999"}) {
    EXPECT_EQ(
        port_error(std::string(R"({"Type":"udp","Port":)") + bad + "}"),
        std::string("error decoding UDP backend config: Port must be between 1 and 65535, got ") +
            bad);
  }
}

TEST(UdpBackendConfig, PublishesPublicIpOnlyAndMtuMinus28) {
  auto backend = make_backend("UDP");
  EXPECT_EQ(backend->type(), "udp");
  EXPECT_TRUE(backend->wants_peers());
  ExternalInterface iface{"eth0", 2, 1500, IP4::parse("10.250.0.1"), IP4::parse("192.0.2.7"),
                          {},     {}};
  BackendSetup s = backend->setup(udp_config(R"({"Type":"udp","Port":9000})"), iface);
  EXPECT_EQ(s.mtu, 1472);
  EXPECT_EQ(encode_lease_attrs(s.attrs), R"({"PublicIP":"192.0.2.7"})");  // ExtAddr, no BackendType

  iface.mtu = 95;
  try {
    make_backend("udp")->setup(udp_config(""), iface);
    ADD_FAILURE() << "an MTU of 95 was accepted";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find("IPv4 needs at least 68"), std::string::npos) << e.what();
  }
  try {
    make_backend("udp")->setup(udp_config(R"({"Type":"udp","Port":"x"})"), iface);
    ADD_FAILURE() << "a string Port was accepted";
  } catch (const BackendError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("error decoding UDP backend config: ", 0), 0u)
        << e.what();
  }
}

// ---- Helpers for the lab ----

// A UDP socket created inside network namespace `netns` (a thread enters it just for the
// socket() call; the socket keeps the namespace) and bound to 0.0.0.0:port.
UniqueFd udp_socket_in(const std::string& netns, uint16_t port) {
  UniqueFd result;
  std::string error;
  std::thread([&] {
    UniqueFd ns(::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns.valid() || ::setns(ns.get(), CLONE_NEWNET) != 0) {
      error = "cannot enter " + netns + ": " + std::strerror(errno);
      return;
    }
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (!fd.valid() || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      error = "cannot bind a UDP socket in " + netns + ": " + std::strerror(errno);
      return;
    }
    result = std::move(fd);
  }).join();
  if (!result.valid()) throw std::runtime_error(error);
  return result;
}

void send_to(const UniqueFd& fd, IP4 addr, uint16_t port, const std::vector<uint8_t>& payload) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(addr.value);
  ASSERT_EQ(::sendto(fd.get(), payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&sa),
                     sizeof(sa)),
            static_cast<ssize_t>(payload.size()))
      << std::strerror(errno);
}

// The next datagram on `fd` within `timeout`, or "" if none came.
std::string receive(const UniqueFd& fd, std::chrono::milliseconds timeout) {
  pollfd p{fd.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return "";
  char buf[2048];
  ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// An IPv4/UDP packet src:sport -> dst:dport carrying `text` (UDP checksum 0 = none, valid for
// IPv4): what a peer's proxy would put in a datagram.
std::vector<uint8_t> inner_udp_packet(IP4 src, IP4 dst, uint16_t dport, const std::string& text) {
  std::vector<uint8_t> p(28 + text.size());
  p[0] = 0x45;
  ipv4::store16(&p[2], static_cast<uint16_t>(p.size()));
  p[8] = 64;
  p[9] = 17;
  ipv4::store32(&p[12], src.value);
  ipv4::store32(&p[16], dst.value);
  ipv4::store16(&p[10], ipv4::checksum(p.data(), 20));
  ipv4::store16(&p[20], 40000);
  ipv4::store16(&p[22], dport);
  ipv4::store16(&p[24], static_cast<uint16_t>(8 + text.size()));
  std::memcpy(&p[28], text.data(), text.size());
  return p;
}

// A TUN device (IFF_TUN|IFF_NO_PI, as flannel v0.11 opens it) created inside `netns`.
UniqueFd tun_in(const std::string& netns, const std::string& name) {
  UniqueFd result;
  std::string error;
  std::thread([&] {
    UniqueFd ns(::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns.valid() || ::setns(ns.get(), CLONE_NEWNET) != 0) {
      error = "cannot enter " + netns + ": " + std::strerror(errno);
      return;
    }
    UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));  // the device lives in this netns
    ifreq ifr{};
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
    if (!fd.valid() || ::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
      error = "cannot create TUN " + name + " in " + netns + ": " + std::strerror(errno);
      return;
    }
    result = std::move(fd);
  }).join();
  if (!result.valid()) throw std::runtime_error(error);
  return result;
}

// The data path of a flannel v0.11 node, reduced to what the wire needs: every packet read from
// its TUN goes to `peer` as one datagram, every datagram received is written to the TUN. It
// counts datagrams that are not exactly one well-formed IPv4 packet of at most `mtu` bytes: what
// v0.11 would truncate or choke on.
class PlainPeerRelay {
 public:
  PlainPeerRelay(UniqueFd tun, UniqueFd udp, IP4 peer, uint16_t port, size_t mtu)
      : tun_(std::move(tun)), udp_(std::move(udp)), mtu_(mtu) {
    to_.sin_family = AF_INET;
    to_.sin_port = htons(port);
    to_.sin_addr.s_addr = htonl(peer.value);
    thread_ = std::thread([this] { run(); });
  }
  ~PlainPeerRelay() {
    stop_ = true;
    thread_.join();
  }
  uint64_t received() const { return received_; }
  uint64_t bad() const { return bad_; }
  uint64_t sent() const { return sent_; }

 private:
  void run() {
    std::vector<uint8_t> buf(65536);
    pollfd fds[2] = {{tun_.get(), POLLIN, 0}, {udp_.get(), POLLIN, 0}};
    while (!stop_) {
      if (::poll(fds, 2, 50) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        ssize_t n = ::read(tun_.get(), buf.data(), buf.size());
        if (n > 0 && ::sendto(udp_.get(), buf.data(), size_t(n), 0,
                              reinterpret_cast<sockaddr*>(&to_), sizeof(to_)) == n) {
          ++sent_;
        }
      }
      if (fds[1].revents & POLLIN) {
        ssize_t n = ::recv(udp_.get(), buf.data(), buf.size(), 0);
        if (n <= 0) continue;
        ++received_;
        ipv4::Header h;
        if (ipv4::parse_header(buf.data(), size_t(n), &h) != ipv4::ParseResult::kOk ||
            h.total_len != size_t(n) || size_t(n) > mtu_) {
          ++bad_;
          continue;
        }
        (void)!::write(tun_.get(), buf.data(), size_t(n));
      }
    }
  }

  UniqueFd tun_;
  UniqueFd udp_;
  size_t mtu_;
  sockaddr_in to_{};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> received_{0}, bad_{0}, sent_{0};
  std::thread thread_;
};

class UdpLabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cleanup_stale_labs();
    char tmpl[] = "/tmp/flannel-udp-lab-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    lab_ = std::make_unique<Lab>("udp");
  }

  void TearDown() override {
    // Stop every agent; a clean exit within seconds shows the proxy threads stop on SIGTERM.
    for (auto& [i, p] : agents_) {
      p->signal(SIGTERM);
      auto code = p->wait(5s);
      EXPECT_TRUE(code.has_value()) << "flanneld h" << i << " did not exit within 5 s of SIGTERM";
      if (code) { EXPECT_EQ(*code, 0) << "flanneld h" << i; }
      if (code && i <= static_cast<int>(lab_->hosts().size())) {
        std::string out;
        EXPECT_NE(run_command({"ip", "link", "show", "flannel0"}, &out, host(i).netns), 0)
            << "the TUN outlived its flanneld on h" << i;
      }
    }
    if (HasFailure()) {
      for (auto& [i, p] : agents_) std::cerr << "---- flanneld h" << i << " log:\n" << p->output();
    }
    agents_.clear();
    servers_.clear();
    lab_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  const Lab::Host& host(int i) { return lab_->hosts().at(static_cast<size_t>(i - 1)); }
  std::string store_flag() const { return "-store=sqlite:" + dir_ + "/store.db"; }
  std::string env_path(int i) const { return dir_ + "/h" + std::to_string(i) + ".env"; }

  // `flannelctl -store=sqlite:PATH config set JSON`, as seed 003 does with etcdctl.
  void set_config(const std::string& json) {
    std::string out;
    ASSERT_EQ(run_command({kBinDir + "/flannelctl", store_flag(), "config", "set", json}, &out), 0)
        << out;
  }

  // Adds `n` hosts and starts one flanneld on each.
  void start_agents(int n) {
    for (int i = 1; i <= n; ++i) {
      const auto& h = lab_->add_host();
      std::vector<std::string> argv{kBinDir + "/flanneld", store_flag(),
                                    "-subnet-file=" + env_path(i), "-iface=eth0"};
      agents_[i] = std::make_unique<Process>(Process::Spec{
          argv, {}, {"NOTIFY_SOCKET"}, h.netns, dir_ + "/flanneld-h" + std::to_string(i) + ".log"});
    }
  }

  // Waits for host i's subnet file and returns its variables.
  std::map<std::string, std::string> wait_env(int i) {
    if (!wait_until([&] { return std::filesystem::exists(env_path(i)); }, 15s)) return {};
    return parse_env_file(read_file(env_path(i)));
  }

  // The lease value as stored, via `flannelctl subnets get`.
  std::string lease_value(const IP4Net& subnet) {
    std::string out;
    if (run_command({kBinDir + "/flannelctl", store_flag(), "subnets", "get", subnet.str()},
                    &out) != 0)
      return "error: " + out;
    auto start = out.find('{');
    if (start == std::string::npos) return "error: " + out;
    return nlohmann::ordered_json::parse(out.substr(start))["value"].dump();
  }

  // `ping -c 1 -W 1 [extra] to` inside `netns`; returns the exit code, output in *out.
  int ping(const std::string& netns, IP4 to, std::vector<std::string> extra = {},
           std::string* out = nullptr) {
    std::vector<std::string> argv{"ping", "-n", "-c", "1", "-W", "1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(to.str());
    return run_command(argv, out, netns);
  }

  // Starts `iperf3 -s -B addr` in `netns` (it runs until cleanup) and waits until it listens.
  void start_iperf3_server(const std::string& netns, IP4 addr, const std::string& log) {
    servers_.push_back(std::make_unique<Process>(
        Process::Spec{{"iperf3", "-s", "-B", addr.str()}, {}, {}, netns, log}));
    ASSERT_TRUE(wait_until([&] { return tcp_listening(netns, 5201); }, 10s))
        << "iperf3 -s never listened on " << addr.str() << ":5201\n"
        << servers_.back()->output();
  }

  // Polls until a ping from `netns` to `to` succeeds (peers may still be learning of each other).
  bool ping_until_ok(const std::string& netns, IP4 to, std::chrono::seconds timeout = 10s) {
    return wait_until([&] { return ping(netns, to) == 0; }, timeout);
  }

  // Starts three agents on `config`, waits for their leases and adds one pod per host.
  void bring_up(const std::string& config, int hosts) {
    set_config(config);
    start_agents(hosts);
    for (int i = 1; i <= hosts; ++i) {
      auto env = wait_env(i);
      ASSERT_FALSE(env.empty()) << "no subnet file from flanneld on h" << i << ":\n"
                                << agents_[i]->output();
      ASSERT_TRUE(env.count("FLANNEL_SUBNET"));
      IP4Net gw = IP4Net::parse_keep_host(env["FLANNEL_SUBNET"]);
      envs_[i] = env;
      leases_[i] = gw.network();
      pods_[i] = lab_->add_pod(host(i), gw);
    }
  }

  std::string dir_;
  std::unique_ptr<Lab> lab_;
  std::map<int, std::unique_ptr<Process>> agents_;
  std::vector<std::unique_ptr<Process>> servers_;
  std::map<int, std::map<std::string, std::string>> envs_;
  std::map<int, IP4Net> leases_;
  std::map<int, Lab::Pod> pods_;
};

// Runs `iperf3 -c to -t 2 -J [extra]` in `netns` against a listening server (see
// start_iperf3_server); returns the bytes received, 0 on failure (details in *log).
double iperf3_bytes(const std::string& netns, IP4 to, const std::vector<std::string>& extra,
                    std::string* log, double* bps = nullptr) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    // A backoff between retries of a failed run, not synchronisation: the server listens
    // (start_iperf3_server), but a run can still fail, e.g. while it closes the previous test.
    if (attempt) std::this_thread::sleep_for(200ms);
    std::vector<std::string> argv{"iperf3", "-c", to.str(), "-t", "2", "-J"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    std::string out;
    int rc = run_command(argv, &out, netns);
    auto start = out.find('{');
    auto result = nlohmann::json::parse(start == std::string::npos ? "{}" : out.substr(start),
                                        nullptr, false);
    auto sum = result.is_object() ? result["end"]["sum_received"] : nlohmann::json();
    if (rc == 0 && sum.is_object() && sum["bytes"].is_number() &&
        sum["bits_per_second"].is_number()) {
      if (bps) *bps = sum["bits_per_second"].get<double>();
      return sum["bytes"].get<double>();
    }
    *log +=
        "attempt " + std::to_string(attempt) + " (exit " + std::to_string(rc) + "): " + out + "\n";
  }
  return 0;
}

TEST_F(UdpLabTest, ThreeHostsCarryPingAndTcpBetweenPods) {
  // No Backend: udp, exactly seed 003's flow.
  ASSERT_NO_FATAL_FAILURE(bring_up(R"({"Network":"10.5.0.0/16"})", 3));

  std::set<IP4Net> distinct;
  for (int i = 1; i <= 3; ++i) {
    SCOPED_TRACE("h" + std::to_string(i));
    EXPECT_EQ(envs_[i]["FLANNEL_NETWORK"], "10.5.0.0/16");
    EXPECT_EQ(envs_[i]["FLANNEL_MTU"], "1472");  // 1500 - 28
    EXPECT_EQ(lease_value(leases_[i]), R"({"PublicIP":")" + host(i).addr.str() + R"("})");
    distinct.insert(leases_[i]);

    // flannel0: a TUN without packet info, MTU 1472, <subnet network>/32, up; route <Network>.
    std::string out;
    ASSERT_EQ(run_command({"ip", "-d", "link", "show", "flannel0"}, &out, host(i).netns), 0) << out;
    EXPECT_NE(out.find("mtu 1472"), std::string::npos) << out;
    EXPECT_NE(out.find("tun type tun pi off"), std::string::npos) << out;
    EXPECT_NE(out.find(",UP"), std::string::npos) << out;
    run_command({"ip", "-4", "addr", "show", "dev", "flannel0"}, &out, host(i).netns);
    EXPECT_NE(out.find("inet " + leases_[i].ip.str() + "/32 "), std::string::npos) << out;
    run_command({"ip", "route", "show", "10.5.0.0/16"}, &out, host(i).netns);
    EXPECT_NE(out.find("10.5.0.0/16 dev flannel0"), std::string::npos) << out;
    run_command({"ss", "-uln"}, &out, host(i).netns);
    EXPECT_NE(out.find(host(i).addr.str() + ":8285"), std::string::npos) << out;
  }
  EXPECT_EQ(distinct.size(), 3u);

  // Every pod reaches every pod on the other hosts.
  for (int a = 1; a <= 3; ++a) {
    for (int b = 1; b <= 3; ++b) {
      if (a == b) continue;
      EXPECT_TRUE(ping_until_ok(pods_[a].netns, pods_[b].addr))
          << "pod on h" << a << " cannot ping pod on h" << b << " (" << pods_[b].addr.str() << ")";
    }
  }

  // A TCP transfer of several MB between pods on h1 and h2.
  ASSERT_NO_FATAL_FAILURE(
      start_iperf3_server(pods_[1].netns, pods_[1].addr, dir_ + "/iperf3-server.log"));
  std::string log;
  double bps = 0;
  double bytes = iperf3_bytes(pods_[2].netns, pods_[1].addr, {}, &log, &bps);
  ASSERT_GT(bytes, 0) << log << "server: " << servers_.back()->output();
  EXPECT_GT(bytes, 4e6) << log;
  std::cout << "[ udp      ] iperf3 pod h2 -> pod h1 over the udp backend: " << bps / 1e6
            << " Mbit/s (" << bytes / 1e6 << " MB received)\n";
  RecordProperty("iperf3_mbit_per_s", std::to_string(static_cast<long>(bps / 1e6)));
}

TEST_F(UdpLabTest, OneTtlHopAndIcmpErrorsReachTheSender) {
  ASSERT_NO_FATAL_FAILURE(bring_up(R"({"Network":"10.5.0.0/16"})", 2));
  ASSERT_TRUE(ping_until_ok(pods_[1].netns, pods_[2].addr));
  const IP4 tun1 = leases_[1].ip;  // h1's flannel0 address, the source of its proxy's ICMP errors

  // pod1 -(TTL 2)-> h1 kernel (1) -> proxy: would leave with 0 -> Time Exceeded from h1's TUN.
  std::string out;
  EXPECT_NE(ping(pods_[1].netns, pods_[2].addr, {"-t", "2"}, &out), 0) << out;
  EXPECT_NE(out.find("From " + tun1.str() + " icmp_seq=1 Time to live exceeded"), std::string::npos)
      << out;

  // The proxy pair takes one hop, not two as in v0.11: pod1 -> h1 kernel -> proxy -> h2 kernel
  // -> pod2 needs TTL 4 (v0.11 needed 5).
  EXPECT_EQ(ping(pods_[1].netns, pods_[2].addr, {"-t", "4"}, &out), 0) << out;
  EXPECT_NE(ping(pods_[1].netns, pods_[2].addr, {"-t", "3"}, &out), 0) << out;

  // A destination in the Network that nobody leases: Net Unreachable from h1's TUN.
  IP4 nowhere;
  for (uint32_t x = 250; x > 0; --x) {
    IP4Net candidate{IP4{(10u << 24) | (5u << 16) | (x << 8)}, 24};
    if (candidate != leases_[1] && candidate != leases_[2]) {
      nowhere = IP4{candidate.ip.value + 1};
      break;
    }
  }
  EXPECT_NE(ping(pods_[1].netns, nowhere, {}, &out), 0) << out;
  EXPECT_NE(out.find("From " + tun1.str() + " icmp_seq=1 Destination Net Unreachable"),
            std::string::npos)
      << out;

  // 400 such packets as fast as ping sends them: the errors are rate limited (a burst of
  // kIcmpBurst, then kIcmpPerSecond), not one per packet.
  auto t0 = std::chrono::steady_clock::now();
  ping(pods_[1].netns, nowhere, {"-i", "0.002", "-c", "400", "-W", "1"}, &out);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  size_t errors = 0;
  for (size_t at = out.find("Destination Net Unreachable"); at != std::string::npos;
       at = out.find("Destination Net Unreachable", at + 1))
    ++errors;
  EXPECT_GE(errors, 1u) << out;
  EXPECT_LE(errors, UdpProxy::kIcmpBurst + UdpProxy::kIcmpPerSecond * secs + 20)
      << "in " << secs << " s";
  EXPECT_LT(errors, 400u) << "one ICMP error per packet: no rate limit";
}

TEST_F(UdpLabTest, OnlyKnownPeersCanInjectPackets) {
  // A custom Port, spelled in another case, must be used for both binding and sending.
  ASSERT_NO_FATAL_FAILURE(
      bring_up(R"({"Network":"10.6.0.0/16","Backend":{"Type":"UDP","port":9000}})", 2));
  ASSERT_TRUE(ping_until_ok(pods_[1].netns, pods_[2].addr));
  std::string out;
  run_command({"ss", "-uln"}, &out, host(1).netns);
  EXPECT_NE(out.find(host(1).addr.str() + ":9000"), std::string::npos) << out;

  UniqueFd sink = udp_socket_in(pods_[1].netns, 9999);
  // From the hub (10.250.0.254), which can reach h1's port but holds no lease: dropped.
  UniqueFd stranger = udp_socket_in(lab_->hub(), 0);
  for (int k = 0; k < 3; ++k) {
    send_to(stranger, host(1).addr, 9000,
            inner_udp_packet(pods_[2].addr, pods_[1].addr, 9999, "forged"));
  }
  EXPECT_EQ(receive(sink, 1000ms), "")
      << "a datagram from a non-peer was delivered into the overlay";

  // The same packet from h2's address (a peer) is delivered, so the drop above was the check.
  UniqueFd peer = udp_socket_in(host(2).netns, 0);
  send_to(peer, host(1).addr, 9000,
          inner_udp_packet(pods_[2].addr, pods_[1].addr, 9999, "from-peer"));
  EXPECT_EQ(receive(sink, 3000ms), "from-peer");

  // From h2's address, but the inner source is not h2's subnet (a spoofed peer address carrying
  // someone else's packet), or the inner destination is not h1's subnet (h1 would relay it, and
  // with -ip-masq masquerade it, to the hub): both dropped.
  send_to(peer, host(1).addr, 9000,
          inner_udp_packet(IP4::parse("192.0.2.7"), pods_[1].addr, 9999, "foreign-source"));
  EXPECT_EQ(receive(sink, 1000ms), "") << "an inner packet from outside h2's subnet got in";
  UniqueFd hub_sink = udp_socket_in(lab_->hub(), 9999);
  send_to(peer, host(1).addr, 9000,
          inner_udp_packet(pods_[2].addr, IP4::parse("10.250.0.254"), 9999, "relayed"));
  EXPECT_EQ(receive(hub_sink, 1000ms), "") << "h1 relayed a peer's packet out of the overlay";
  send_to(peer, host(1).addr, 9000,
          inner_udp_packet(pods_[2].addr, pods_[1].addr, 9999, "still-from-peer"));
  EXPECT_EQ(receive(sink, 3000ms), "still-from-peer");

  // Garbage from a peer (not an IPv4 packet, or truncated) is dropped without harm.
  send_to(peer, host(1).addr, 9000, {1, 2, 3});
  auto truncated = inner_udp_packet(pods_[2].addr, pods_[1].addr, 9999, "cut");
  truncated.resize(25);
  send_to(peer, host(1).addr, 9000, truncated);
  EXPECT_EQ(receive(sink, 500ms), "");
  EXPECT_TRUE(ping_until_ok(pods_[1].netns, pods_[2].addr, 5s));
}

TEST_F(UdpLabTest, InteroperatesWithAPlainOnePacketPerDatagramPeer) {
  // h1 runs flanneld (TSO/GRO offloads, UDP GSO/GRO); h2 is a v0.11-style node: a plain TUN and
  // a socket without GRO that sends and expects exactly one IPv4 packet per datagram.
  ASSERT_NO_FATAL_FAILURE(bring_up(R"({"Network":"10.5.0.0/16"})", 1));
  const auto& h2 = lab_->add_host();
  IP4Net old_subnet = IP4Net::parse(leases_[1] == IP4Net::parse("10.5.200.0/24") ? "10.5.201.0/24"
                                                                                 : "10.5.200.0/24");
  std::string out;
  ASSERT_EQ(run_command(
                {kBinDir + "/flannelctl", store_flag(), "reserve", old_subnet.str(), h2.addr.str()},
                &out),
            0)
      << out;
  const IP4 old_tun_addr = old_subnet.ip;
  UniqueFd tun = tun_in(h2.netns, "flannel0");
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {"ip", "addr", "add", old_tun_addr.str() + "/32", "dev", "flannel0"},
           {"ip", "link", "set", "flannel0", "mtu", "1472", "up"},
           {"ip", "route", "add", "10.5.0.0/16", "dev", "flannel0"}}) {
    ASSERT_EQ(run_command(cmd, &out, h2.netns), 0) << out;
  }
  PlainPeerRelay relay(std::move(tun), udp_socket_in(h2.netns, 8285), host(1).addr, 8285, 1472);

  ASSERT_TRUE(ping_until_ok(pods_[1].netns, old_tun_addr))
      << "pod on h1 cannot reach the plain peer";
  ASSERT_NO_FATAL_FAILURE(start_iperf3_server(h2.netns, old_tun_addr, dir_ + "/iperf3-plain.log"));
  std::string log;
  double bps = 0;
  // pod(h1) -> plain peer: h1's TSO super-packets must reach h2 cut into single packets.
  double bytes = iperf3_bytes(pods_[1].netns, old_tun_addr, {}, &log, &bps);
  EXPECT_GT(bytes, 4e6) << log;
  std::cout << "[ udp      ] iperf3 pod h1 -> plain v0.11-style peer: " << bps / 1e6 << " Mbit/s\n";
  // plain peer -> pod(h1): single packets in, merged by h1 where they can be.
  bytes = iperf3_bytes(pods_[1].netns, old_tun_addr, {"-R"}, &log, &bps);
  EXPECT_GT(bytes, 4e6) << log;
  std::cout << "[ udp      ] iperf3 plain v0.11-style peer -> pod h1: " << bps / 1e6 << " Mbit/s\n";
  EXPECT_GT(relay.received(), 1000u);
  EXPECT_GT(relay.sent(), 1000u);
  EXPECT_EQ(relay.bad(), 0u)
      << "datagrams that were not exactly one IPv4 packet of at most 1472 bytes";
}

}  // namespace
}  // namespace flannel::testing
