#include "stores/sqlite/file_notifier.h"

#include <pthread.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace flannel::sqlite {
namespace {

// The directory: only names coming and going (the file created, renamed over or removed: a store
// reset), never writes, so other files in it (agents' logs in a lab) wake nobody.
constexpr uint32_t kDirEvents =
    IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF;
// The database file itself: our writers touch it after each commit (one IN_ATTRIB per commit,
// sent once the commit is visible); a checkpoint or a rollback-journal writer writes it.
// Writes to the -wal are not watched: one commit is several of them, all before it is visible.
constexpr uint32_t kFileEvents = IN_ATTRIB | IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF;

// The state one subscription waits on; owned by the notifier's table and by each subscriber.
struct Topic {
  std::string path;  // the database file
  std::string base;  // its name in its directory
  uint64_t changes = 0;
};

// The process's inotify instance, its watched directories and the topics in them.
class Notifier {
 public:
  // The process's notifier, null when inotify is unavailable. A child made by fork(2) gets its
  // own on first use (the parent's reader thread does not exist there, and its lock may have
  // been held at the fork): the parent's is forgotten, its descriptor closed.
  static Notifier* instance() {
    static const bool atfork = [] {
      pthread_atfork(nullptr, nullptr, [] {
        if (Notifier* old = current_.exchange(nullptr); old && old->fd_ >= 0) ::close(old->fd_);
      });
      return true;
    }();
    (void)atfork;
    Notifier* n = current_.load();
    if (!n) {
      auto* created = new Notifier();  // lives as long as the process: its thread never ends
      if (current_.compare_exchange_strong(n, created)) {
        n = created;
        if (n->fd_ >= 0) std::thread([n] { n->run(); }).detach();
      } else {
        delete created;  // another thread won; no thread was started for this one
      }
    }
    return n->fd_ >= 0 ? n : nullptr;
  }

  std::shared_ptr<Topic> topic(const std::string& path) {
    std::string dir = ".", base = path;
    if (auto slash = path.rfind('/'); slash != std::string::npos) {
      dir = slash == 0 ? "/" : path.substr(0, slash);
      base = path.substr(slash + 1);
    }
    std::lock_guard lock(mu_);
    int wd = inotify_add_watch(fd_, dir.c_str(), kDirEvents);  // the same wd for a known dir
    if (wd < 0) return nullptr;
    auto t = std::make_shared<Topic>();
    t->path = path;
    t->base = base;
    add(wd, t);
    watch_file(t);  // a file not there yet is watched when its name appears
    return t;
  }

  uint64_t changes(const Topic& t) {
    std::lock_guard lock(mu_);
    return t.changes;
  }

  bool wait(const Topic& t, uint64_t seen, std::chrono::steady_clock::time_point until,
            std::stop_token stop) {
    std::unique_lock lock(mu_);
    return cv_.wait_until(lock, stop, until, [&] { return t.changes != seen; });
  }

 private:
  Notifier() : fd_(inotify_init1(IN_CLOEXEC)) {}
  ~Notifier() {
    if (fd_ >= 0) ::close(fd_);
  }

  // The reader thread: one per process, started by instance(), never stopped.
  void run() {
    alignas(inotify_event) char buf[16384];
    for (;;) {
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // the watches fall back to their safety interval
      std::lock_guard lock(mu_);
      bool changed = false;
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
        changed = dispatch(*ev) || changed;
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
      if (changed) cv_.notify_all();  // no waiter wakes for a name that is not a database's
    }
  }

  void add(int wd, const std::shared_ptr<Topic>& t) {
    auto& list = topics_[wd];
    std::erase_if(list, [](const std::weak_ptr<Topic>& w) { return w.expired(); });
    for (const auto& w : list)
      if (w.lock() == t) return;
    list.push_back(t);
  }

  // Watches the file at the topic's path (the inode there now: called again when a new file
  // takes the name).
  void watch_file(const std::shared_ptr<Topic>& t) {
    int wd = inotify_add_watch(fd_, t->path.c_str(), kFileEvents);
    if (wd >= 0) add(wd, t);
  }

  // Counts the event for each live topic it concerns; forgets topics nobody waits on any more.
  // True if it counted.
  bool dispatch(const inotify_event& ev) {
    auto it = topics_.find(ev.wd);
    if (it == topics_.end()) return false;
    bool counted = false;
    const std::string name = ev.len ? std::string(ev.name) : std::string();
    std::vector<std::shared_ptr<Topic>> renamed;  // a new file at a topic's path: watch it
    auto& list = it->second;
    for (size_t i = 0; i < list.size();) {
      auto t = list[i].lock();
      if (!t) {
        list.erase(list.begin() + static_cast<long>(i));
        continue;
      }
      // An event of the file's own watch, or of the directory itself (both without a name:
      // written, touched, gone, IN_IGNORED), or one of the database's names came or went.
      if (name.empty() || name == t->base || name == t->base + "-wal" ||
          name == t->base + "-journal") {
        ++t->changes;
        counted = true;
        if (name == t->base && (ev.mask & (IN_CREATE | IN_MOVED_TO))) renamed.push_back(t);
      }
      ++i;
    }
    if (ev.mask & IN_IGNORED) topics_.erase(it);
    for (const auto& t : renamed) watch_file(t);
    return counted;
  }

  static inline std::atomic<Notifier*> current_{nullptr};
  const int fd_;
  std::mutex mu_;
  std::condition_variable_any cv_;
  std::map<int, std::vector<std::weak_ptr<Topic>>> topics_;  // by watch descriptor
};

class InotifySubscription : public FileNotifier::Subscription {
 public:
  InotifySubscription(Notifier& n, std::shared_ptr<Topic> t) : n_(n), t_(std::move(t)) {}
  uint64_t changes() const override { return n_.changes(*t_); }
  bool wait(uint64_t seen, std::chrono::steady_clock::time_point until,
            std::stop_token stop) override {
    return n_.wait(*t_, seen, until, std::move(stop));
  }

 private:
  Notifier& n_;
  std::shared_ptr<Topic> t_;
};

}  // namespace

bool FileNotifier::disabled_by_environment() {
  const char* v = std::getenv("FLANNEL_SQLITE_NOTIFY");
  if (!v) return false;
  return std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0 || std::strcmp(v, "false") == 0;
}

std::shared_ptr<FileNotifier::Subscription> FileNotifier::subscribe(const std::string& path) {
  if (disabled_by_environment()) return nullptr;
  Notifier* n = Notifier::instance();
  if (!n) return nullptr;
  auto t = n->topic(path);
  if (!t) return nullptr;
  return std::make_shared<InotifySubscription>(*n, std::move(t));
}

}  // namespace flannel::sqlite
