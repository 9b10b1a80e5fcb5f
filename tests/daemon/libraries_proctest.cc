// What a running flanneld maps: libcurl (and the chain Debian builds it with: OpenSSL's libssl,
// GnuTLS, LDAP, SSH2) is loaded only when an etcd store is used (stores/etcd/curl_lib.h), so an
// agent on the SQLite store never maps it; OpenSSL's libcrypto is loaded only by the wireguard
// backend's key code (backends/wireguard/crypto_lib.h), so an agent on another backend and the
// SQLite store maps no OpenSSL at all. Read from /proc/PID/maps of a real agent holding its lease.
#include <sstream>
#include <string>
#include <vector>

#include "tests/daemon/agent_fixture.h"

namespace flannel::testing {
namespace {

constexpr const char* kAllocConfig =
    R"({"Network":"172.30.0.0/16", "SubnetLen": 24, "Backend": {"Type": "alloc"}})";

// The mapped files of `pid` whose name contains one of `parts`.
std::vector<std::string> mapped(pid_t pid, const std::vector<std::string>& parts) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/maps"));
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    for (const auto& p : parts)
      if (path.find(p) != std::string::npos && (out.empty() || out.back() != path))
        out.push_back(path);
  }
  return out;
}

const std::vector<std::string> kCurlChain{"libcurl", "libssl", "libgnutls", "libldap", "libssh2"};

TEST_P(AgentTest, LibcurlIsMappedOnlyWithAnEtcdStore) {
  set_config(kAllocConfig);
  start_agent(1);
  ASSERT_TRUE(wait_subnet(1)) << agent(1).output();
  auto libs = mapped(agent(1).pid(), kCurlChain);
  if (store_->is_etcd()) {
    EXPECT_FALSE(mapped(agent(1).pid(), {"libcurl"}).empty()) << "the etcd store loads libcurl";
  } else {
    std::string all;
    for (const auto& l : libs) all += l + "\n";
    EXPECT_TRUE(libs.empty()) << "a SQLite agent maps:\n" << all;
    EXPECT_TRUE(mapped(agent(1).pid(), {"libcrypto"}).empty())
        << "an alloc agent on SQLite maps OpenSSL";
  }
}

// Instantiated for SQLite and etcd with the other AgentTest cases (flanneld_proctest.cc).

}  // namespace
}  // namespace flannel::testing
