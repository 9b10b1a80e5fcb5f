// Small helpers the benchmarks share: order statistics of samples and /proc figures of a process.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <fstream>
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

}  // namespace flannel::bench_util
