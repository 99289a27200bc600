// LocalWorkers: the local worker processes of a processes-mode loop, as policy over a
// WorkerLauncher (worker_launcher.h) and a Clock: how many there should be, starting them a
// few per loop turn, replacing dead ones with back-off (RespawnDelay) while the job makes
// progress and --max-respawns allows, and killing those that do not say HELLO within
// kJoinGrace. The loop (event_loop.h) tells it what happened (a worker joined, lost its
// connection, exited; a chunk was accepted) and calls Respawn and CheckJoins; tests run it on a
// fake launcher and a fake clock (tests/engine/local_workers_test.cc). Not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "engine/worker_launcher.h"

namespace fanout {

// Local workers are started a few at a time, for at most kSpawnSlice per loop turn, so that
// heartbeats and HELLOs are served while many start (-j 1000).
inline constexpr std::chrono::milliseconds kSpawnSlice{20};
// A local worker is "unreachable" or "presumed hung" only once it has said HELLO; until then
// (and after it dropped its connection to say HELLO again) it has kJoinGrace to join before
// it is killed. More than the worker's own wait for WELCOME (worker_loop.cc).
inline constexpr std::chrono::milliseconds kJoinGrace{30000};

class LocalWorkers {
 public:
  // Replacements stop after `max_respawns` in a job, or once `no_progress_deaths` workers
  // died in a row with no chunk accepted in between.
  LocalWorkers(WorkerLauncher& launcher, const Clock& clock, uint64_t max_respawns,
               uint64_t no_progress_deaths)
      : launcher_(launcher),
        clock_(clock),
        max_respawns_(max_respawns),
        no_progress_deaths_(no_progress_deaths) {}

  // A job begins that wants `n` workers: the target rises to n (it never falls), workers
  // lost for good are started again, and the respawn budget starts over.
  void BeginJob(uint32_t n);
  // Starts workers still to start, for at most kSpawnSlice. An error (the binary cannot be
  // executed) stops all further starts.
  Status SpawnSome();
  // Replaces dead workers whose back-off is over. Returns the replacements started; a
  // failed start is logged and noted in last_error().
  uint32_t Respawn(Clock::time_point now);
  // Kills workers that did not say HELLO within kJoinGrace (reaped through the launcher,
  // then replaced). Call only when every message that arrived was read.
  void CheckJoins(Clock::time_point now);
  // The loop's news.
  void Joined(pid_t pid) { unjoined_.erase(pid); }
  void Rejoining(pid_t pid, Clock::time_point now) { unjoined_[pid] = now; }
  void Exited(pid_t pid, Clock::time_point now);
  void Progress() { consecutive_deaths_ = 0; }

  // When Respawn, CheckJoins or SpawnSome has something to do (now, if workers wait to start).
  std::optional<Clock::time_point> NextDeadline(Clock::time_point now) const;
  // Processes alive (joined or not) or still to start.
  bool starting() const { return launcher_.alive() > 0 || to_spawn_ > 0; }
  bool respawn_pending() const { return respawn_at_.has_value(); }
  size_t alive() const { return launcher_.alive(); }
  uint32_t to_spawn() const { return to_spawn_; }
  uint32_t wanted() const { return wanted_; }
  bool MayRespawn() const {
    return respawns_used_ < max_respawns_ && consecutive_deaths_ < no_progress_deaths_;
  }
  // Why no worker is replaced any more, for "no worker left (...)".
  std::string Ended() const;
  const std::string& last_error() const { return last_error_; }

 private:
  // Starts the next worker (local-N), not joined as of `now`.
  Result<pid_t> StartOne(Clock::time_point now);

  WorkerLauncher& launcher_;
  const Clock& clock_;
  const uint64_t max_respawns_;
  const uint64_t no_progress_deaths_;
  uint32_t wanted_ = 0;
  uint32_t to_spawn_ = 0;
  uint64_t spawned_ = 0;  // names: local-1, local-2, ...
  // Workers not joined (yet, or again after losing their connection): pid -> since.
  std::map<pid_t, Clock::time_point> unjoined_;
  std::optional<Clock::time_point> respawn_at_;
  uint64_t respawns_used_ = 0;
  uint32_t consecutive_deaths_ = 0;  // deaths since the last accepted chunk
  std::string last_error_;
};

}  // namespace fanout
