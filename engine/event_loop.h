// EventLoop: the coordinator of `processes` jobs (coordinator.h's RunProcesses runs one;
// warm_processes.h keeps one across many). It is the I/O shell around classes that each
// own one responsibility and do no I/O of their own:
//   worker supervision  PeerTable (peer_table.h: connected workers, silence),
//                       LocalWorkers (local_workers.h: starting and replacing processes
//                       through a WorkerLauncher), WaitPolicy and Liveness (worker_policy.h)
//   dispatch            Scheduler (scheduler.h: which attempt), Dispatcher
//                       (dispatch_policy.h: when, prefetch, stealing)
//   results             ResultSink (job.h: vetting, --state, the assembler or observer)
// The loop owns the socket, the launcher and the clock, turns messages and child exits
// into calls on those classes and their decisions into messages. Its members are defined
// across coordinator.cc (start-up, the loop, a job's beginning and end), peers.cc (what
// workers say: HELLO, results, exits, liveness) and dispatch.cc (what goes to them: TASK,
// TASKS). Internal to engine/. One thread; not thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
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
#include "engine/local_launcher.h"
#include "engine/local_workers.h"
#include "engine/peer_table.h"
#include "engine/planned_job.h"
#include "engine/private_dir.h"
#include "engine/result_sink.h"
#include "engine/worker_policy.h"

namespace fanout::internal {

using std::chrono::milliseconds;

constexpr uint32_t kMaxPrefetch = DispatchOptions{}.max_prefetch;
// Attempts go out several to a TASKS message (to workers that take them) when the median
// attempt is under DispatchOptions::batch_below and the chunk is at most kBatchChunkBytes;
// a batch holds at most kBatchBytes of input. Per-message costs (encode, frames, wake-ups
// on both sides) then stop dominating microsecond chunks; longer or bigger chunks gain
// nothing from it.
constexpr size_t kBatchChunkBytes = 64 * 1024;
constexpr size_t kBatchBytes = 1024 * 1024;

// A fresh random job id (16 hex digits), sent in WELCOME and TASK.
std::string NewJobId();

class EventLoop {
 public:
  // `config` holds what every job of this loop shares (endpoints, security, local workers'
  // flags, heartbeat); it must outlive the loop. At most `workers` local workers are
  // started; each job starts as many more as it has work for. `warm`: the workers stay
  // across jobs (RunJob may be called again; Stop ends them); else RunJob's end stops them.
  // `wake_fd` (-1: none) is polled with the socket, so another thread can end Idle.
  // Time comes from `clock` (which must outlive the loop).
  EventLoop(const JobConfig& config, uint32_t workers, bool warm = false, int wake_fd = -1,
            const Clock& clock = Clock::Steady());
  ~EventLoop();

  // Binds the socket and prepares the local workers' launcher. Call once, first.
  Status Start();
  // Runs one job until its scheduler finishes or aborts, it is interrupted or it fails.
  // The job's objects must outlive the call. `stop`: see RunProcesses (coordinator.h); a
  // warm loop's workers stay.
  ModeResult RunJob(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink, RunStats& stats,
                    std::stop_token stop = {});
  // Between jobs of a warm loop: serves the workers (heartbeats, liveness, respawns) until
  // `done` (checked after every wake-up, e.g. by wake_fd) returns true.
  void Idle(const std::function<bool()>& done);
  // Tells every worker to stop and stops the local ones. RunJob does it itself unless warm.
  void Stop();

 private:
  // Attempts for one peer collected by Fill and sent as one TASKS message.
  struct PendingBatch {
    TaskBatch msg;
    std::vector<std::string_view> bytes;
    size_t total = 0;
  };

  // Points the loop at a job (the idle job between jobs): its peers join its scheduler,
  // and local workers are started up to what it has work for.
  void BeginJob(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink, RunStats& stats);
  // Adds a welcomed peer to the current job if it provides the job's task (and counts it
  // in the job's workers, once per name and host, unless it is local).
  void JoinJob(Peer& peer);
  // Ends the current job: attempts still out are ended (and CANCELled on a warm loop, whose
  // workers stay) and the loop points at the idle job again.
  void EndJob();
  // Chunk ids on the wire are the job's own plus wire_base_ (each job of a warm loop starts
  // where the last one ended, so a late RESULT of an earlier job can never be taken for one
  // of this job). False, logged, for an id below this job's: a late word from `from` about
  // an earlier job's `attempt` (a warm worker finishing what that job's end cancelled).
  bool ToJob(uint64_t& chunk, uint32_t attempt, const Peer& from) const;
  // The poll loop shared by RunJob and Idle: `stop` (checked before each wait) returns
  // whether and how to end.
  ModeResult Loop(const std::function<std::optional<ModeResult>()>& stop);
  Result<std::vector<std::string>> StartCurve(SocketSecurity& security);
  void Step(Clock::time_point now, const std::vector<zmq::pollitem_t>& items);
  Clock::time_point NextWakeup(Clock::time_point now) const;
  void OnMessage(Envelope& env, Clock::time_point now);
  void OnHello(const std::string& id, const Hello& hello, Clock::time_point now);
  // `output` is the result's payload (empty when it has none).
  void OnResult(Peer& peer, const ResultMsg& result, Blob output, Clock::time_point now);
  void OnResults(Peer& peer, ResultBatch& batch, std::optional<zmq::message_t>& payload,
                 Clock::time_point now);
  // A draining peer hands attempts back (they are re-queued free) and, with `bye`, leaves.
  void OnLeave(Peer& peer, const Leave& leave);
  void OnChildExit(const ChildExit& exit, Clock::time_point now);
  // `kill`: a local worker's process is killed (it is hung or broken); else it may come
  // back (say HELLO again) within kJoinGrace.
  void LoseWorker(WorkerIndex index, const std::string& reason, Clock::time_point now,
                  bool kill = true);
  // Starts, replaces and stops local workers as LocalWorkers decides; `drained`: every
  // message that arrived was read (only then is a worker's silence judged).
  void SuperviseLocals(Clock::time_point now, bool drained);
  // What the wait policy (worker_policy.h) needs to know of the workers.
  WorkerState Workers() const;
  // A reason to fail when no worker is left, none can be started and none joined for
  // --wait-timeout (kDefaultStrandedWait), or "".
  std::string Stranded(Clock::time_point now, const WorkerState& workers);
  void CheckLiveness(Clock::time_point now);
  void SendCancels(const std::vector<CancelOrder>& orders, const std::string& why);
  void Fill(Peer& peer, Clock::time_point now);
  void FillAll(Clock::time_point now);
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
  // Records the span of an attempt that ended without a result (cancelled, timed out, lost).
  void EndAttempt(uint64_t chunk, uint32_t attempt, const std::string& why);
  void Note(const Status& s) {
    if (!s.ok() && error_.empty()) error_ = s.message();
  }

  const JobConfig& fleet_;    // what every job shares (Start reads it)
  const uint32_t max_local_;  // local workers to start at most
  const bool warm_;
  const int wake_fd_;
  int stop_fd_ = -1;  // the running job's StopFd (RunJob)
  const Clock& clock_;

  // Between jobs the loop runs an idle job with no chunks, so that every path below has
  // a scheduler, sink and stats to talk to.
  struct IdleJob;
  std::unique_ptr<IdleJob> idle_;
  // The current job (or the idle one).
  const PlannedJob* job_ = nullptr;
  const JobConfig* config_ = nullptr;
  Scheduler* scheduler_ = nullptr;
  std::optional<Dispatcher> dispatcher_;  // when attempts go out (prefetch, stealing)
  ResultSink* sink_ = nullptr;
  RunStats* stats_ = nullptr;
  uint64_t wire_base_ = 0;  // ToJob
  milliseconds heartbeat_;
  Liveness liveness_;
  // When the current job stops waiting for workers (worker_policy.h).
  std::optional<WaitPolicy> wait_;

  // Declaration order is destruction order in reverse: sockets close before the context,
  // children die before the directory holding their endpoint is removed.
  PrivateDir dir_;
  zmq::context_t context_{1};
  std::unique_ptr<ZapAuthenticator> zap_;  // with CURVE: admits authorized worker keys
  std::optional<zmq::socket_t> router_;
  std::optional<LocalLauncher> launcher_;
  std::optional<LocalWorkers> locals_;  // what to start and stop, over launcher_ (Start)
  std::string job_id_ = NewJobId();
  std::string local_token_;  // handed to the workers we start over an inherited fd
  std::string input_path_;   // what by-reference workers map (WELCOME's "in")
  PeerTable peers_;
  std::set<std::string> joined_;  // "name@host" of every non-local worker that joined
  std::string last_loss_;         // why the most recent worker was lost
  Clock::time_point next_heartbeat_;
  std::string error_;        // a fatal write error
  RateLimitedWarn rejects_;  // warnings about rejected messages and peers, per reason
  bool dispatching_ = false;
  // Attempts sent and not yet ended: (chunk, attempt) -> (worker, dispatch time), for spans.
  std::map<std::pair<uint64_t, uint32_t>, std::pair<WorkerIndex, double>> in_flight_;
};

}  // namespace fanout::internal
