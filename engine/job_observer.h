// JobObserver: what a front end (the CLI's progress line, a library, a server) learns of a
// running job while the engine stays unaware of who listens. RunJob calls it from the
// thread that runs the job; an implementation must return promptly and not throw. Chunk
// outcomes go to a ChunkObserver (job.h) instead; the end-of-job totals are in JobTotals
// (telemetry.h), which the engine writes to --stats-json and the summary line.
#pragma once

#include <cstdint>

#include "engine/telemetry.h"

namespace fanout {

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
};

}  // namespace fanout
