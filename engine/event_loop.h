// EventLoop: the coordinator of a `processes` job (see coordinator.h, which is its public
// face: RunProcesses). Internal to engine/: its members are defined across
// coordinator.cc (start-up, the loop itself), peers.cc (what workers say: HELLO, results,
// exits, liveness) and dispatch.cc (what goes to them: credits, prefetch, TASK/TASKS).
// One thread; not thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "common/blob.h"
#include "common/log_limiter.h"
#include "common/protocol.h"
#include "common/transport.h"
#include "common/zap.h"
#include "engine/dispatch_policy.h"
#include "engine/job.h"
#include "engine/local_launcher.h"
#include "engine/private_dir.h"

namespace fanout::internal {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint32_t kMaxPrefetch = DispatchOptions{}.max_prefetch;
// Attempts go out several to a TASKS message (to workers that take them) when the median
// attempt is under DispatchOptions::batch_below and the chunk is at most kBatchChunkBytes;
// a batch holds at most kBatchBytes of input. Per-message costs (encode, frames, wake-ups
// on both sides) then stop dominating microsecond chunks; longer or bigger chunks gain
// nothing from it.
constexpr size_t kBatchChunkBytes = 64 * 1024;
constexpr size_t kBatchBytes = 1024 * 1024;
// Local workers are started from the loop a few at a time, for at most kSpawnSlice per
// iteration, so that heartbeats and HELLOs are served while many start (-j 1000).
constexpr milliseconds kSpawnSlice{20};
// A local worker is "unreachable" or "presumed hung" only once it has said HELLO; until
// then (and after it dropped its connection to say HELLO again) it has kJoinGrace to join
// before it is killed. More than the worker's own wait for WELCOME (worker_loop.cc).
constexpr milliseconds kJoinGrace{30000};
// With every worker lost and none that can be started, the job waits --wait-timeout (this
// by default) for one to join (--listen), then fails.
constexpr milliseconds kDefaultStrandedWait{5 * 60 * 1000};

// A fresh random job id (16 hex digits), sent in WELCOME and TASK.
std::string NewJobId();

class EventLoop {
 public:
  EventLoop(const PlannedJob& job, uint32_t workers, Scheduler& scheduler, ResultSink& sink,
            RunStats& stats)
      : job_(job),
        config_(job.config),
        local_workers_(workers),
        scheduler_(scheduler),
        dispatcher_(scheduler),
        sink_(sink),
        stats_(stats),
        heartbeat_(config_.heartbeat),
        max_respawns_(config_.max_respawns >= 0 ? static_cast<uint64_t>(config_.max_respawns)
                                                : UINT64_MAX),
        no_progress_deaths_(std::max<uint64_t>(
            2ull * workers, 2ull * std::max<uint32_t>(config_.scheduler.crash_limit, 1))) {}

  // `stop`: see RunProcesses (coordinator.h).
  ModeResult Run(std::stop_token stop = {});

 private:
  // A connected, welcomed worker.
  struct Peer {
    WorkerIndex index = 0;
    std::string id;  // ROUTER routing id
    std::string name;
    pid_t pid = 0;
    uint32_t slots = 1;
    uint32_t batch = 0;  // most attempts per TASKS message it takes (HELLO)
    // Started by our launcher: proved by HELLO's per-run token (never by the pid it
    // claims), then matched to the launcher's child of that pid. Only such a peer's pid is
    // ever signalled, and only through the launcher's pidfd.
    bool local = false;
    bool by_ref = false;  // local and the input is a file: TASKs carry file slices
    Clock::time_point last_seen;
  };

  // Attempts for one peer collected by Fill and sent as one TASKS message.
  struct PendingBatch {
    TaskBatch msg;
    std::vector<std::string_view> bytes;
    size_t total = 0;
  };

  Status Start();
  // The per-run token for the workers we start (their proof of being ours) and, with
  // --local-input ref, the input's path for them.
  Status StartLocalInput();
  Result<std::vector<std::string>> StartCurve(SocketSecurity& security);
  void Step(Clock::time_point now, const std::vector<zmq::pollitem_t>& items);
  Clock::time_point NextWakeup(Clock::time_point now) const;
  void OnMessage(Envelope& env, Clock::time_point now);
  void OnHello(const std::string& id, const Hello& hello, Clock::time_point now);
  // `output` is the result's payload (empty when it has none).
  void OnResult(Peer& peer, const ResultMsg& result, Blob output, Clock::time_point now);
  void OnResults(Peer& peer, const ResultBatch& batch, std::optional<zmq::message_t>& payload,
                 Clock::time_point now);
  // A draining peer hands attempts back (they are re-queued free) and, with `bye`, leaves.
  void OnLeave(Peer& peer, const Leave& leave);
  void OnChildExit(const ChildExit& exit, Clock::time_point now);
  // `kill`: a local worker's process is killed (it is hung or broken); else it may come
  // back (say HELLO again) within kJoinGrace.
  void LoseWorker(WorkerIndex index, const std::string& reason, Clock::time_point now,
                  bool kill = true);
  // Starts local workers still to start, for at most kSpawnSlice.
  void SpawnSome();
  // Kills local workers that have not (re)joined within kJoinGrace.
  void CheckJoins(Clock::time_point now);
  // A reason to fail when no worker is left, none can be started and none joined for
  // --wait-timeout (kDefaultStrandedWait), or "".
  std::string Stranded(Clock::time_point now);
  void CheckLiveness(Clock::time_point now);
  void SendCancels(const std::vector<CancelOrder>& orders, const std::string& why);
  void Fill(Peer& peer, Clock::time_point now);
  // Whether chunk `chunk` may go to `peer` in a TASKS batch.
  bool Batchable(const Peer& peer, uint64_t chunk);
  // Sends one attempt as a TASK; false if the peer is unreachable.
  bool SendTask(const Peer& peer, const Assignment& a);
  // Sends the collected batch as one TASKS message (a TASK if it holds one attempt).
  bool SendBatch(const Peer& peer, PendingBatch& batch);
  // Free slots on the other workers, counting local workers still starting with their
  // --slots each.
  uint64_t IdleSlotsElsewhere(const Peer& self) const;
  // False until --min-workers have joined (then true for the rest of the job).
  bool Dispatching();
  // A reason to give up waiting for workers (--wait-timeout), or "".
  std::string WaitExpired(Clock::time_point now) const;
  // Records the span of an attempt that ended without a result (cancelled, timed out, lost).
  void EndAttempt(uint64_t chunk, uint32_t attempt, const std::string& why);
  void MaybeRespawn(Clock::time_point now);
  void Note(const Status& s) {
    if (!s.ok() && error_.empty()) error_ = s.message();
  }
  Peer* FindPeer(WorkerIndex index);

  const PlannedJob& job_;
  const JobConfig& config_;
  uint32_t local_workers_;
  Scheduler& scheduler_;
  Dispatcher dispatcher_;  // when attempts go out (prefetch, stealing): dispatch_policy.h
  ResultSink& sink_;
  RunStats& stats_;
  milliseconds heartbeat_;
  uint64_t max_respawns_;  // --max-respawns, or no cap
  // Local workers stop being replaced once this many died in a row with no chunk accepted
  // in between (the job makes no progress): max(2 x workers, 2 x --crash-limit), so that a
  // chunk that kills its workers fails by its crash limit first, with its reason.
  uint64_t no_progress_deaths_;

  // Declaration order is destruction order in reverse: sockets close before the context,
  // children die before the directory holding their endpoint is removed.
  PrivateDir dir_;
  zmq::context_t context_{1};
  std::unique_ptr<ZapAuthenticator> zap_;  // with CURVE: admits authorized worker keys
  std::optional<zmq::socket_t> router_;
  std::optional<LocalLauncher> launcher_;
  std::string job_id_ = NewJobId();
  std::string local_token_;            // handed to the workers we start over an inherited fd
  std::string input_path_;             // what by-reference workers map (WELCOME's "in")
  std::map<std::string, Peer> peers_;  // by routing id
  std::map<WorkerIndex, std::string> peer_of_;
  std::set<std::string> joined_;  // "name@host" of every non-local worker that joined
  WorkerIndex next_index_ = 0;
  uint64_t spawned_ = 0;
  uint32_t to_spawn_ = 0;  // local workers not started yet (SpawnSome)
  // Local workers not joined (yet, or again after losing their connection): pid -> since.
  std::map<pid_t, Clock::time_point> unjoined_;
  std::optional<Clock::time_point> stranded_since_;  // no worker and none to come
  uint64_t respawns_used_ = 0;
  uint32_t consecutive_deaths_ = 0;  // worker deaths since the last accepted chunk
  // Whether a dead local worker may still be replaced (--max-respawns, progress).
  bool MayRespawn() const {
    return respawns_used_ < max_respawns_ && consecutive_deaths_ < no_progress_deaths_;
  }
  // Why no worker is replaced any more, for "no worker left (...)".
  std::string RespawnsEnded() const;
  std::optional<Clock::time_point> respawn_at_;
  std::string last_loss_;  // why the most recent worker was lost
  Clock::time_point next_heartbeat_;
  std::string error_;        // a fatal write error
  RateLimitedWarn rejects_;  // warnings about rejected messages and peers, per reason
  bool dispatching_ = false;
  Clock::time_point started_ = Clock::now();
  // Attempts sent and not yet ended: (chunk, attempt) -> (worker, dispatch time), for spans.
  std::map<std::pair<uint64_t, uint32_t>, std::pair<WorkerIndex, double>> in_flight_;
};

}  // namespace fanout::internal
