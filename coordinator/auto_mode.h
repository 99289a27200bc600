// Auto mode (`--mode auto`, the default): decides serial, threads or processes, the worker
// count and the chunk count from a short calibration. Calibrate() runs the first records
// in the coordinator in growing chunks (1, 2, 4, ... records) whose outputs are kept as
// the job's first chunks, until the time per record is known (or a chunk runs past a
// deadline and is cancelled: a heavy record). ChooseMode() is the pure decision: it
// compares the estimated serial time with each parallel mode's estimate built from known
// dispatch costs, keeping overhead < 2% of the work and >= 4 chunks per worker.
// Not thread-safe; runs on the job's thread before any worker starts.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/chunking.h"
#include "common/task.h"
#include "coordinator/job.h"
#include "coordinator/job_config.h"

namespace fanout {

// The flags given that only worker processes honour (--listen, --timeout, --speculate,
// --worker-bin, --max-respawns, --min-workers, --wait-timeout, --slots > 1): auto mode
// then runs processes, and serial or threads mode refuses them rather than ignore them.
std::vector<std::string> ProcessOnlyFlags(const JobConfig& config);

// Chunks per worker when nothing else decides: 4 for balance, 8 for warm commands
// (`exec --warm`), whose chunk costs a framing round trip rather than a process start, so
// finer chunks buy balance (the last chunk's tail) almost for free.
uint64_t DefaultChunksPerWorker(const TaskDef& task, std::span<const std::string> args);

// What a parallel mode costs, measured on a 2-core machine (BENCHMARKS.md).
struct DispatchCosts {
  double thread_start_seconds = 0.0002;    // starting the pool
  double thread_chunk_seconds = 0.000005;  // per chunk: queueing, result hand-off
  double process_start_seconds = 0.025;    // spawning local workers until they say HELLO
  double process_chunk_seconds = 0.00012;  // per chunk: two ZeroMQ messages and a copy
  // Per input and output byte: mapping the input and writing the output happen in one
  // thread, and tasks that merely copy bytes are memory-bound, not core-bound.
  double coordinator_byte_seconds = 1e-9;
};

// Everything the decision needs; filled from the calibration and the command line.
struct AutoInputs {
  uint64_t records = 0;         // records still to run after the calibration
  uint64_t bytes = 0;           // their input bytes
  double record_seconds = 0;    // estimated wall time per record (a lower bound if cut)
  double cpu_fraction = 1;      // CPU time / wall time of the calibration (0..1+)
  double output_per_input = 1;  // output bytes per input byte (or per record for ranges)
  uint32_t cores = 1;
  uint32_t jobs = 0;                  // -j if given, else 0
  uint32_t max_waiting_workers = 64;  // threads at most for tasks that mostly wait
  uint64_t chunks = 0;                // the user's --chunks/--chunk-size plan for the rest, or 0
  bool needs_processes = false;       // --listen, --timeout or --speculate: processes only
  // Warm commands (`exec --warm`): the command's start-up, paid once per slot (the slots
  // start theirs side by side, so a parallel mode pays it once in wall time; serial reuses
  // the process the calibration warmed), and the framing round trip paid per chunk.
  double slot_start_seconds = 0;
  double warm_chunk_seconds = 0;
};

struct AutoChoice {
  Mode mode = Mode::kSerial;
  uint32_t workers = 1;
  uint64_t chunks = 1;  // for the records left (the user's count if given)
  double estimate_seconds = 0;
  std::string reason;  // one line: why this mode
};

AutoChoice ChooseMode(const AutoInputs& in, const DispatchCosts& costs = {});

// The calibration's result: the chunks it ran (kept, in input order) and what it measured.
struct Calibration {
  std::vector<ChunkSpec> chunks;     // planned and run; ids 0..k-1
  std::vector<std::string> outputs;  // their outputs
  std::vector<double> cpu_seconds, wall_seconds;
  uint64_t records = 0;  // records covered by `chunks`
  uint64_t bytes = 0;    // input bytes covered
  double wall = 0;       // total over the kept chunks
  double cpu = 0;
  uint64_t output_bytes = 0;
  bool cut_short = false;       // a chunk passed the deadline and was cancelled (not kept)
  double cut_records = 0;       // records in that chunk
  double cut_seconds = 0;       // how long it ran before being cancelled
  std::optional<Status> error;  // a calibration chunk failed: leave it to the real run
};

struct CalibrationLimits {
  double enough_seconds = 0.002;      // stop once calibrating took this long
  double deadline_seconds = 0.005;    // cancel a chunk running this long
  uint64_t max_records_fraction = 8;  // never calibrate more than 1/8 of the records
};

// Runs chunks serially in this thread, each with a deadline, until they took
// `enough_seconds` (and at least 3 ran): the user's `plan` in order (when --chunks or
// --chunk-size fixed it), or else growing prefix chunks of `data` (or of `range`;
// `total_records` in all), then never more than 1/8 of the records. A chunk that passes
// the deadline is cancelled and ends the calibration: the job is worth spreading.
Calibration Calibrate(const TaskDef& task, const std::vector<std::string>& args,
                      std::string_view data, const std::optional<IntRange>& range,
                      const std::vector<ChunkSpec>& plan, uint64_t total_records,
                      const CalibrationLimits& limits = {});

// The rest of the input after the calibration, planned into `chunks` chunks, with ids,
// record numbers and byte offsets following the calibration's chunks.
std::vector<ChunkSpec> PlanRest(const Calibration& cal, std::string_view data,
                                const std::optional<IntRange>& range, uint64_t chunks,
                                const ConsumedFn& consumed = {});

// Auto mode's whole plan for a job: what it chose and every chunk (the calibration's first).
struct AutoPlan {
  AutoChoice choice;
  Calibration calibration;
  std::vector<ChunkSpec> chunks;
  // Not ok when the user's own plan (--chunks, --chunk-size) breaks PlanLimits (too many
  // chunks): nothing was calibrated and the job must not run (a usage error).
  Status status;
  // "threads, 2 workers, 8 chunks: <reason>" (`chunks` in the whole plan): for -v, stats.
  std::string Summary(size_t chunks) const;
};

// Why auto mode must not calibrate and plan this job itself, or "" if it may: options that
// ask for worker processes, options whose chunk plan is the job's own (--header, --null,
// --record-size, --block, --state), or an input so big that planning it here would touch
// every page at once (the job then plans it in bounded memory). Auto then runs processes.
std::string CalibrationRuledOut(const JobConfig& config, uint64_t input_bytes);

// Calibrates and plans the job. Call only when CalibrationRuledOut(config, ...) is "".
// `consumed(n)` is told when the first n bytes of `data` need not stay in memory (planning
// touches every page; the job releases them as it goes).
AutoPlan PlanAuto(const JobConfig& config, const TaskDef& task, std::string_view data,
                  uint32_t cores, const ConsumedFn& consumed = {});

// Hands the calibration's outputs to the sink and takes its chunks off the scheduler, so
// the chosen mode runs only the rest (the outputs are moved out), and logs each as an
// attempt run by the coordinator (--joblog, progress). Returns a write error, if any.
Status ApplyCalibration(AutoPlan& plan, const PlannedJob& job, Scheduler& scheduler,
                        ResultSink& sink, Telemetry& telemetry);

}  // namespace fanout
