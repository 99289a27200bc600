// RunPlannedJob: the engine's one entry point for running a planned job's chunks, in any
// mode, for every front end (RunJob for `fanout run`, RunBatch for the library's Pool).
// The caller owns the plan, the Scheduler, the ResultSink (where outcomes go: an output
// file or a ChunkObserver) and the RunStats, and turns the ModeResult into its own report.
// Blocks until the scheduler finishes or aborts, the job is interrupted or stopped, or it
// fails; exceptions from below (std::bad_alloc, a transport error) reach the caller.
#pragma once

#include <cstdint>
#include <stop_token>

#include "engine/planned_job.h"
#include "engine/result_sink.h"

namespace fanout {

// Runs the chunks in job.config.mode: kSerial on the calling thread, kThreads with
// `workers` threads, kProcesses with `workers` local worker processes (0: only workers that
// connect to --listen). kAuto must have been resolved to one of these (PlanAuto) before.
// `stop` (the library's Pool::cancel; `fanout run` passes none) ends the job as Ctrl-C
// does, from any thread: no more chunks are handed out, running tasks are asked to stop
// (an `exec` command is killed; an in-process function finishes its chunk), processes mode
// shuts its workers down, and the result is kInterrupted. Chunks that ended before the
// stop are reported to the sink as usual.
ModeResult RunPlannedJob(const PlannedJob& job, uint32_t workers, Scheduler& scheduler,
                         ResultSink& sink, RunStats& stats, std::stop_token stop = {});

}  // namespace fanout
