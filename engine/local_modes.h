// The in-process modes: `serial` (one chunk after another on the calling thread, the
// baseline) and `threads` (a pool of threads in the coordinator process). Both drive the
// same Scheduler as the process mode, so retries and --keep-going behave identically;
// --timeout and --speculate need separate processes and apply to `processes` only.
#pragma once

#include <cstdint>

#include "engine/job.h"

namespace fanout {

ModeResult RunSerial(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink,
                     RunStats& stats);

// Thread-safety: the scheduler, sink and stats are only touched under one mutex; tasks
// run outside it.
ModeResult RunThreads(const PlannedJob& job, uint32_t threads, Scheduler& scheduler,
                      ResultSink& sink, RunStats& stats);

}  // namespace fanout
