// agent_startup_bench: what an operator feels when flanneld starts, on each store (SQLite, etcd
// v2 API, etcd v3 API on an etcd without v2).
//
//   start -> subnet.env   fork of flanneld (inside a lab host namespace) until its subnet file
//                         exists, fresh lease each time (the lease and file are removed between
//                         runs); median and p90 of N runs
//   idle RSS              VmRSS of a running agent 1 s after it wrote its subnet file
//   32 racing agents      32 agents on 32 lab hosts started at once, until all 32 hold leases
//
// Usage (root): agent_startup_bench [runs=20]
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "tests/support/lab.h"
#include "tests/support/lab_store.h"
#include "tests/support/process.h"

using namespace flannel::testing;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

using namespace flannel::bench_util;

namespace {

constexpr const char* kConfig = R"({"Network":"10.5.0.0/16","Backend":{"Type":"alloc"}})";

std::vector<std::string> agent_argv(const LabStore& store, const std::string& env_file) {
  std::vector<std::string> argv{std::string(FLANNEL_BIN_DIR) + "/flanneld"};
  for (const auto& f : store.flags()) argv.push_back(f);
  argv.push_back("-subnet-file=" + env_file);
  argv.push_back("-iface=eth0");
  return argv;
}

bool wait_file(const std::string& path, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!std::filesystem::exists(path)) {
    if (Clock::now() > deadline) return false;
    usleep(200);
  }
  return true;
}

// A field of /proc/PID/status in kB ("VmRSS", "RssAnon"), -1 if absent.
void bench_store(LabStore::Kind kind, int runs, const std::string& dir) {
  Lab lab("b");
  const auto& host = lab.add_host();
  std::string sdir = dir + "/" + to_string(kind);
  std::filesystem::create_directories(sdir);
  LabStore store(kind, lab, sdir, "/flannel-bench/network");
  std::string out;
  if (store.ctl({"config", "set", kConfig}, &out) != 0) {
    std::fprintf(stderr, "config set failed: %s\n", out.c_str());
    return;
  }
  std::string env_file = sdir + "/subnet.env";
  std::vector<double> ms;
  long rss = -1, anon = -1;
  for (int r = 0; r < runs; ++r) {
    std::filesystem::remove(env_file);
    auto t0 = Clock::now();
    Process p(
        {agent_argv(store, env_file), {}, {"NOTIFY_SOCKET"}, host.netns, sdir + "/agent.log"});
    if (!wait_file(env_file, 10s)) {
      std::fprintf(stderr, "agent did not write %s:\n%s\n", env_file.c_str(), p.output().c_str());
      return;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (r == runs - 1) {
      std::this_thread::sleep_for(1s);
      rss = status_kb(p.pid(), "VmRSS");
      anon = status_kb(p.pid(), "RssAnon");
    }
    p.signal(SIGTERM);
    p.wait(5s);
    // A fresh lease next time: drop the one just taken.
    std::string list;
    store.ctl({"subnets", "list", "--json"}, &list);
    auto pos = list.find("\"subnet\": \"");
    if (pos != std::string::npos) {
      auto start = pos + 11;
      store.ctl({"subnets", "rm", list.substr(start, list.find('"', start) - start)});
    }
  }
  std::printf(
      "%-7s start->subnet.env  median %6.1f ms  p90 %6.1f ms  (n=%d, fresh lease each run)\n",
      to_string(kind).c_str(), percentile(ms, 0.5), percentile(ms, 0.9), runs);
  std::printf(
      "%-7s idle RSS after lease %6.1f MB (of which private anonymous %.1f MB; the rest is\n"
      "        shared library text, shared with every other process using those libraries)\n",
      to_string(kind).c_str(), static_cast<double>(rss) / 1024.0,
      static_cast<double>(anon) / 1024.0);
}

void bench_race(LabStore::Kind kind, int agents, int rounds, const std::string& dir) {
  std::vector<double> ms;
  for (int round = 0; round < rounds; ++round) {
    Lab lab("r");
    for (int i = 0; i < agents; ++i) lab.add_host();
    std::string sdir = dir + "/race-" + to_string(kind) + std::to_string(round);
    std::filesystem::create_directories(sdir);
    LabStore store(kind, lab, sdir, "/flannel-bench/network");
    store.ctl({"config", "set", kConfig});
    std::vector<std::unique_ptr<Process>> procs;
    auto t0 = Clock::now();
    for (int i = 0; i < agents; ++i) {
      std::string env_file = sdir + "/h" + std::to_string(i) + ".env";
      procs.push_back(
          std::make_unique<Process>(Process::Spec{agent_argv(store, env_file),
                                                  {},
                                                  {"NOTIFY_SOCKET"},
                                                  lab.hosts()[i].netns,
                                                  sdir + "/h" + std::to_string(i) + ".log"}));
    }
    for (int i = 0; i < agents; ++i) {
      if (!wait_file(sdir + "/h" + std::to_string(i) + ".env", 30s)) {
        std::fprintf(stderr, "agent %d got no lease:\n%s\n", i, procs[i]->output().c_str());
        return;
      }
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    for (auto& p : procs) p->signal(SIGTERM);
    for (auto& p : procs) p->wait(5s);
  }
  std::printf("%-7s %d agents racing until all hold leases  median %7.1f ms  (rounds=%d)\n",
              to_string(kind).c_str(), agents, percentile(ms, 0.5), rounds);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 20;
  if (::geteuid() != 0) {
    std::fprintf(stderr, "agent_startup_bench: needs root (network namespaces)\n");
    return 1;
  }
  cleanup_stale_labs();
  // Under /run, like the default /run/flannel/subnet.env (tmpfs on systemd machines).
  char tmpl[] = "/run/flannel-bench-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  // EtcdV3: etcd without v2, config written by flannelctl (which then writes v3), default -store.
  const auto kinds = {LabStore::Kind::kSqlite, LabStore::Kind::kEtcd, LabStore::Kind::kEtcdV3};
  for (auto kind : kinds) bench_store(kind, runs, dir);
  for (auto kind : kinds) bench_race(kind, 32, 3, dir);
  std::filesystem::remove_all(dir);
  return 0;
}
