// RunCallJob: a job whose chunks its caller cut, each with an outcome of its own, handed to
// callbacks instead of written to an output file. Two callers: a library call (lib/batch.h:
// Pool::map, submits, as_completed) and a Pool's call sent to a `fanout server`
// (cli/server.cc). The same Scheduler, local modes and processes event loop as `fanout run`
// (engine/run_planned.h, engine/warm_processes.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "common/chunking.h"
#include "common/status.h"
#include "engine/job_config.h"

namespace fanout {

class WarmProcesses;

// The number a caller gives chunk `chunk` in errors: ids[chunk] (e.g. a Pool's submission
// numbers), or the index itself when `ids` is empty.
inline uint64_t ChunkNumber(const std::vector<uint64_t>& ids, uint64_t chunk) {
  return chunk < ids.size() ? ids[chunk] : chunk;
}

struct CallSpec {
  std::string bytes;  // the chunks back to back, `sizes[i]` bytes each
  std::vector<uint64_t> sizes;
  // Or no bytes: a range cut into `range_chunks` (array_split sizes).
  std::optional<IntRange> range;
  uint64_t range_chunks = 0;
  // The numbers errors give the chunks (e.g. a Pool's submission numbers); empty = index.
  std::vector<uint64_t> ids;
  uint64_t chunk_count() const {
    return range ? std::max<uint64_t>(range_chunks, 1) : sizes.size();
  }
};

// Why a chunk has no output.
struct ChunkFailure {
  enum class Kind {
    kFailed,     // it failed every attempt (`reason`: the last attempt's)
    kCancelled,  // the job was stopped (the stop token)
    kNotRun,     // another chunk failed for good first (without keep_going)
    kJobFailed,  // the job could not run on (`reason`: why)
  };
  Kind kind = Kind::kFailed;
  std::string reason;
  std::string message;  // the whole sentence, e.g. "chunk 3 failed on worker local-1 (...): R"
};

// A kind's name on the wire ("failed", "cancelled", "not_run", "job_failed": a server's
// answer to a Pool's call, common/PROTOCOL.md), and back (kJobFailed for a name it does not
// know).
const char* ChunkFailureKindName(ChunkFailure::Kind kind);
ChunkFailure::Kind ChunkFailureKindNamed(std::string_view name);

// Called from the thread running the job, at most once per chunk each; every chunk gets
// exactly one call before RunCallJob returns.
struct CallCallbacks {
  std::function<void(uint64_t chunk, std::string output)> on_result;
  std::function<void(uint64_t chunk, ChunkFailure failure)> on_error;
};

// Runs `spec`'s chunks with `config` (task, args, scheduler, mode): on the warm workers
// `fleet` returns when given (processes mode; called once the task is known to be
// runnable, so a refused call starts no worker), else with up to `workers` threads or local
// worker processes (no more than there are chunks). An error before any chunk runs: the task is
// unknown in a mode that runs it here, or its arguments are refused. Where the workers run
// it (processes), a task unknown here is left for them to refuse (plugins, other binaries).
// `spec.bytes` is moved into the job.
Status RunCallJob(const JobConfig& config, CallSpec spec, const CallCallbacks& callbacks,
                  const std::function<WarmProcesses*()>& fleet, uint32_t workers,
                  std::stop_token stop = {});

}  // namespace fanout
