// ChunkObserver and ResultSink: where a mode's accepted and failed chunks go (an output
// file through the ResultAssembler, or a ChunkObserver such as the library's callbacks).
// Implemented in result_sink.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/blob.h"
#include "common/status.h"
#include "engine/planned_job.h"
#include "engine/result_assembler.h"
#include "engine/scheduler.h"

namespace fanout {

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
  // Whether Accept would write `chunk`'s output at once (it is next in order, or the
  // output is unordered), so that a view of the input may stand for it: not with an
  // observer, which may keep what it is given.
  bool WritesAtOnce(uint64_t chunk) const { return assembler_ && assembler_->WritesAtOnce(chunk); }
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

}  // namespace fanout
