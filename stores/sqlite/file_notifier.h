// FileNotifier: the kernel's file change notifications (inotify) for the SQLite store's files,
// so a watch wakes when another process commits instead of polling the file.
//
// One inotify instance and one reader thread per process (long-running: started by the first
// subscribe(), blocked in read(2) on the inotify descriptor, never stopped; it holds no lock
// while it waits), shared by every watch of every SqliteStore in the process. It watches each
// subscribed database file for writes and attribute changes (our writers touch the file once
// each commit is visible, see Db: one wake-up per commit), and the file's directory for names
// only: the file, its "-wal" or "-journal" created, renamed over or removed (a store reset; a
// new file at the path is watched in turn). Writes to the -wal are not watched (one commit is
// several, all before the commit is visible), nor anything else in the directory (a lab's logs).
// A writer that does not touch the file (another program) is seen at the watch's safety check,
// within about a second. A subscription counts the changes; a watch waits for the count to move.
//
// Notifications can be missing: inotify may be unavailable, a network file system does not
// report other hosts' writes, FLANNEL_SQLITE_NOTIFY=off turns them off (a test switch). Then
// subscribe() returns null and the watch falls back to its safety interval: every event still
// arrives, within about a second.
//
// Thread safety: all methods may be called from any thread. After fork(2) the child gets a
// notifier of its own; a subscription made before the fork must not be used in the child (as
// with SQLite connections).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>

namespace flannel::sqlite {

class FileNotifier {
 public:
  // Changes to one database file (and its -wal / -journal).
  class Subscription {
   public:
    virtual ~Subscription() = default;
    // How many changes were seen so far.
    virtual uint64_t changes() const = 0;
    // Waits until changes() != seen, `until` passes or `stop` is requested. True if a change
    // came.
    virtual bool wait(uint64_t seen, std::chrono::steady_clock::time_point until,
                      std::stop_token stop) = 0;
  };

  // A subscription for the database at `path`, or null when notifications are unavailable
  // (no inotify, the directory cannot be watched, FLANNEL_SQLITE_NOTIFY=off). Never throws.
  static std::shared_ptr<Subscription> subscribe(const std::string& path);

  // Whether FLANNEL_SQLITE_NOTIFY turns notifications off ("off", "0", "false").
  static bool disabled_by_environment();
};

}  // namespace flannel::sqlite
