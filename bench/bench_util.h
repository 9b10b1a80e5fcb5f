// Small helpers the benchmarks share: order statistics of samples and /proc figures of a process.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace flannel::bench_util {

// The p-quantile (0..1) of `v`, nearest rank; -1 for no samples.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

inline double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

// A "<field>: N kB" line of /proc/PID/status (VmRSS, RssAnon, ...), in kB; -1 if absent.
inline long status_kb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  return -1;
}

// CPU time of a process so far, in ms (/proc/PID/stat): its own user and system time, and its
// waited-for children's (cutime, cstime: e.g. the iptables runs of an agent). All 0 if the
// process is gone.
struct ProcCpu {
  double user = 0, sys = 0, child_user = 0, child_sys = 0;
  double own() const { return user + sys; }
  double children() const { return child_user + child_sys; }
};

inline ProcCpu proc_cpu(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ProcCpu out;
  auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 > stat.size()) return out;
  std::istringstream in(stat.substr(paren + 2));
  std::string field;
  double v[4] = {0, 0, 0, 0};
  for (int i = 3; i <= 17 && in >> field; ++i)  // field 3 is the state; 14..17 the times
    if (i >= 14) v[i - 14] = std::stod(field);
  double tick = 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  return {v[0] * tick, v[1] * tick, v[2] * tick, v[3] * tick};
}

// A comma-separated list ("30,100") as its parts.
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) out.push_back(part);
  return out;
}

// Durations (ms) of an agent's -v=2 "Peer changes applied in N us" log lines, in order: its own
// time per batch of peer changes, from the watch answer to the last netlink ack.
inline std::vector<double> applied_ms(const std::string& log) {
  std::vector<double> out;
  std::istringstream in(log);
  std::string line;
  const std::string key = "Peer changes applied in ";
  while (std::getline(in, line)) {
    auto pos = line.find(key);
    if (pos != std::string::npos) out.push_back(std::stod(line.substr(pos + key.size())) / 1000.0);
  }
  return out;
}

}  // namespace flannel::bench_util
