// DashboardModel: what the dashboard knows of one job, fed by the engine as a JobObserver
// and TelemetryListener and read by the HTTP threads as JSON (/api/...) and Prometheus text
// (/metrics). The engine's side only appends to small fixed-size structures under one
// mutex (a task event ring of at most `max_events`, per-worker rows, a histogram); the
// readers render under the same mutex. Thread-safety: every method may be called from any
// thread. Read-only for its readers: nothing here can change the job.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/job_observer.h"

namespace fanout {

class DashboardModel : public JobObserver, public TelemetryListener {
 public:
  struct Options {
    std::string task;          // the task's name and arguments, as given
    std::string mode;          // the --mode given (auto, serial, threads, processes)
    size_t max_events = 2000;  // task stream events kept (the oldest go first)
    size_t max_samples = 600;  // throughput samples kept (one per second at most)
  };
  explicit DashboardModel(Options options);

  // JobObserver.
  void OnRunStart(const Telemetry& telemetry, uint64_t chunks, Unit unit) override;
  void OnRunEnd() override;
  void OnJobEnd(const JobEnd& end) override;
  TelemetryListener* listener() override { return this; }

  // TelemetryListener.
  void OnWorker(WorkerIndex worker, const WorkerInfo& info) override;
  void OnAttemptStart(uint64_t chunk, uint32_t attempt, WorkerIndex worker, double at) override;
  void OnAttemptEnd(const AttemptSpan& span) override;
  void OnWorkerSeen(WorkerIndex worker, double at) override;

  // The documented endpoints' bodies (DASHBOARD.md).
  std::string JobJson();
  std::string WorkersJson();
  std::string TasksJson(uint64_t since);
  std::string MetricsText();
  // Whether OnJobEnd was called.
  bool ended();

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;
  struct Worker {
    WorkerInfo info;
    bool known = false;             // OnWorker was called for it
    uint32_t running = 0;           // attempts dispatched and not ended
    uint64_t chunks = 0;            // attempts that succeeded
    uint64_t failures = 0;          // attempts that failed
    double last_seen = -1;          // job time of its last message or event (-1: none)
    std::vector<double> lane_free;  // per slot: when its last attempt ended
  };
  struct TaskEvent {
    uint64_t seq = 0;
    uint64_t chunk = 0;
    uint32_t attempt = 0;
    WorkerIndex worker = 0;
    uint32_t slot = 0;
    double start = 0;
    double end = 0;
    bool ok = true;
    std::string error;  // at most 200 bytes
  };
  struct Sample {
    double at = 0;
    uint64_t chunks = 0;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
  };

  // Job time now (seconds since the job's telemetry started), by the latest event's clock.
  double NowLocked() const;
  void NoteTimeLocked(double at);
  Worker& WorkerLocked(WorkerIndex worker);
  void SampleLocked(bool force);
  std::string StateLocked() const;

  const Options options_;
  std::mutex mu_;
  // Job time `at` happened at steady time `base_ + at` (set by the first event).
  bool have_base_ = false;
  SteadyTime base_;
  // Job.
  bool started_ = false;
  bool run_ended_ = false;
  bool ended_ = false;
  int exit_code_ = 0;
  std::string mode_ran_;
  uint64_t run_chunks_ = 0;  // chunks this run had to finish at OnRunStart
  uint64_t job_chunks_ = 0;  // the job's chunks (known at the end)
  bool unit_records_ = false;
  double run_start_ = 0;  // job time of OnRunStart
  double end_at_ = 0;     // job time of OnRunEnd
  // Counters (monotonic).
  uint64_t chunks_done_ = 0;      // distinct chunks with an ok attempt (+ resumed, at the end)
  std::vector<bool> chunk_done_;  // by chunk id
  uint64_t chunks_failed_ = 0;    // chunks given up (known at the end)
  uint64_t retries_ = 0;          // the scheduler's re-queues (known at the end)
  uint64_t dispatched_ = 0;
  uint64_t attempts_ok_ = 0;
  uint64_t attempts_failed_ = 0;
  uint64_t bytes_in_ = 0;  // of ok attempts (as --stats-json bytes_in)
  uint64_t bytes_out_ = 0;
  uint64_t records_ = 0;
  std::vector<uint64_t> duration_counts_;  // histogram buckets (kDurationBounds + +Inf)
  double duration_sum_ = 0;
  // Workers, running attempts, task stream, throughput.
  std::vector<Worker> workers_;  // by WorkerIndex
  struct Running {
    WorkerIndex worker = 0;
    double since = 0;  // job time it was dispatched
  };
  std::map<std::pair<uint64_t, uint32_t>, Running> running_;  // by (chunk, attempt)
  std::deque<TaskEvent> events_;
  uint64_t next_seq_ = 1;
  std::deque<Sample> samples_;
};

}  // namespace fanout
