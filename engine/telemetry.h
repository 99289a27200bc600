// Telemetry: what happened during a job, for the operator: per-worker totals kept as
// attempts end (and, only when a --trace was asked for, one span per attempt: a job of
// millions of chunks must not hold millions of spans), live progress counters and the end-of-job
// outputs (the per-worker report on stderr, --stats-json, --trace in Chrome Trace Event format).
// Modes record attempts as they end; nothing here affects scheduling. Thread-safety: Record* and
// the progress counters are safe from any thread (one mutex; counters are atomics).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "engine/scheduler.h"

namespace fanout {

// One chunk attempt as it ran on a worker.
struct AttemptSpan {
  uint64_t chunk = 0;
  uint32_t attempt = 0;
  WorkerIndex worker = 0;
  double start = 0;  // seconds since the job started
  double end = 0;
  double cpu_seconds = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t records = 0;
  bool ok = true;
  std::string error;     // why it failed, when !ok
  bool measured = true;  // start..end is the task's own run time (not just dispatch..end)
};

struct WorkerInfo {
  std::string name;
  std::string host;
  uint32_t slots = 1;  // attempts it runs at once: the trace gives it this many rows
  bool left = false;   // it drained and said goodbye (PROTOCOL.md, LEAVE), not lost
  bool lost = false;   // it died, went silent or misbehaved (its attempts were re-queued)
};

// A live watcher of a job's telemetry (the dashboard): told of each event as it is recorded,
// on the thread that records it (the event loop; each pool thread in threads mode), so an
// implementation must be thread-safe, return promptly, not throw, and not call back into
// the Telemetry. Times are Telemetry::Now() seconds.
class TelemetryListener {
 public:
  virtual ~TelemetryListener() = default;
  // A worker joined, or its state changed (info.left, info.lost).
  virtual void OnWorker(WorkerIndex /*worker*/, const WorkerInfo& /*info*/) {}
  // An attempt was dispatched to (or started on) `worker`.
  virtual void OnAttemptStart(uint64_t /*chunk*/, uint32_t /*attempt*/, WorkerIndex /*worker*/,
                              double /*at*/) {}
  // An attempt ended (ok or not), as RecordAttempt got it.
  virtual void OnAttemptEnd(const AttemptSpan& /*span*/) {}
  // A message (a heartbeat, a result) came from `worker`.
  virtual void OnWorkerSeen(WorkerIndex /*worker*/, double /*at*/) {}
};

// The totals of one job, filled by RunJob at the end.
struct JobTotals {
  std::string mode;
  uint32_t workers = 0;
  uint64_t chunks = 0;
  uint64_t records = 0;
  double wall_seconds = 0;
  double cpu_seconds = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t respawns = 0;
  uint64_t rejected_messages = 0;
  SchedulerCounters counters;
  std::vector<uint64_t> failed_chunks;
  int exit_code = 0;
  uint64_t peak_rss_bytes = 0;  // the coordinator's VmHWM (0 if unknown; read for --stats-json)
  std::string auto_choice;      // --mode auto: what it chose and why ("" otherwise)
  uint64_t auto_calibration_chunks = 0;
};

// This process's peak resident set size (VmHWM in /proc/self/status), in bytes; 0 if unknown.
uint64_t PeakRssBytes();

class JobLog;

class Telemetry {
 public:
  // Job time counts from now on `clock` (which must outlive the telemetry).
  explicit Telemetry(const Clock& clock = Clock::Steady());

  // Seconds since the job started (the time base of every span).
  double Now() const;
  // The same for a time read earlier from the telemetry's clock.
  double At(Clock::time_point t) const;
  void SetWorker(WorkerIndex worker, WorkerInfo info);
  // The worker drained and left (stats: per_worker "left").
  void MarkLeft(WorkerIndex worker);
  // The worker was lost (the listener's alone: the stats count losses in the scheduler).
  void MarkLost(WorkerIndex worker);
  // An attempt was dispatched to `worker` / a message came from it: for the listener only.
  void RecordStart(uint64_t chunk, uint32_t attempt, WorkerIndex worker) {
    if (listener_) listener_->OnAttemptStart(chunk, attempt, worker, Now());
  }
  void Seen(WorkerIndex worker) {
    if (listener_) listener_->OnWorkerSeen(worker, Now());
  }
  // Tells `listener` (may be null) of every event from now on; it must outlive the job's
  // run. Set before any worker joins.
  void SetListener(TelemetryListener* listener) { listener_ = listener; }
  // The worker's display name ("#N" if unknown).
  std::string WorkerName(WorkerIndex worker) const;
  // An attempt ended (ok or not). Cancelled attempts are recorded as failed with "cancelled".
  // Also written to `log` (if set) as it is recorded. Set before any attempt ends.
  void RecordAttempt(AttemptSpan span);
  void SetJobLog(JobLog* log) { joblog_ = log; }
  // Keeps every attempt's span for TraceJson (off by default). Set before any attempt ends.
  // `expected`: the attempts to make room for at once (the job's chunks): grown by
  // doubling, the spans were moved to fresh memory at 16,384, 32,768, 65,536 attempts,
  // stalling a job of no-op chunks 20 ms each time on a VM whose page faults are dear.
  void KeepSpans(bool keep, size_t expected = 0) {
    keep_spans_ = keep;
    if (keep) spans_.reserve(expected);
  }
  // The job's clock started `seconds` before this object did (auto mode calibrated
  // first): moves the time base back. Call before any attempt is recorded.
  void StartedEarlier(double seconds);

  // Live counters for the progress line.
  std::atomic<uint64_t> chunks_done{0};
  std::atomic<uint64_t> bytes_done{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> records_done{0};
  std::atomic<uint32_t> workers_running{0};

  // Per-worker table and totals, for stderr.
  std::string Report(const JobTotals& totals) const;
  // --stats-json: stable keys, documented in README ("Stats JSON").
  std::string StatsJson(const JobTotals& totals) const;
  // --trace: Chrome Trace Event format; one "X" event per attempt, one row per worker slot.
  // Empty of attempts unless KeepSpans(true) was set.
  std::string TraceJson() const;
  // Input and output bytes of the attempts that succeeded.
  uint64_t ok_bytes_in() const;
  uint64_t ok_bytes_out() const;

 private:
  struct WorkerRow {
    uint64_t chunks = 0;
    uint64_t failures = 0;
    double busy = 0;
  };
  std::vector<WorkerRow> Rows() const;
  std::vector<AttemptSpan> spans() const;

  const Clock* clock_;
  Clock::time_point start_;
  double epoch_start_ = 0;  // start_ in seconds since the Unix epoch
  JobLog* joblog_ = nullptr;
  TelemetryListener* listener_ = nullptr;
  bool keep_spans_ = false;
  mutable std::mutex mu_;
  std::vector<AttemptSpan> spans_;  // only with keep_spans_
  std::vector<WorkerRow> rows_;     // by WorkerIndex
  uint64_t ok_bytes_in_ = 0;
  uint64_t ok_bytes_out_ = 0;
  std::vector<WorkerInfo> workers_;  // by WorkerIndex
};

}  // namespace fanout
