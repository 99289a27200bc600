// JobObserver: what a front end (the CLI's progress line, summary line and report, a
// library, a server) learns of a running job while the engine stays unaware of who
// listens. RunJob calls it from the thread that runs the job; an implementation must return
// promptly and not throw. Chunk outcomes go to a ChunkObserver (job.h) instead.
#pragma once

#include <cstdint>

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
};

}  // namespace fanout
