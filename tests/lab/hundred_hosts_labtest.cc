// A hundred lab hosts on one SQLite file (issue 22): 100 real flanneld, alloc backend, started at
// once on one store file. Every host gets a lease, the subnets are distinct and in the network,
// the store holds exactly those 100 leases, and every agent's peer set is complete (its
// flannel_peers gauge on /metrics reaches 99). Then the lab's idle CPU (the agents' own and their
// children's, over 5 s) is printed for the record: the benchmark (bench/idle_cpu_bench) measures
// it, this test asserts only correctness.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>

#include "tests/lab/overlay_lab.h"
#include "tests/lab/rules_lab.h"

namespace flannel::testing {
namespace {

constexpr int kHosts = 100;

// The value of the unlabelled gauge `name` in a /metrics text; -1 if absent.
double gauge(const std::string& metrics, const std::string& name) {
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  return -1;
}

// utime + stime + cutime + cstime of a process, in clock ticks (/proc/PID/stat).
double cpu_ticks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream in(stat.substr(paren + 2));
  std::string field;
  double sum = 0;
  for (int i = 3; i <= 17 && in >> field; ++i)
    if (i >= 14) sum += std::stod(field);
  return sum;
}

TEST(HundredHostsLab, AllocAgentsOnOneSqliteFileLeaseDistinctSubnetsAndSeeEveryPeer) {
  SKIP_UNLESS_ROOT();
  OverlayLab lab("c", R"({"Network":"10.5.0.0/16","Backend":{"Type":"alloc"}})", kHosts);
  lab.customize_start = [](int, Process::Spec& spec) {
    spec.argv.push_back("-healthz-port=" + std::to_string(kHealthzPort));
  };
  auto started = Clock::now();
  lab.start_all();

  std::set<std::string> subnets;
  for (int i = 0; i < kHosts; ++i) {
    IP4Net s = lab.wait_subnet(i, 60s).network();
    EXPECT_TRUE(IP4Net::parse("10.5.0.0/16").contains(s.ip)) << s.str();
    EXPECT_EQ(s.prefix, 24) << s.str();
    subnets.insert(s.str());
  }
  std::printf("hundred hosts: all %d leased in %lld ms\n", kHosts,
              static_cast<long long>(ms_since(started)));
  EXPECT_EQ(subnets.size(), static_cast<size_t>(kHosts)) << "two hosts share a subnet";

  auto leases = lab.leases();
  EXPECT_EQ(leases.size(), static_cast<size_t>(kHosts));
  for (const auto& [key, value] : leases) {
    EXPECT_TRUE(subnets.count(key)) << "a lease no host holds: " << key << " " << value.dump();
  }

  for (int i = 0; i < kHosts; ++i) {
    std::string metrics;
    bool complete = wait_until(
        [&] {
          return http_get(lab, i, "/metrics", &metrics) == 200 &&
                 gauge(metrics, "flannel_peers") == kHosts - 1;
        },
        30s);
    ASSERT_TRUE(complete) << "host " << i + 1 << " sees " << gauge(metrics, "flannel_peers")
                          << " peers, expected " << kHosts - 1 << "\n"
                          << read_file(lab.log_file(i));
  }
  std::printf("hundred hosts: every agent sees its %d peers %lld ms after the start\n", kHosts - 1,
              static_cast<long long>(ms_since(started)));

  double before = 0, after = 0;
  for (int i = 0; i < kHosts; ++i) before += cpu_ticks(lab.daemon(i)->pid());
  auto t0 = Clock::now();
  std::this_thread::sleep_for(5s);  // a measurement window, not a synchronisation
  for (int i = 0; i < kHosts; ++i) {
    ASSERT_TRUE(lab.daemon(i)->running()) << read_file(lab.log_file(i));
    after += cpu_ticks(lab.daemon(i)->pid());
  }
  double seconds = static_cast<double>(ms_since(t0)) / 1000.0;
  std::printf("hundred hosts: idle, the %d agents (own + children) use %.2f %% of one core\n",
              kHosts,
              100.0 * (after - before) / static_cast<double>(sysconf(_SC_CLK_TCK)) / seconds);
}

}  // namespace
}  // namespace flannel::testing
