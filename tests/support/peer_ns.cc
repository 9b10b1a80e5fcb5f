#include "tests/support/peer_ns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

#include "tests/support/process.h"

namespace flannel::testing {

namespace {

std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

void must(const std::vector<std::string>& argv) {
  std::string out;
  if (int rc = run_command(argv, &out); rc != 0)
    throw std::runtime_error("peer ns: `" + joined(argv) + "` failed (" + std::to_string(rc) +
                             "): " + out);
}

}  // namespace

PeerNs::PeerNs(const std::string& tag) {
  static int counter = 0;
  name_ = "fl" + std::to_string(::getpid()) + "-" + tag + std::to_string(counter++);
  must({"ip", "netns", "add", name_});
  try {
    must({"ip", "-n", name_, "link", "set", "lo", "up"});
    // A veth pair kept inside the namespace (the dummy driver is not always built).
    must({"ip", "-n", name_, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"});
    must({"ip", "-n", name_, "link", "set", "eth0p", "up"});
    must({"ip", "-n", name_, "addr", "add", std::string(kEthAddr) + "/16", "dev", "eth0"});
    must({"ip", "-n", name_, "link", "set", "eth0", "up"});
  } catch (...) {
    run_command({"ip", "netns", "del", name_});
    throw;
  }
}

PeerNs::~PeerNs() { run_command({"ip", "netns", "del", name_}); }

std::string PeerNs::run(std::vector<std::string> argv) const {
  argv.insert(argv.begin() + 1, {"-n", name_});
  std::string out;
  if (int rc = run_command(argv, &out); rc != 0)
    throw std::runtime_error("peer ns: `" + joined(argv) + "` failed (" + std::to_string(rc) +
                             "): " + out);
  return out;
}

PeerNs::Enter::Enter(const std::string& netns) {
  home_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home_ < 0) throw std::runtime_error("peer ns: cannot open our own netns");
  int fd = ::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
    if (fd >= 0) ::close(fd);
    ::close(home_);
    throw std::runtime_error("peer ns: cannot enter " + netns);
  }
  ::close(fd);
}

PeerNs::Enter::~Enter() {
  if (::setns(home_, CLONE_NEWNET) != 0) std::perror("peer ns: cannot return to our netns");
  ::close(home_);
}

std::vector<Lease> synthetic_peers(size_t n, const std::string& backend_type) {
  if (n > 60000) throw std::runtime_error("synthetic_peers: at most 60000");
  std::vector<Lease> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    Lease l;
    l.subnet =
        IP4Net{IP4{(10u << 24) | uint32_t((1 + i / 256) << 16) | uint32_t((i % 256) << 8)}, 24};
    l.attrs.public_ip =
        IP4{(172u << 24) | (31u << 16) | uint32_t((1 + i / 250) << 8) | uint32_t(2 + i % 250)};
    l.attrs.backend_type = backend_type;
    if (backend_type == "vxlan") {
      char mac[32];
      std::snprintf(mac, sizeof(mac), "0a:58:%02x:%02x:%02x:%02x", unsigned(i >> 24 & 255),
                    unsigned(i >> 16 & 255), unsigned(i >> 8 & 255), unsigned(i & 255));
      l.attrs.backend_data = std::string("{\"VtepMAC\":\"") + mac + "\"}";
    }
    out.push_back(l);
  }
  return out;
}

Lease synthetic_own_lease(const std::string& backend_type) {
  Lease l;
  l.subnet = IP4Net{IP4{(10u << 24) | (255u << 16) | (255u << 8)}, 24};
  l.attrs.public_ip = IP4{(172u << 24) | (31u << 16) | 1u};
  l.attrs.backend_type = backend_type;
  return l;
}

std::string synthetic_config_json(const std::string& backend_type) {
  return R"({"Network":"10.0.0.0/8","SubnetLen":24,"Backend":{"Type":")" + backend_type + R"("}})";
}

}  // namespace flannel::testing
