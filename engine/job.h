// Job: one `fanout run` from parsed config to exit code. RunJob resolves the task, opens
// input and output (usage errors: exit 2, nothing written), plans the chunks, runs them
// in the configured mode, writes the failure report and the summary line, and commits
// or discards the output. What every mode shares is in planned_job.h (PlannedJob, RunStats,
// ModeResult) and result_sink.h (ResultSink, ChunkObserver).
// Not thread-safe unless stated: a job is driven by one thread (threads mode locks).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <stop_token>
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
class WarmProcesses;

// What a long-lived host (the server, cli/server.h) lends a job; `fanout run` lends none.
struct JobHost {
  // Where the failure report goes (the lines `fanout run` writes to stderr); null: stderr.
  FILE* report = nullptr;
  // A processes-mode job runs on these warm workers instead of starting its own; its config
  // must share the fleet's options (warm_processes.h) and send payloads (local_input_by_ref
  // off).
  WarmProcesses* fleet = nullptr;
  // Cancels the job from another thread: it ends as on Ctrl-C (exit 130, output discarded,
  // "cancelled" in the report).
  std::stop_token stop;
  // The job's --state is the host's own journal: on failure the report does not point the
  // user at it (the host resumes it itself).
  bool hosts_state = false;
  // Told on the job's thread each time more of the ordered output reached its file: the
  // first `bytes` are in `file` (the temporary the job writes, renamed over config.output
  // if the job succeeds). Lets a host stream the output while the job runs. Not called
  // for stdout.
  std::function<void(const std::string& file, uint64_t bytes)> output_progress;
};

// Runs one job to its exit code; `observer` (may be null) hears when the chunks start and
// stop running and how the job ended (the CLI draws its progress, summary line and report
// from that; without an observer none is printed).
ExitCode RunJob(const JobConfig& config, JobObserver* observer = nullptr, const JobHost& host = {});

}  // namespace fanout
