// Clang thread-safety annotations and the mutex they apply to.
//
// Members written to by more than one thread say which mutex guards them (GUARDED_BY), and
// functions say what they expect (REQUIRES: called with the lock held; EXCLUDES: takes the lock
// itself). Clang checks this at compile time with -Wthread-safety (on in every Clang build, an
// error with FLANNEL_WERROR); on GCC the macros expand to nothing. Models: LevelDB's
// port/thread_annotations.h and Abseil's absl::Mutex. Reference:
// https://clang.llvm.org/docs/ThreadSafetyAnalysis.html
//
// libstdc++'s std::mutex is not marked as a capability, so the analysis cannot see it: guarded
// state uses flannel::Mutex and flannel::MutexLock below instead.
//
// Why this lives in core/: it is a pure library type with no syscall of its own and no global
// (std::mutex and std::condition_variable do the work), used by stores/, backends/ and daemon/,
// which must not include each other. core/ is the one layer they all share.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define FLANNEL_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define FLANNEL_THREAD_ANNOTATION(x)  // GCC has no thread-safety analysis
#endif

// On a class: objects of it are capabilities (a mutex).
#define CAPABILITY(x) FLANNEL_THREAD_ANNOTATION(capability(x))
// On a RAII class: it holds a capability from construction to destruction.
#define SCOPED_CAPABILITY FLANNEL_THREAD_ANNOTATION(scoped_lockable)
// On a member: read and written only with the mutex held.
#define GUARDED_BY(x) FLANNEL_THREAD_ANNOTATION(guarded_by(x))
// On a pointer member: the pointed-to data is read and written only with the mutex held.
#define PT_GUARDED_BY(x) FLANNEL_THREAD_ANNOTATION(pt_guarded_by(x))
// On a mutex member: it is always taken after (before) the named ones.
#define ACQUIRED_AFTER(...) FLANNEL_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define ACQUIRED_BEFORE(...) FLANNEL_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
// On a function: the caller must hold (must not hold) the mutexes.
#define REQUIRES(...) FLANNEL_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) FLANNEL_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define EXCLUDES(...) FLANNEL_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// On a function: it takes (releases) the mutexes and returns with them held (released).
#define ACQUIRE(...) FLANNEL_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) FLANNEL_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
// On a function: it takes the mutexes when it returns `x` (true or false).
#define TRY_ACQUIRE(...) FLANNEL_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// On a function: it checks (at run time, or by construction) that the mutex is held.
#define ASSERT_CAPABILITY(x) FLANNEL_THREAD_ANNOTATION(assert_capability(x))
// On a function: it returns a reference to the mutex named.
#define RETURN_CAPABILITY(x) FLANNEL_THREAD_ANNOTATION(lock_returned(x))
// On a function the analysis cannot follow; say why next to each use.
#define NO_THREAD_SAFETY_ANALYSIS FLANNEL_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace flannel {

// std::mutex, visible to the analysis. Not recursive; lock it through MutexLock.
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  // True when the lock was taken; never blocks.
  bool try_lock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis the lock is held where it cannot see it (a callback run under the lock);
  // checks nothing at run time.
  void assert_held() const ASSERT_CAPABILITY(this) {}

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// Holds a Mutex for its scope, like std::unique_lock: may release and retake it (unlock/lock),
// and waits on a std::condition_variable, which releases the lock while it sleeps and holds it
// again when it returns. The wait predicates run with the lock held: mark a lambda predicate
// REQUIRES(mu) so that the analysis lets it read what the mutex guards.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : lock_(mu->mu_) {}
  // Adopts a lock the caller took (after a successful try_lock()).
  MutexLock(Mutex* mu, std::adopt_lock_t) REQUIRES(mu) : lock_(mu->mu_, std::adopt_lock) {}
  ~MutexLock() RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void lock() ACQUIRE() { lock_.lock(); }
  void unlock() RELEASE() { lock_.unlock(); }

  template <class Predicate>
  void wait(std::condition_variable& cv, Predicate pred) {
    cv.wait(lock_, std::move(pred));
  }
  // Returns pred() at the end: false when the time ran out first.
  template <class Rep, class Period, class Predicate>
  bool wait_for(std::condition_variable& cv, std::chrono::duration<Rep, Period> d, Predicate pred) {
    return cv.wait_for(lock_, d, std::move(pred));
  }
  template <class Clock, class Duration, class Predicate>
  bool wait_until(std::condition_variable& cv, std::chrono::time_point<Clock, Duration> t,
                  Predicate pred) {
    return cv.wait_until(lock_, t, std::move(pred));
  }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace flannel
