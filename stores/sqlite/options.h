// SqliteOptions: the SQLite store's file and its limits (-store=sqlite:PATH).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace flannel {

struct SqliteOptions {
  std::string path;                            // database file; created if missing
  std::string prefix = "/coreos.com/network";  // one file can hold several networks
  std::chrono::milliseconds busy_timeout{5000};
  // Lease events kept for watchers; a watcher further behind gets kHistoryGone (as etcd's 1000).
  size_t history_limit = 1000;
};

}  // namespace flannel
