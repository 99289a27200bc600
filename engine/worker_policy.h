// Worker policy: the time-based decisions of a processes-mode loop about its workers, as
// pure code beside the Scheduler (no sockets, no processes, no clock of its own: callers
// pass the time). The loop (event_loop.h) and LocalWorkers (local_workers.h) apply them;
// tests/engine/worker_policy_test.cc checks them on made-up times.
//   Liveness      when a silent worker is presumed hung
//   RespawnDelay  the back-off before a dead local worker is replaced
//   WaitPolicy    how long a job waits for its first workers (--wait-timeout,
//                 --min-workers) and for a replacement once none is left
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "common/clock.h"

namespace fanout {

// With every worker lost and none that can be started, a --listen job waits --wait-timeout
// (this by default) for one to join, then fails.
inline constexpr std::chrono::milliseconds kDefaultStrandedWait{5 * 60 * 1000};

// A worker is presumed hung after `liveness` heartbeat intervals without a word.
struct Liveness {
  std::chrono::milliseconds heartbeat{500};
  uint32_t liveness = 4;
  Clock::duration limit() const { return heartbeat * liveness; }
  Clock::time_point Deadline(Clock::time_point last_seen) const { return last_seen + limit(); }
  bool Silent(Clock::time_point last_seen, Clock::time_point now) const {
    return now - last_seen > limit();
  }
};

// The wait before replacing a local worker after `deaths` in a row (1 = the first since a
// chunk was accepted): 50 ms, doubling with each death, at most 800 ms.
std::chrono::milliseconds RespawnDelay(uint32_t deaths);

// What the loop knows of its workers when it decides whether to go on waiting.
struct WorkerState {
  size_t joined = 0;             // welcomed workers in the job now
  bool starting = false;         // local worker processes alive, or still to start
  bool respawn_pending = false;  // a dead local worker is due to be replaced
  bool ever_joined = false;      // some worker ever joined this loop
  bool dispatching = false;      // --min-workers reached
};

// Waits of one job. `wait_timeout` 0: wait for the first workers as long as it takes, and
// kDefaultStrandedWait for a replacement.
class WaitPolicy {
 public:
  WaitPolicy(std::chrono::milliseconds wait_timeout, uint32_t min_workers, bool listening,
             Clock::time_point start)
      : wait_timeout_(wait_timeout),
        min_workers_(min_workers),
        listening_(listening),
        start_(start) {}

  // Why waiting for the first workers is over (--wait-timeout, --min-workers), or "".
  std::string Expired(Clock::time_point now, const WorkerState& w) const;
  // Once workers were lost (`last_loss` set) and none is left or coming (a --listen job
  // only: without --listen the job fails at once), why waiting for one is over, or "".
  // `begun` is set to true the first time such a wait begins (for the caller to log it).
  std::string Stranded(Clock::time_point now, const WorkerState& w, const std::string& last_loss,
                       const std::string& respawns, bool* begun = nullptr);
  // How long a stranded job waits.
  std::chrono::milliseconds stranded_wait() const {
    return wait_timeout_.count() > 0 ? wait_timeout_ : kDefaultStrandedWait;
  }
  // When one of the waits above ends, if one is running.
  std::optional<Clock::time_point> NextDeadline(Clock::time_point now) const;

 private:
  std::chrono::milliseconds wait_timeout_;
  uint32_t min_workers_;
  bool listening_;
  Clock::time_point start_;
  std::optional<Clock::time_point> stranded_since_;
};

}  // namespace fanout
