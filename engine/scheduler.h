// Scheduler: decides which chunk attempt goes to which worker, and what a result, a lost
// worker or a passing deadline means for the job. Pure: it touches no socket, clock or
// process; time comes in as arguments, so every decision is unit-testable (STYLE.md §1).
// Not thread-safe: owned and driven by one event loop.
//
// Invariants:
//  - a chunk is in exactly one state: queued, running (>= 1 live attempt), done, failed;
//  - at most one result per chunk is accepted (exactly-once output); every other result
//    for it is a late duplicate (dropped) or unknown (rejected);
//  - a worker never holds more live attempts than its capacity (slots + prefetch).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fanout {

using TimePoint = std::chrono::steady_clock::time_point;
using Micros = std::chrono::microseconds;
using WorkerIndex = uint32_t;

struct SchedulerOptions {
  // Extra attempts after the task itself failed (non-zero exit, task error, timeout,
  // output refused): a deterministic failure is not retried by default (GNU parallel).
  uint32_t retries = 0;
  // Attempts of one chunk that may be lost with their worker (killed, hung, gone) before
  // the chunk fails: such losses are the machine's, not the task's, and do not use
  // `retries`. 0 = no limit.
  uint32_t crash_limit = 5;
  Micros timeout{0};  // per-attempt limit; 0 = none
  // > 0: a relative limit, percent/100 x the median attempt time so far, for a chunk's
  // first attempt; attempt k gets 2^(k-1) times that (see LimitFor), so a chunk that is
  // legitimately slower than the limit still finishes on a retry.
  double timeout_percent = 0;
  bool speculate = false;   // re-issue stragglers (> 2x median) to idle workers
  bool keep_going = false;  // a chunk that fails every attempt does not stop the job
  uint64_t window = 0;      // max chunks ahead of the oldest unfinished one; 0 = any
};

// One attempt handed to a worker.
struct Assignment {
  uint64_t chunk = 0;
  uint32_t attempt = 0;  // 1-based, per chunk
  bool speculative = false;
};

// An attempt that ended without an accepted result, with why (for reports).
struct AttemptFailure {
  uint32_t attempt = 0;
  WorkerIndex worker = 0;
  std::string reason;
  bool lost = false;  // the worker was lost under it (counts toward crash_limit, not retries)
};

// An attempt the coordinator must tell its worker to abandon.
struct CancelOrder {
  WorkerIndex worker = 0;
  uint64_t chunk = 0;
  uint32_t attempt = 0;
};

enum class Verdict {
  kAccepted,       // the chunk's output: write it
  kRetrying,       // the attempt failed; the chunk is queued again
  kChunkFailed,    // the attempt failed and no attempt is left (see failed_chunks())
  kLateDuplicate,  // from an attempt already superseded or a chunk already done: dropped
  kUnknown,        // no such chunk or attempt was ever issued: rejected
};

struct ResultOutcome {
  Verdict verdict = Verdict::kUnknown;
  std::vector<CancelOrder> cancel;  // other live attempts of an accepted chunk
};

struct SchedulerCounters {
  uint64_t attempts = 0;
  uint64_t retries = 0;  // re-queues after a failed attempt (the task's or a lost worker's)
  uint64_t crashes = 0;  // started attempts lost with their worker
  uint64_t timeouts = 0;
  uint64_t speculative = 0;
  uint64_t late_duplicates = 0;
  uint64_t unknown_results = 0;
  uint64_t workers_lost = 0;
  uint64_t workers_left = 0;  // drained and said goodbye (LeaveWorker): charged nothing
};

class Scheduler {
 public:
  Scheduler(uint64_t num_chunks, SchedulerOptions options);

  // A worker joins with room for `capacity` live attempts. `reports_starts`: it tells
  // which attempts it started (MarkStarted; PROTOCOL.md, STARTED), so its loss charges only
  // those.
  void AddWorker(WorkerIndex worker, uint32_t slots, uint32_t capacity,
                 bool reports_starts = false);
  // `worker` says it started `attempt` of `chunk`. Its deadline counts from now if it had
  // not been counted as running yet. Ignored for an attempt that is not live on `worker`.
  void MarkStarted(WorkerIndex worker, uint64_t chunk, uint32_t attempt, TimePoint now);
  // A worker is gone. Its live attempts end and go back to the front of the queue in chunk
  // order. Those it started count as lost attempts with `reason` (toward crash_limit, never
  // toward retries); the others are re-queued without penalty. Started means: reported by
  // MarkStarted for a worker that reports starts; for one that does not, the oldest `slots`
  // (workers start attempts in arrival order). So that a chunk whose start was never reported (the
  // worker died before telling) cannot cost workers forever, a chunk's kFreeLosses-th and later
  // such losses on workers that report starts count as failures too. `charged`, if given, receives
  // the (chunk, attempt) of each attempt counted as failed. Returns chunks that failed for good.
  std::vector<uint64_t> RemoveWorker(WorkerIndex worker, const std::string& reason, TimePoint now,
                                     std::vector<std::pair<uint64_t, uint32_t>>* charged = nullptr);
  static constexpr uint32_t kFreeLosses = 3;

  // Graceful drain (PROTOCOL.md, LEAVE). `worker` takes no more attempts (Next and Steal
  // give it none) and hands back `attempts` (chunk, attempt): those of them live on it end
  // and go back to the front of the queue at no cost (no retry, no crash, no failure
  // recorded), like attempts that were never sent. Others are ignored.
  void HandBack(WorkerIndex worker, const std::vector<std::pair<uint64_t, uint32_t>>& attempts);
  // A draining worker said goodbye: it is gone, and whatever it still held goes back to
  // the queue at no cost (counted in workers_left, not workers_lost).
  void LeaveWorker(WorkerIndex worker);
  bool Draining(WorkerIndex worker) const {
    auto it = workers_.find(worker);
    return it != workers_.end() && it->second.draining;
  }

  // `chunk` was finished elsewhere, by an earlier run (--resume). It counts as done and is
  // never issued. Ignored unless it is queued and was never issued.
  void MarkDone(uint64_t chunk);
  // `chunk` was run to completion by auto mode's calibration, as its attempt 1, before any
  // worker existed: done, never issued again, and counted in counters().attempts. Ignored
  // unless it is queued and was never issued.
  void MarkRun(uint64_t chunk);
  // The coordinator stopped live `attempt` of `chunk` itself (auto mode's calibration
  // deadline): neither the task's failure nor a lost worker. The chunk is re-queued at no
  // cost; its next attempt has the next number.
  void ReleaseAttempt(uint64_t chunk, uint32_t attempt);

  // The next attempt for `worker`, or nothing (no capacity, nothing runnable, window).
  std::optional<Assignment> Next(WorkerIndex worker, TimePoint now);

  // Work stealing: takes an attempt that waits, not started, in another worker's queue
  // (behind its running slots, and not reported by MarkStarted), from the worker holding
  // the most such attempts (its most recently sent one), and moves it to `thief` with the
  // same attempt number (it never ran). The caller must CANCEL it on the old worker.
  // Should that worker have started it anyway, its STARTED and RESULT are ignored (matched
  // by worker: a late duplicate), so exactly-once holds. Nothing if `thief` is full or no
  // attempt waits elsewhere.
  struct Stolen {
    CancelOrder from;
    Assignment to;
  };
  std::optional<Stolen> Steal(WorkerIndex thief, TimePoint now);
  // Attempts of `worker` that wait behind its running slots and were not reported started.
  uint32_t waiting_attempts(WorkerIndex worker) const;

  // A RESULT arrived. `ok` false means the task reported `error`.
  ResultOutcome OnResult(WorkerIndex worker, uint64_t chunk, uint32_t attempt, bool ok,
                         const std::string& error, TimePoint now);

  // Attempts past their deadline: each is failed (retried or failed for good) and must
  // be cancelled on its worker.
  std::vector<CancelOrder> ExpireAttempts(TimePoint now);
  // The earliest attempt deadline, if any (the event loop's poll timeout).
  std::optional<TimePoint> NextDeadline() const;

  bool Finished() const { return done_ + failed_.size() == chunks_.size(); }
  // True once a chunk failed every attempt and keep_going is off: stop the job.
  bool Aborted() const { return !options_.keep_going && !failed_.empty(); }
  const SchedulerOptions& options() const { return options_; }
  const std::vector<uint64_t>& failed_chunks() const { return failed_; }
  const std::vector<AttemptFailure>& failures_of(uint64_t chunk) const {
    return chunks_[chunk].failures;
  }
  uint64_t chunks_done() const { return done_; }
  uint32_t live_attempts(WorkerIndex worker) const;
  bool HasWorker(WorkerIndex worker) const { return workers_.count(worker) > 0; }
  size_t worker_count() const { return workers_.size(); }
  // Chunks waiting for a worker.
  size_t queued() const { return queue_.size(); }
  const SchedulerCounters& counters() const { return counters_; }
  // Median wall time of the last kMedianSample accepted attempts (0 if none); once more
  // than 256 are known it is refreshed every 64 attempts.
  Micros median_attempt_time() const;
  // Mean wall time of the same sample (0 if none), refreshed with the median: with a heavy
  // tail (a few slow chunks among quick ones) it is far above the median.
  Micros mean_attempt_time() const;
  // Accepted attempts whose time was measured (a median of 0 us is then a measurement).
  uint64_t attempts_measured() const { return durations_seen_; }

 private:
  enum class State { kQueued, kRunning, kDone, kFailed };
  struct Live {
    uint32_t attempt;
    WorkerIndex worker;
    // When the attempt entered one of its worker's running slots (workers run attempts
    // in arrival order, so the oldest `slots` live attempts are the running ones);
    // unset while it waits in the worker's prefetch queue. Deadlines count from here.
    std::optional<TimePoint> started;
    bool reported = false;  // its worker said it started it (MarkStarted)
    // When its worker said so. For a worker that reports starts, --timeout counts from
    // here: on a warm worker shared by several jobs, this job's oldest attempts may still
    // wait behind another job's, which `started` cannot know.
    std::optional<TimePoint> reported_at;
  };
  // Where an attempt's deadline counts from (unset: it has not started).
  std::optional<TimePoint> DeadlineStart(const Live& l) const;
  // A chunk's live attempts: one but for retries crossing and speculation, so the first is
  // kept in place and only more go to a vector. A vector a chunk, allocated as its first
  // attempt was issued, was half the page faults of threads mode over 100,000 no-op chunks
  // (in a pool thread's own malloc arena, faulted in 4 KiB at a time).
  class LiveAttempts {
   public:
    Live* begin() { return many_.empty() ? &one_ : many_.data(); }
    Live* end() { return begin() + size(); }
    const Live* begin() const { return many_.empty() ? &one_ : many_.data(); }
    const Live* end() const { return begin() + size(); }
    size_t size() const { return many_.empty() ? (has_one_ ? 1 : 0) : many_.size(); }
    bool empty() const { return size() == 0; }
    Live& operator[](size_t i) { return begin()[i]; }
    const Live& operator[](size_t i) const { return begin()[i]; }
    void push_back(const Live& l);
    void erase(const Live* at);

   private:
    Live one_{};
    bool has_one_ = false;
    std::vector<Live> many_;  // two or more (then one_ is unused), or empty
  };
  struct Chunk {
    State state = State::kQueued;
    uint32_t attempts_issued = 0;
    LiveAttempts live;
    std::vector<AttemptFailure> failures;
    uint32_t free_losses = 0;    // attempts lost with their worker before starting
    uint32_t task_failures = 0;  // failures charged to the task (Charge::kTask)
    uint32_t crashes = 0;        // attempts lost with their worker (Charge::kLost)
  };
  struct Worker {
    uint32_t slots = 1;
    uint32_t capacity = 1;
    bool reports_starts = false;
    bool draining = false;  // HandBack was called: it gets no more attempts
    std::deque<std::pair<uint64_t, uint32_t>> live;  // (chunk, attempt) in dispatch order
  };

  // What an ended attempt costs its chunk.
  enum class Charge {
    kNone,  // nothing: re-queued as if never issued
    kTask,  // the task failed: counts toward retries
    kLost,  // its worker was lost: counts toward crash_limit
  };
  // Ends one live attempt as failed; re-queues or fails the chunk. Returns the verdict.
  Verdict FailAttempt(uint64_t chunk, uint32_t attempt, const std::string& reason, Charge charge);
  void DropLive(uint64_t chunk, uint32_t attempt);
  // Marks the attempts that now occupy a running slot of `worker` as started at now_.
  void PromoteRunning(WorkerIndex worker);
  Live* FindLive(uint64_t chunk, uint32_t attempt);
  const Live* FindLive(uint64_t chunk, uint32_t attempt) const;
  bool InWindow(uint64_t chunk) const;
  // Live attempts are only ever issued in the window, and low_water_ only rises, so every
  // chunk with a live attempt is below this: scans of live attempts stop here.
  uint64_t LiveEnd() const;
  std::optional<uint64_t> PickQueued(WorkerIndex worker);
  std::optional<Assignment> PickStraggler(WorkerIndex worker, TimePoint now);
  // The limit of a first attempt (--timeout as given, or percent x median), if any.
  std::optional<Micros> Limit() const;
  // The limit of attempt `attempt` (1-based): an absolute --timeout as given; a relative one
  // doubles per attempt: Limit() x 2^(attempt-1), the factor capped at 2^10.
  std::optional<Micros> LimitFor(uint32_t attempt) const;
  Assignment Issue(WorkerIndex worker, uint64_t chunk, TimePoint now, bool speculative);

  SchedulerOptions options_;
  std::vector<Chunk> chunks_;
  std::deque<uint64_t> queue_;  // queued chunks; re-dispatched ones go to the front
  std::map<WorkerIndex, Worker> workers_;
  std::vector<uint64_t> failed_;
  // The durations of the last kMedianSample accepted attempts (a ring: the median follows
  // the job as it goes, and a job of millions of chunks keeps a bounded sample), and the
  // median of it, recomputed lazily (see median_attempt_time).
  static constexpr size_t kMedianSample = 4096;
  std::vector<Micros> durations_;
  uint64_t durations_seen_ = 0;  // accepted attempts measured so far
  mutable Micros median_{0};     // as of median_seen_
  mutable Micros mean_{0};       // as of median_seen_
  mutable uint64_t median_seen_ = 0;
  uint64_t done_ = 0;
  uint64_t low_water_ = 0;  // every chunk below this is done or failed
  SchedulerCounters counters_;
  TimePoint now_{};  // time of the latest event passed in
};

}  // namespace fanout
