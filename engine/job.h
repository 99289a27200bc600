// Job: one `fanout run` from parsed config to exit code. RunJob resolves the task, opens
// input and output (usage errors: exit 2, nothing written), plans the chunks, runs them
// in the configured mode, writes the failure report and the summary line, and commits
// or discards the output. What every mode shares is in planned_job.h (PlannedJob, RunStats,
// ModeResult) and result_sink.h (ResultSink, ChunkObserver).
// Not thread-safe unless stated: a job is driven by one thread (threads mode locks).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/chunking.h"
#include "common/exit_code.h"
#include "common/task.h"
#include "engine/job_config.h"
#include "engine/job_input.h"
#include "engine/planned_job.h"
#include "engine/result_assembler.h"
#include "engine/result_sink.h"
#include "engine/scheduler.h"
#include "engine/telemetry.h"

namespace fanout {

// The number of cores (at least 1): the default worker and thread count.
uint32_t DefaultJobs();

class JobObserver;

// Runs one job to its exit code; `observer` (may be null) hears when the chunks start and
// stop running and how the job ended (the CLI draws its progress, summary line and report
// from that; without an observer none is printed).
ExitCode RunJob(const JobConfig& config, JobObserver* observer = nullptr);

}  // namespace fanout
