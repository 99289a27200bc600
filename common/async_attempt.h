// AsyncAttempt: one attempt of a task that waits on the outside world (timers, child
// processes) instead of computing, run by an event loop without a thread of its own
// (asyncio-style). The loop polls fds() with a timeout no later than deadline(), calls
// Advance() when any of them is ready or the deadline has passed, and takes the outcome
// once Advance says done. Thread-safety: an attempt is driven by one thread at a time;
// nothing in it blocks (except the destructor's reap of an already-killed child).
#pragma once

#include <poll.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace fanout {

// What a finished attempt produced. `cpu_seconds` counts its child processes (the loop's
// own share is negligible and not measured per attempt).
struct AsyncOutcome {
  Status status;
  std::string output;  // meaningful when status is OK
  double cpu_seconds = 0;
};

// Ends the message of a start that failed for lack of file descriptors (EMFILE/ENFILE).
// An event loop may hold such an attempt back until other attempts release theirs.
inline constexpr std::string_view kFdLimitNote =
    " (the open-file limit is reached: raise it with 'ulimit -n' or run fewer chunks at once, "
    "e.g. a lower --slots)";
inline bool HitFdLimit(const Status& s) { return s.message().ends_with(kFdLimitNote); }

class AsyncAttempt {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~AsyncAttempt() = default;  // releases everything (a running child is killed)

  // Appends the fds (with poll events) to wait on before the next Advance.
  virtual void AppendFds(std::vector<pollfd>& fds) const = 0;
  // Advance is due at this time even if no fd is ready; nothing when only fds matter.
  virtual std::optional<TimePoint> deadline() const = 0;
  // Does the work that is ready without blocking; returns true once the attempt is done.
  // Calling it when nothing is ready is harmless.
  virtual bool Advance(TimePoint now) = 0;
  // Stops the attempt without blocking (an exec child's process group is killed). It is
  // done, with status "cancelled", after a later Advance (the child must be reaped).
  virtual void Cancel() = 0;
  // The outcome; call once, after Advance returned true.
  virtual AsyncOutcome Take() = 0;
};

}  // namespace fanout
