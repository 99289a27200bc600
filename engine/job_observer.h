// JobObserver: what a front end (the CLI's progress line, summary line and report, a
// library, a server) learns of a running job while the engine stays unaware of who
// listens. RunJob calls it from the thread that runs the job; an implementation must return
// promptly and not throw. Chunk outcomes go to a ChunkObserver (job.h) instead.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/telemetry.h"

namespace fanout {

// How a job ended, for a summary: the totals (as --stats-json writes them) and what they
// do not hold. Valid only during OnJobEnd.
struct JobEnd {
  const JobTotals& totals;       // exit_code is the job's; mode is the mode that ran
  bool auto_mode = false;        // --mode auto chose totals.mode
  uint32_t workers_started = 0;  // workers or threads that ran chunks (0 if none ran)
  double predicted_seconds = 0;  // auto mode's predicted wall time, or 0
  const Telemetry& telemetry;    // per-worker rows (Telemetry::Report)
};

class JobObserver {
 public:
  // How progress is best counted for the job: one unit for the whole job.
  enum class Unit {
    kBytes,    // the job reads input bytes
    kRecords,  // --range jobs, which read none
  };
  virtual ~JobObserver() = default;
  // The chunks start to run (after auto mode's calibration and the chunks --resume found
  // finished). `telemetry`'s atomic counters move from now until OnRunEnd and may be read
  // from any thread until then; `chunks` is how many chunks this run has left to finish.
  virtual void OnRunStart(const Telemetry& /*telemetry*/, uint64_t /*chunks*/, Unit /*unit*/) {}
  // The chunks stopped running (done, failed or interrupted), before the output is
  // committed and the summary printed; `telemetry` must not be read after this returns.
  virtual void OnRunEnd() {}
  // The job ended: its output committed or discarded and --state settled, before
  // --stats-json and --trace are written. Not called for usage errors or --dry-run.
  virtual void OnJobEnd(const JobEnd& /*end*/) {}
  // Who hears every telemetry event (workers, attempts) as it happens, if anyone: set on
  // the job's Telemetry before the job starts (telemetry.h says on which threads).
  virtual TelemetryListener* listener() { return nullptr; }
};

// Several observers as one, called in the order given (the CLI's reporter and its
// dashboard). The observers must outlive it.
class ObserverTee : public JobObserver, private TelemetryListener {
 public:
  explicit ObserverTee(std::vector<JobObserver*> observers) : observers_(std::move(observers)) {
    for (JobObserver* o : observers_) {
      if (TelemetryListener* l = o->listener()) listeners_.push_back(l);
    }
  }
  void OnRunStart(const Telemetry& telemetry, uint64_t chunks, Unit unit) override {
    for (JobObserver* o : observers_) o->OnRunStart(telemetry, chunks, unit);
  }
  void OnRunEnd() override {
    for (JobObserver* o : observers_) o->OnRunEnd();
  }
  void OnJobEnd(const JobEnd& end) override {
    for (JobObserver* o : observers_) o->OnJobEnd(end);
  }
  TelemetryListener* listener() override { return listeners_.empty() ? nullptr : this; }

 private:
  void OnWorker(WorkerIndex worker, const WorkerInfo& info) override {
    for (TelemetryListener* l : listeners_) l->OnWorker(worker, info);
  }
  void OnAttemptStart(uint64_t chunk, uint32_t attempt, WorkerIndex worker, double at) override {
    for (TelemetryListener* l : listeners_) l->OnAttemptStart(chunk, attempt, worker, at);
  }
  void OnAttemptEnd(const AttemptSpan& span) override {
    for (TelemetryListener* l : listeners_) l->OnAttemptEnd(span);
  }
  void OnWorkerSeen(WorkerIndex worker, double at) override {
    for (TelemetryListener* l : listeners_) l->OnWorkerSeen(worker, at);
  }

  std::vector<JobObserver*> observers_;
  std::vector<TelemetryListener*> listeners_;
};

}  // namespace fanout
