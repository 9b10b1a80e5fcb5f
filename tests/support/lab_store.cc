#include "tests/support/lab_store.h"

#include <signal.h>

#include <filesystem>
#include <stdexcept>

#include "tests/support/wait.h"

namespace flannel::testing {

#ifndef FLANNEL_BIN_DIR
#define FLANNEL_BIN_DIR ""
#endif

std::string to_string(LabStore::Kind kind) {
  switch (kind) {
    case LabStore::Kind::kEtcd: return "Etcd";
    case LabStore::Kind::kEtcdV3: return "EtcdV3";
    default: return "Sqlite";
  }
}

LabStore::LabStore(Kind kind, const Lab& lab, const std::string& dir, const std::string& prefix)
    : kind_(kind), hub_(lab.hub()), dir_(dir), prefix_(prefix) {
  if (kind_ == Kind::kSqlite) {
    sqlite_path_ = dir_ + "/store.db";
    return;
  }
  endpoint_ = "http://10.250.0.254:2379";
  start_etcd();
}

void LabStore::start_etcd() {
  std::string data = dir_ + "/etcd-data";
  etcd_ = std::make_unique<Process>(
      Process::Spec{{"etcd", "--name=lab", "--data-dir=" + data,
                     kind_ == Kind::kEtcd ? "--enable-v2=true" : "--enable-v2=false",
                     "--listen-client-urls=" + endpoint_, "--advertise-client-urls=" + endpoint_,
                     "--listen-peer-urls=http://127.0.0.1:2380",
                     "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                     "--initial-cluster=lab=http://127.0.0.1:2380", "--log-level=warn"},
                    {{"ETCD_UNSUPPORTED_ARCH", ""}},
                    {},
                    hub_,
                    dir_ + "/etcd.log"});
  bool up = wait_until(
      [&] {
        return (kind_ == Kind::kEtcd ? etcdctl({"ls", "/"}) : etcdctl3({"get", "/"})) == 0 ||
               !etcd_->running();
      },
      std::chrono::seconds(20));
  if (!up || !etcd_->running()) {
    throw std::runtime_error("etcd did not start in " + hub_ + ": " + etcd_->output());
  }
}

void LabStore::wipe_and_restart() {
  std::error_code ec;
  if (kind_ == Kind::kSqlite) {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::filesystem::remove(sqlite_path_ + suffix, ec);
    }
    return;
  }
  etcd_->signal(SIGTERM);
  if (!etcd_->wait(std::chrono::seconds(5))) etcd_->signal(SIGKILL);
  etcd_.reset();
  std::filesystem::remove_all(dir_ + "/etcd-data", ec);
  start_etcd();
}

LabStore::~LabStore() {
  if (etcd_) {
    etcd_->signal(SIGTERM);
    if (!etcd_->wait(std::chrono::seconds(5))) etcd_->signal(SIGKILL);
  }
}

std::vector<std::string> LabStore::flags() const {
  if (kind_ == Kind::kSqlite) return {"-store=sqlite:" + sqlite_path_, "-etcd-prefix=" + prefix_};
  return {"-etcd-endpoints=" + endpoint_, "-etcd-prefix=" + prefix_};
}

int LabStore::ctl(const std::vector<std::string>& args, std::string* out) const {
  std::vector<std::string> argv{std::string(FLANNEL_BIN_DIR) + "/flannelctl"};
  for (const auto& f : flags()) argv.push_back(f);
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, out, is_etcd() ? hub_ : "");
}

int LabStore::etcdctl(const std::vector<std::string>& args, std::string* out) const {
  if (!is_etcd()) throw std::logic_error("etcdctl on a SQLite lab store");
  if (kind_ == Kind::kEtcdV3) return etcdctl3(args, out);
  std::vector<std::string> argv{"env", "ETCDCTL_API=2", "etcdctl", "--endpoints=" + endpoint_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, out, hub_);
}

int LabStore::etcdctl3(const std::vector<std::string>& args, std::string* out) const {
  if (!is_etcd()) throw std::logic_error("etcdctl on a SQLite lab store");
  std::vector<std::string> argv{"env", "ETCDCTL_API=3", "etcdctl", "--endpoints=" + endpoint_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, out, hub_);
}

}  // namespace flannel::testing
