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
// into calls on those classes and their decisions into messages. Several jobs may run at
// once on the same workers (a warm loop's): each keeps its plan, Scheduler, Dispatcher,
// sink, stats and waits in an ActiveJob, the loop points its per-job paths at one of them
// at a time (Use), and a worker's free slots go to the job with the fewest attempts out
// (Fill). Its members are defined across coordinator.cc (start-up, the loop, a job's
// beginning and end), peers.cc (what workers say: HELLO, results, exits, liveness) and
// dispatch.cc (what goes to them: TASK, TASKS). Internal to engine/. One thread; not
// thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
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
#include "engine/stop_fd.h"
#include "engine/worker_policy.h"

namespace fanout::internal {

using std::chrono::milliseconds;

constexpr uint32_t kMaxPrefetch = DispatchOptions{}.max_prefetch;
// How long the end of a job waits for remote workers' SHUTDOWNs to leave (EventLoop::Stop).
constexpr std::chrono::milliseconds kShutdownLinger{1000};
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
  // Called on the loop's thread when an admitted job ends, once the loop is done with the
  // job's objects (they may be destroyed from then on).
  using JobDone = std::function<void(ModeResult)>;

  // `config` holds what every job of this loop shares (endpoints, security, local workers'
  // flags, heartbeat); it must outlive the loop. At most `workers` local workers are
  // started; the jobs running start as many as they together have work for. `warm`: the
  // workers stay across jobs (Stop ends them); else RunJob's end stops them. `wake_fd` (-1:
  // none) is polled with the socket, so another thread can end a Serve turn. Time comes
  // from `clock` (which must outlive the loop).
  EventLoop(const JobConfig& config, uint32_t workers, bool warm = false, int wake_fd = -1,
            const Clock& clock = Clock::Steady());
  ~EventLoop();
  // How many I/O threads this loop's ZeroMQ context runs (coordinator.cc says why).
  static int IoThreads(const JobConfig& config);

  // Binds the socket and prepares the local workers' launcher. Call once, first.
  Status Start();
  // Adds a job to those running on the workers (only one on a loop that is not warm): from
  // now on it shares their slots with the others (Fill) until its scheduler finishes or
  // aborts, its `stop` is requested (see RunProcesses, coordinator.h), it fails or the loop
  // is interrupted; then `done` says how. The job's objects must stay until then. Jobs end
  // only while Serve runs.
  void Admit(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink, RunStats& stats,
             std::stop_token stop, JobDone done);
  // Serves the workers and the running jobs (heartbeats, liveness, respawns, dispatch) until
  // `done` (checked after every wake-up, e.g. by wake_fd, and may call Admit) returns true.
  void Serve(const std::function<bool()>& done);
  // Ends every running job at once with `result`, without a word to their workers (after a
  // throw, when the loop's state is unknown).
  void Abandon(const ModeResult& result);
  // Admit, then Serve until that job ends (and Stop unless warm). The job's objects must
  // outlive the call.
  ModeResult RunJob(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink, RunStats& stats,
                    std::stop_token stop = {});
  // Tells every worker to stop and stops the local ones. RunJob does it itself unless warm.
  void Stop();

 private:
  // Attempts for one peer collected by Fill and sent as one TASKS message.
  struct PendingBatch {
    TaskBatch msg;
    std::vector<std::string_view> bytes;
    size_t total = 0;
    std::string header_storage;
    std::deque<std::string> storage;  // --header: each batched chunk's header + bytes (stable)
  };
  // One job the loop runs, with what is its own. Between jobs the loop points at an idle
  // job with no chunks, so that every path below has a scheduler, sink and stats to talk to.
  struct ActiveJob {
    ActiveJob(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink, RunStats& stats,
              std::stop_token stop, JobDone done)
        : job(&job),
          scheduler(&scheduler),
          dispatcher(scheduler),
          sink(&sink),
          stats(&stats),
          stop(std::move(stop)),
          done(std::move(done)) {}
    const PlannedJob* job;
    Scheduler* scheduler;
    Dispatcher dispatcher;  // when attempts go out (prefetch, stealing)
    ResultSink* sink;
    RunStats* stats;
    StopFd stop;  // polled beside Interrupt::fd(): a cancel ends the job alike
    JobDone done;
    uint64_t seq = 0;  // admission order: of two jobs with as many attempts out, the older
                       // one gets the next slot (Fill)
    // Chunk ids on the wire are the job's own plus wire_base: each job gets a range of its
    // own, so a late RESULT of an ended job is never taken for a running one's (Route).
    uint64_t wire_base = 0;
    std::optional<WaitPolicy> wait;  // when the job stops waiting for workers
    std::string error;               // a fatal write error
    bool dispatching = false;        // --min-workers joined (then true for the rest of the job)
    bool filled = false;             // Fill: it has nothing more for this peer now
    std::set<std::string> joined;    // "name@host" of every non-local worker that joined
    // Attempts sent and not yet ended: (chunk, attempt) -> (worker, dispatch time), for spans.
    std::map<std::pair<uint64_t, uint32_t>, std::pair<WorkerIndex, double>> in_flight;
    PendingBatch batch;  // Fill's TASKS under way for one peer
  };
  struct IdleJob;
  // Restores the current job when it leaves scope.
  class Restore {
   public:
    explicit Restore(EventLoop& loop) : loop_(loop), job_(*loop.cur_) {}
    ~Restore() { loop_.Use(job_); }
    Restore(const Restore&) = delete;
    Restore& operator=(const Restore&) = delete;

   private:
    EventLoop& loop_;
    ActiveJob& job_;
  };

  // Points the per-job paths (job_, scheduler_, ...) at `job`.
  void Use(ActiveJob& job);
  // The oldest running job, else the idle one: the one fleet-wide counts (rejected
  // messages) and WELCOME's options come from.
  ActiveJob& Primary();
  // Adds a welcomed peer to the current job if it provides the job's task (and counts it
  // in the job's workers, once per name and host, unless it is local).
  void JoinJob(Peer& peer);
  // Whether `peer` takes part in the current job (it has the task, and has not left it).
  bool InJob(const Peer& peer) const { return scheduler_->HasWorker(peer.index); }
  // Why the current job ends now, if it does.
  std::optional<ModeResult> Ended();
  // Ends the jobs that are over (Ended) and tells their callers.
  void EndJobs();
  // Ends `job`: attempts still out are ended (and CANCELled on a warm loop, whose workers
  // stay), it leaves the loop and `result` goes to its callback.
  void EndJob(std::list<ActiveJob>::iterator job, ModeResult result);
  // Finds the job of a chunk id on the wire and makes it current, the id its own (an id
  // never issued goes to the latest job, whose Scheduler rejects it). Null, logged, for an
  // id of an ended job: a late word from `from` about its `attempt` (a warm worker
  // finishing what that job's end cancelled).
  ActiveJob* Route(uint64_t& chunk, uint32_t attempt, const Peer& from);
  // The poll loop behind Serve: `stop` (checked before each wait) returns whether to end.
  void Loop(const std::function<bool()>& stop);
  Result<std::vector<std::string>> StartCurve(SocketSecurity& security);
  // `children`: where the launcher's pidfds begin in `items`.
  void Step(Clock::time_point now, const std::vector<zmq::pollitem_t>& items, size_t children);
  Clock::time_point NextWakeup(Clock::time_point now);
  void OnMessage(Envelope& env, Clock::time_point now);
  void OnHello(const std::string& id, const Hello& hello, Clock::time_point now);
  // `output` is the result's payload (empty when it has none). For the current job.
  void OnResult(Peer& peer, const ResultMsg& result, Blob output, Clock::time_point now);
  // An echo's output (ResultMsg::echo): the attempt's input as its TASK carried it. The
  // bytes cross no socket back. Written at once (the next in order, no --header): a view of
  // the input's mapping, as serial mode writes a pass-through's output (write(2) reads it,
  // so a truncated input fails the write, EFAULT, and ResultSink::Accept releases the pages
  // after it). Held for order: a copy (PlannedJob::CopyPayload, read from the file), since
  // held views would keep the mapping's pages in this process after their write (the
  // server's memory bound, ServerTest.BigInputs...).
  Blob EchoOutput(uint64_t chunk) const;
  void OnResults(Peer& peer, ResultBatch& batch, std::optional<zmq::message_t>& payload,
                 Clock::time_point now);
  // A draining peer hands attempts back (they are re-queued free) and, with `bye`, leaves.
  void OnLeave(Peer& peer, Leave& leave);
  void OnChildExit(const ChildExit& exit, Clock::time_point now);
  // `kill`: a local worker's process is killed (it is hung or broken); else it may come
  // back (say HELLO again) within kJoinGrace. Every job loses it.
  void LoseWorker(WorkerIndex index, const std::string& reason, Clock::time_point now,
                  bool kill = true);
  // Starts, replaces and stops local workers as LocalWorkers decides; `drained`: every
  // message that arrived was read (only then is a worker's silence judged).
  void SuperviseLocals(Clock::time_point now, bool drained);
  // What the wait policy (worker_policy.h) needs to know of the current job's workers.
  WorkerState Workers() const;
  // A reason to fail when no worker is left, none can be started and none joined for
  // --wait-timeout (kDefaultStrandedWait), or "".
  std::string Stranded(Clock::time_point now, const WorkerState& workers);
  void CheckLiveness(Clock::time_point now);
  // For the current job.
  void SendCancels(const std::vector<CancelOrder>& orders, const std::string& why);
  // Gives `peer`'s free slots to the running jobs, fairly (see Admit).
  void Fill(Peer& peer, Clock::time_point now);
  void FillAll(Clock::time_point now);
  // Whether chunk `chunk` may go to `peer` in a TASKS batch.
  bool Batchable(const Peer& peer, uint64_t chunk);
  // The "ok" TASK and TASKS carry: the current job's --ok-exit on a warm loop, else none.
  std::vector<uint32_t> JobOkExit() const;
  // Sends one attempt as a TASK; false if the peer is unreachable.
  bool SendTask(const Peer& peer, const Assignment& a);
  // Sends the collected batch as one TASKS message (a TASK if it holds one attempt).
  bool SendBatch(const Peer& peer, PendingBatch& batch);
  // Attempts out on a worker, of every job.
  uint32_t LiveOn(WorkerIndex worker) const;
  // The other workers of the current job, counting local workers still starting with
  // their --slots each: what Dispatcher::Next weighs a prefetch against.
  Elsewhere OthersInJob(const Peer& self) const;
  // False until --min-workers have joined (then true for the rest of the job).
  bool Dispatching();
  // Records the span of an attempt that ended without a result (cancelled, timed out, lost).
  void EndAttempt(uint64_t chunk, uint32_t attempt, const std::string& why);
  void Note(const Status& s) {
    if (!s.ok() && cur_->error.empty()) cur_->error = s.message();
  }

  const JobConfig& fleet_;    // what every job shares (Start reads it)
  const uint32_t max_local_;  // local workers to start at most
  const bool warm_;
  const int wake_fd_;
  const Clock& clock_;

  std::unique_ptr<IdleJob> idle_;
  std::list<ActiveJob> jobs_;  // running, in admission order
  // Running jobs by their first chunk id on the wire (Route).
  std::map<uint64_t, std::list<ActiveJob>::iterator> by_wire_;
  uint64_t next_wire_ = 0;  // where the next job's wire range starts
  uint64_t next_seq_ = 0;
  // The current job (or the idle one): the per-job paths read these.
  ActiveJob* cur_ = nullptr;
  const PlannedJob* job_ = nullptr;
  const JobConfig* config_ = nullptr;
  Scheduler* scheduler_ = nullptr;
  Dispatcher* dispatcher_ = nullptr;
  ResultSink* sink_ = nullptr;
  RunStats* stats_ = nullptr;
  milliseconds heartbeat_;
  Liveness liveness_;

  // Declaration order is destruction order in reverse: sockets close before the context,
  // children die before the directory holding their endpoint is removed.
  PrivateDir dir_;
  zmq::context_t context_;                 // NewContext(IoThreads(config))
  std::unique_ptr<ZapAuthenticator> zap_;  // with CURVE: admits authorized worker keys
  std::optional<zmq::socket_t> router_;
  std::optional<LocalLauncher> launcher_;
  std::optional<LocalWorkers> locals_;  // what to start and stop, over launcher_ (Start)
  std::string job_id_ = NewJobId();
  std::string local_token_;  // handed to the workers we start over an inherited fd
  std::string input_path_;   // what by-reference workers map (WELCOME's "in")
  PeerTable peers_;
  std::string last_loss_;  // why the most recent worker was lost
  Clock::time_point next_heartbeat_;
  RateLimitedWarn rejects_;  // warnings about rejected messages and peers, per reason
};

}  // namespace fanout::internal
