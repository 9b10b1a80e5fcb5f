// LabStore: the store a lab's agents share, as users deploy it: a SQLite file (the embedded
// store) or a real etcd running inside the lab's hub namespace on 10.250.0.254:2379, reached by
// the hosts over the lab network. flags() are the flanneld/flannelctl flags that select it;
// ctl() runs flannelctl against it and etcdctl() runs the real etcdctl (v2 API) against it, the
// way the seed documents do.
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "tests/support/lab.h"
#include "tests/support/process.h"

namespace flannel::testing {

class LabStore {
 public:
  // kEtcd: etcd with the v2 API enabled (the seeds' etcdctl set); kEtcdV3: etcd without it
  // (as etcd 3.5/3.6 run by default), written with ETCDCTL_API=3 etcdctl put.
  enum class Kind { kSqlite, kEtcd, kEtcdV3 };

  // Starts etcd in lab.hub() for kEtcd (throws with etcd's log if it does not come up), or
  // picks a fresh SQLite file in `dir` for kSqlite. `prefix` is the -etcd-prefix to use.
  LabStore(Kind kind, const Lab& lab, const std::string& dir, const std::string& prefix);
  ~LabStore();

  Kind kind() const { return kind_; }
  const std::string& prefix() const { return prefix_; }
  // -store / -etcd-endpoints / -etcd-prefix flags for flanneld and flannelctl.
  std::vector<std::string> flags() const;
  std::string endpoint() const { return endpoint_; }               // etcd URL ("" for SQLite)
  const std::string& sqlite_path() const { return sqlite_path_; }  // "" for etcd

  // Runs `flannelctl <flags> args...`; returns the exit code, output (stdout+stderr) in *out.
  int ctl(const std::vector<std::string>& args, std::string* out = nullptr) const;
  // Runs `etcdctl --endpoints=... args...` with ETCDCTL_API=2 (kEtcd) or 3 (kEtcdV3).
  int etcdctl(const std::vector<std::string>& args, std::string* out = nullptr) const;
  // Runs `etcdctl` with ETCDCTL_API=3 on either etcd kind.
  int etcdctl3(const std::vector<std::string>& args, std::string* out = nullptr) const;
  bool is_etcd() const { return kind_ != Kind::kSqlite; }
  // The etcd server's process id (for its CPU time in benchmarks); -1 for SQLite.
  pid_t etcd_pid() const { return etcd_ ? etcd_->pid() : -1; }

  // The disaster the agents must heal from: every key is lost. etcd: stopped, its data dir
  // deleted, started again on the same address (returns once it answers). SQLite: the file and
  // its -wal/-shm companions unlinked (agents keep the old ones open); the next writer creates
  // a new file at the path.
  void wipe_and_restart();

 private:
  Kind kind_;
  std::string hub_;
  std::string dir_;
  std::string prefix_;
  std::string sqlite_path_;
  std::string endpoint_;
  void start_etcd();
  std::unique_ptr<Process> etcd_;
};

std::string to_string(LabStore::Kind kind);
// So gtest prints "Sqlite"/"Etcd"/"EtcdV3" instead of a byte dump of the parameter.
inline void PrintTo(LabStore::Kind kind, std::ostream* os) { *os << to_string(kind); }

}  // namespace flannel::testing
