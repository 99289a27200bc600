// PlannedJob, RunStats and ModeResult: what every mode (serial, threads, processes, warm)
// shares about a job: the plan it runs, what it reports back and how it ended. The
// failure texts (LatestFailureNote, ExhaustedAttempts) read the Scheduler's record of a
// chunk's attempts, for the CLI and the library alike.
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
#include "engine/result_assembler.h"
#include "engine/scheduler.h"
#include "engine/telemetry.h"

namespace fanout {

// The immutable part of a job: what to run on which chunks. Safe to read from any thread.
struct PlannedJob {
  const JobConfig& config;
  const TaskDef& task;
  JobInput input;
  std::vector<ChunkSpec> chunks;
  std::string_view header;  // --header: the input's first line, sent before every chunk

  // The chunk's bytes ("" for range chunks).
  std::string_view Bytes(uint64_t chunk) const;
  // What a task gets: the header (if any) then the chunk's bytes, copied into `storage`
  // only when there is a header.
  std::string_view Payload(uint64_t chunk, std::string& storage) const;
  // The size of that (0 for a range chunk), and a copy of it into `to` (PayloadSize bytes)
  // made without touching the mapping (JobInput::CopyOut: a truncated file cannot fault):
  // what a TASK's frame carries, and an echo's output.
  uint64_t PayloadSize(uint64_t chunk) const;
  void CopyPayload(uint64_t chunk, char* to) const;
  // An attempt's span as it ended now after `wall` seconds, for the telemetry.
  AttemptSpan Span(const Telemetry& t, uint64_t chunk, uint32_t attempt, WorkerIndex worker,
                   double wall, uint64_t bytes_out, const Status& status) const;
  // The same, ended at `end` (the telemetry's Now(), read by the caller).
  AttemptSpan SpanAt(double end, uint64_t chunk, uint32_t attempt, WorkerIndex worker, double wall,
                     uint64_t bytes_out, const Status& status) const;
  ChunkInput InputFor(uint64_t chunk, uint32_t attempt, const std::string& worker,
                      std::string& storage) const;
  // "chunk 3 (lines 301-400)", "chunk 3 (numbers 1000-1999)" or "chunk 3 (bytes 0-1023)"
  // (--block plans do not count records): for error messages.
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

// What to log for the most recent failed attempt of `chunk`: its reason, or "same as
// attempt K" when an earlier attempt of the chunk failed with the very same text (a
// deterministic failure's stderr tail is shown once, not once per retry).
std::string LatestFailureNote(const Scheduler& scheduler, uint64_t chunk);

// Why `chunk` ran out of attempts, for the CLI's report and the library's TaskError alike:
// "2 failures, --retries 1" or "5 workers lost under it, --crash-limit 5" (with `flags`
// false, the options as PoolOptions names them: "retries 1", "crash limit 5").
std::string ExhaustedAttempts(const Scheduler& scheduler, uint64_t chunk, bool flags = true);

}  // namespace fanout
