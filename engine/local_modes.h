// The in-process modes: `serial` (one chunk after another on the calling thread, the
// baseline) and `threads` (a pool of threads in the coordinator process). Both drive the
// same Scheduler as the process mode, so retries and --keep-going behave identically;
// --timeout and --speculate need separate processes and apply to `processes` only.
#pragma once

#include <cstdint>
#include <stop_token>

#include "engine/planned_job.h"
#include "engine/result_sink.h"

namespace fanout {

// Both return kInterrupted on Ctrl-C or once `stop` is requested (engine/run_planned.h):
// the running tasks see a stop request (exec kills its command), no chunk starts after it.
ModeResult RunSerial(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink, RunStats& stats,
                     std::stop_token stop = {});

// Thread-safety: the scheduler, sink and stats are only touched under one mutex; tasks
// run outside it.
ModeResult RunThreads(const PlannedJob& job, uint32_t threads, Scheduler& scheduler,
                      ResultSink& sink, RunStats& stats, std::stop_token stop = {});

}  // namespace fanout
