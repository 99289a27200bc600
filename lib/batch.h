// RunBatch: one library call (Pool::map, a group of submits, as_completed) run as a job
// on the engine (engine/run_planned.h): the same Scheduler, local modes and processes event
// loop as `fanout run`, with the chunks held in memory and each outcome handed to
// callbacks instead of an output file. Internal to the fanout library.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "engine/call_job.h"
#include "engine/warm_processes.h"
#include "fanout/pool.h"
#include "lib/pool_settings.h"

namespace fanout {

struct BatchSpec {
  std::string task;
  std::vector<std::string> args;
  std::vector<std::string> chunks;   // data chunks, or:
  std::optional<NumberRange> range;  // a range cut into `range_chunks`
  uint64_t range_chunks = 0;
  bool keep_going = false;  // false: the first chunk that fails for good stops the job
  // The numbers errors give the chunks (e.g. submission numbers); empty = their index.
  std::vector<uint64_t> ids;
};

// Called from the thread running the job, at most once per chunk each; every chunk gets
// exactly one call (a result, or an error: TaskError or PoolError) before RunBatch returns.
struct BatchCallbacks {
  std::function<void(uint64_t chunk, std::string output)> on_result;
  std::function<void(uint64_t chunk, std::exception_ptr error)> on_error;
};

// A Pool's warm workers (processes and remote mode): made by the Pool's first job, which
// starts them; later jobs run on them (engine/warm_processes.h). Shared by the Pool and
// the threads that run its jobs (as_completed streams may outlive it).
struct WarmWorkers {
  std::mutex mu;
  std::unique_ptr<WarmProcesses> fleet;  // guarded by mu
};

// The exception a Pool call gives chunk `chunk` of `spec`, which has no output: TaskError
// (it failed every attempt), Cancelled, or PoolError (not run, or the job failed).
std::exception_ptr ErrorOf(uint64_t chunk, const BatchSpec& spec, const ChunkFailure& failure);

// The threads or local worker processes `options` asks for: `workers`, or one per core.
uint32_t WorkersOf(const PoolSettings& options);

// Throws PoolError for problems found before any chunk runs (unknown task, bad args).
// With `warm`, processes and remote jobs run on its workers (started by the first such job)
// instead of workers started for this job alone. `stop` cancels the job from any thread
// (engine/run_planned.h): it returns promptly, and the chunks not finished get Cancelled.
// With options.server, the call runs on that server instead (RunBatchOnServer).
void RunBatch(const PoolSettings& options, const BatchSpec& spec, const BatchCallbacks& callbacks,
              WarmWorkers* warm = nullptr, std::stop_token stop = {});

// One call on the `fanout server` at options.server (lib/server_call.cc): PoolError when it
// cannot be sent, is refused, or the server loses it; otherwise every chunk's outcome goes
// to the callbacks once the server has them all.
void RunBatchOnServer(const PoolSettings& options, const BatchSpec& spec,
                      const BatchCallbacks& callbacks, std::stop_token stop);

}  // namespace fanout
