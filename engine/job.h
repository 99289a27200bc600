// Job: one `fanout run` from parsed config to exit code. RunJob resolves the task, opens
// input and output (usage errors: exit 2, nothing written), plans the chunks, runs them
// in the configured mode, writes the failure report and the summary line, and commits
// or discards the output. PlannedJob and RunStats are what every mode shares.
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
  // An attempt's span as it ended now after `wall` seconds, for the telemetry.
  AttemptSpan Span(const Telemetry& t, uint64_t chunk, uint32_t attempt, WorkerIndex worker,
                   double wall, uint64_t bytes_out, const Status& status) const;
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

class StateStore;

// Receives chunk outcomes in place of the assembler (the library's Pool hands each result
// to its caller instead of writing a file). Called from the thread that runs the mode.
class ChunkObserver {
 public:
  virtual ~ChunkObserver() = default;
  virtual Status OnAccepted(uint64_t chunk, Blob output) = 0;
  virtual Status OnFailed(uint64_t chunk) = 0;  // failed for good (keep_going)
};

// Feeds the scheduler's decisions to the output, for every mode (result_sink.cc): an
// accepted chunk's output is saved to --state (if any), its input pages are released, and
// it goes to the assembler (written in input order) or the observer; its CPU time goes to
// the stats. With --keep-going, chunks that failed for good are skipped so later ones can
// be written; with --resume, chunks finished by an earlier run are written from the state
// when their turn comes. Driven by one thread at a time (threads mode holds its lock).
class ResultSink {
 public:
  ResultSink(const PlannedJob& job, const Scheduler& scheduler, ResultAssembler& assembler,
             RunStats& stats, StateStore* state, std::vector<uint64_t> stored)
      : job_(job),
        scheduler_(scheduler),
        assembler_(&assembler),
        stats_(stats),
        state_(state),
        stored_(std::move(stored)) {}
  // Outcomes go to `observer` (no state, no stored chunks).
  ResultSink(const PlannedJob& job, const Scheduler& scheduler, ChunkObserver& observer,
             RunStats& stats)
      : job_(job), scheduler_(scheduler), observer_(&observer), stats_(stats), state_(nullptr) {}
  // Checks an attempt's output before the scheduler sees it: with --header, its first
  // line must equal that of the first output seen. An error makes it a failed attempt.
  Status Vet(std::string_view output);
  // Call only for a kAccepted verdict. Returns a write error, if any.
  Status Accept(uint64_t chunk, Blob output, double cpu_seconds);
  // Skips chunks that failed for good since the last call (no-op unless keep_going). Also
  // checks, at most every kInputCheckInterval, that the input file did not change (an
  // error then fails the job): modes call it after every result and lost worker.
  Status SyncFailures();
  // Writes the stored outputs (--resume) whose turn has come.
  Status FeedStored();
  // Hands buffered output to the file. Modes call it before they wait for more results
  // (after each event-loop step, each lock round of the threads, each serial chunk), so
  // small writes are gathered without holding output back.
  Status Flush() { return assembler_ ? assembler_->FlushOutput() : Status::Ok(); }

 private:
  const PlannedJob& job_;
  const Scheduler& scheduler_;
  ResultAssembler* assembler_ = nullptr;  // exactly one of assembler_ and observer_ is set
  ChunkObserver* observer_ = nullptr;
  RunStats& stats_;
  StateStore* state_;
  std::vector<uint64_t> stored_;  // ascending chunk ids finished by an earlier run
  size_t next_stored_ = 0;
  size_t synced_failures_ = 0;
  std::optional<std::string> header_;  // the first output's first line (--header)
  std::chrono::steady_clock::time_point input_checked_{};  // last JobInput::CheckUnchanged
};

// What to log for the most recent failed attempt of `chunk`: its reason, or "same as
// attempt K" when an earlier attempt of the chunk failed with the very same text (a
// deterministic failure's stderr tail is shown once, not once per retry).
std::string LatestFailureNote(const Scheduler& scheduler, uint64_t chunk);

// Why `chunk` ran out of attempts, for the CLI's report and the library's TaskError alike:
// "2 failures, --retries 1" or "5 workers lost under it, --crash-limit 5" (with `flags`
// false, the options as PoolOptions names them: "retries 1", "crash limit 5").
std::string ExhaustedAttempts(const Scheduler& scheduler, uint64_t chunk, bool flags = true);

// The number of cores (at least 1): the default worker and thread count.
uint32_t DefaultJobs();

class JobObserver;

// Runs one job to its exit code; `observer` (may be null) hears when the chunks start and
// stop running and how the job ended (the CLI draws its progress, summary line and report
// from that; without an observer none is printed).
ExitCode RunJob(const JobConfig& config, JobObserver* observer = nullptr);

}  // namespace fanout
