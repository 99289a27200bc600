// Job: one `fanout run` from parsed config to exit code. RunJob resolves the task, opens
// input and output (usage errors: exit 2, nothing written), plans the chunks, runs them
// in the configured mode, writes the failure report and the summary line, and commits
// or discards the output. PlannedJob and RunStats are what every mode shares.
// Not thread-safe unless stated: a job is driven by one thread (threads mode locks).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/chunking.h"
#include "common/exit_code.h"
#include "common/task.h"
#include "coordinator/job_config.h"
#include "coordinator/job_input.h"
#include "coordinator/result_assembler.h"
#include "coordinator/scheduler.h"
#include "coordinator/telemetry.h"

namespace fanout {

// The immutable part of a job: what to run on which chunks. Safe to read from any thread.
struct PlannedJob {
  const JobConfig& config;
  const TaskDef& task;
  JobInput input;
  std::vector<ChunkSpec> chunks;

  // The chunk's bytes ("" for range chunks).
  std::string_view Bytes(uint64_t chunk) const;
  // An attempt's span as it ended now after `wall` seconds, for the telemetry.
  AttemptSpan Span(const Telemetry& t, uint64_t chunk, uint32_t attempt, WorkerIndex worker,
                   double wall, uint64_t bytes_out, const Status& status) const;
  ChunkInput InputFor(uint64_t chunk, uint32_t attempt, const std::string& worker) const;
  // "chunk 3 (lines 301-400)" or "chunk 3 (numbers 1000-1999)": for error messages.
  std::string Describe(uint64_t chunk) const;
};

// What a mode reports back, for the summary line and the failure report.
struct RunStats {
  uint32_t workers = 0;
  double cpu_seconds = 0;  // sum over accepted attempts
  uint64_t respawns = 0;
  uint64_t rejected_messages = 0;  // malformed or unexpected messages dropped
  Telemetry telemetry;             // spans, per-worker rows, progress counters
  std::string WorkerName(WorkerIndex w) const { return telemetry.WorkerName(w); }
};

// How a mode's run ended. kCompleted means the scheduler finished or aborted (the job
// inspects which); kFailed carries a one-line reason (e.g. no worker left).
struct ModeResult {
  enum class Kind { kCompleted, kInterrupted, kFailed } kind = Kind::kCompleted;
  std::string message;
  static ModeResult Completed() { return {}; }
  static ModeResult Interrupted() { return {Kind::kInterrupted, ""}; }
  static ModeResult Failed(std::string why) { return {Kind::kFailed, std::move(why)}; }
};

// Feeds the scheduler's decisions to the output, for every mode: an accepted chunk's
// output goes to the assembler (written in input order) and its CPU time to the stats;
// with --keep-going, chunks that failed for good are skipped so later ones can be written.
// Receives chunk outcomes in place of the assembler (the library's Pool hands each result
// to its caller instead of writing a file). Called from the thread that runs the mode.
class ChunkObserver {
 public:
  virtual ~ChunkObserver() = default;
  virtual Status OnAccepted(uint64_t chunk, Blob output) = 0;
  virtual Status OnFailed(uint64_t chunk) = 0;  // failed for good (keep_going)
};

class ResultSink {
 public:
  ResultSink(const Scheduler& scheduler, ResultAssembler& assembler, RunStats& stats)
      : scheduler_(scheduler), assembler_(&assembler), stats_(stats) {}
  ResultSink(const Scheduler& scheduler, ChunkObserver& observer, RunStats& stats)
      : scheduler_(scheduler), observer_(&observer), stats_(stats) {}
  // Call only for a kAccepted verdict. Returns a write error, if any.
  Status Accept(uint64_t chunk, Blob output, double cpu_seconds);
  // Skips chunks that failed for good since the last call (no-op unless keep_going).
  Status SyncFailures();

 private:
  const Scheduler& scheduler_;
  ResultAssembler* assembler_ = nullptr;  // exactly one of assembler_ and observer_ is set
  ChunkObserver* observer_ = nullptr;
  RunStats& stats_;
  size_t synced_failures_ = 0;
};

ExitCode RunJob(const JobConfig& config);

}  // namespace fanout
