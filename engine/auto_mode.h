// Auto mode (`--mode auto`, the default): decides serial, threads or processes, the worker
// count and the chunk count from a cost model fitted on chunks run to completion.
//
// The model: a chunk of n records costs a + b*n of wall time (a: what the chunk pays once,
// such as a process start or an interpreter's imports; b: each record), of which
// ac + bc*n is CPU time (the coordinator thread's own, with the time it sat ready on a
// busy machine's run queue, and its reaped children's). Calibrate()
// runs the job's first chunks in the coordinator, one at a time and to completion: one
// record, then a chunk big enough for the per-record cost to show over the start-up, then
// doubling sizes while they stay quick; with the user's own plan (--chunks, --chunk-size),
// the plan's first chunks. A first record that alone takes 50 ms without mostly waiting
// (an interpreter's imports) ends the calibration: a second chunk run alone would pay
// that start-up again, so the rest runs as one chunk per worker, side by side. When
// serial is chosen, PlanAuto goes on running the next chunks serially, measuring each and
// choosing again (KeepMeasuringChunk), for up to half a second: a choice of serial made on
// a few small chunks is corrected while parallel can still pay. Their outputs are the
// job's output and each is a real, logged attempt 1 (ApplyCalibration): no record runs
// twice when nothing fails. ChooseMode() is the pure decision: for each worker and chunk
// count it estimates the wall time (CPU work shares the cores, waiting work spreads over
// the workers, every chunk pays a, the last round's chunk is the tail) and takes the
// fastest; parallel only if clearly faster than serial. CPU-bound work never gets more
// workers than cores.
// Not thread-safe; runs on the job's thread before any worker starts.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/blob.h"
#include "common/chunking.h"
#include "common/task.h"
#include "engine/job_config.h"
#include "engine/planned_job.h"
#include "engine/result_sink.h"

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
  double worker_start_seconds = 0.00003;   // per thread started
  double thread_chunk_seconds = 0.000005;  // per chunk: queueing, result hand-off
  double process_start_seconds = 0.025;    // spawning local workers until they say HELLO
  double process_chunk_seconds = 0.00012;  // per chunk: two ZeroMQ messages and a copy
  // Per input and output byte: mapping the input and writing the output happen in one
  // thread, and tasks that merely copy bytes are memory-bound, not core-bound.
  double coordinator_byte_seconds = 1e-9;
};

// Everything the decision needs; filled from the calibration and the command line.
struct AutoInputs {
  uint64_t records = 0;  // records still to run after the calibration
  uint64_t bytes = 0;    // their input bytes
  // The cost model: a chunk of n records takes chunk_seconds + n * record_seconds of wall
  // time, of which chunk_cpu_seconds + n * record_cpu_seconds is CPU time.
  double chunk_seconds = 0;
  double record_seconds = 0;
  double chunk_cpu_seconds = 0;
  double record_cpu_seconds = 0;
  double output_per_input = 1;  // output bytes per input byte (or per record for ranges)
  uint32_t cores = 1;
  uint32_t jobs = 0;                  // -j if given, else 0
  uint32_t max_waiting_workers = 64;  // workers at most for tasks that mostly wait
  uint64_t chunks = 0;                // the user's --chunks/--chunk-size plan for the rest, or 0
  bool needs_processes = false;       // --listen, --timeout or --speculate: processes only
  // Warm commands (`exec --warm`): the command's start-up, paid once per slot (the slots
  // start theirs side by side, so a parallel mode pays it once in wall time; serial reuses
  // the process the calibration warmed). Its round trip per chunk is chunk_seconds.
  double slot_start_seconds = 0;
  // The calibration stopped after a first record whose start-up alone was heavy and not
  // mostly waiting (Calibration::heavy_start): chunk_seconds is that start-up, the
  // records' own cost unknown.
  bool heavy_start = false;
  // Records in the biggest chunk the calibration ran (0: none), and in the whole job. While
  // start-ups stay cheap, a serial plan cuts no chunk much bigger than the biggest measured
  // or than serial mode's own chunks (4 a core over the job): the model is linear, and
  // work that grows faster than its records (a product's numbers, sort's n log n) costs
  // more in a chunk bigger than any measured.
  uint64_t measured_records = 0;
  uint64_t total_records = 0;
  // Records in the measured chunk whose records cost least each, when a chunk at least
  // twice its size cost clearly more a record (0: not seen). Work that grows faster than
  // its records (a product's numbers) is cheaper cut small: a serial plan, and the chunks
  // that check a choice of serial, are cut no bigger.
  uint64_t superlinear_records = 0;
};

struct AutoChoice {
  Mode mode = Mode::kSerial;
  uint32_t workers = 1;
  uint64_t chunks = 1;          // for the records left (the user's count if given)
  double estimate_seconds = 0;  // predicted wall time for the records left
  std::string reason;           // one line: the measured model and why this mode
};

AutoChoice ChooseMode(const AutoInputs& in, const DispatchCosts& costs = {});

// The calibration's result: the chunks it ran to completion (kept, in input order) and
// what each measured.
struct Calibration {
  std::vector<ChunkSpec> chunks;  // planned and run; ids 0..k-1
  // Their outputs: the bytes each made, or for a pass-through task (TaskDef::run_view)
  // the slice of the input it passes on, borrowed from the job's input mapping.
  std::vector<Blob> outputs;
  std::vector<double> cpu_seconds, wall_seconds;
  // Of each chunk's wall time, how long the coordinator's thread was ready to run but
  // queued for a CPU (/proc/thread-self/schedstat): a busy machine, not waiting. An `exec`
  // child's own queueing is not seen (it counts as waiting).
  std::vector<double> queued_seconds;
  std::vector<std::chrono::steady_clock::time_point> started;
  // Whether each ran on the calibration's second thread, beside the coordinator's
  // (CalibrationLimits::side_by_side): its attempt is worker 1's in the trace and stats.
  std::vector<bool> beside;
  // The coordinator's thread's run-queue time (RunQueueSeconds) when its last chunk ended,
  // or -1: the next chunk's starting point, so a chunk costs one read of it, not two.
  double queue_mark = -1;
  uint64_t records = 0;  // records covered by `chunks`
  uint64_t bytes = 0;    // input bytes covered
  double wall = 0;       // total over the kept chunks
  double cpu = 0;
  uint64_t output_bytes = 0;
  // A calibration chunk failed: its error, the chunk (not in `chunks`; its attempt 1 is
  // settled as a failure by ApplyCalibration) and what that attempt measured.
  std::optional<Status> error;
  bool stopped = false;  // the failure was CalibrationLimits::stop_seconds, not the task's
  // The first record alone took CalibrationLimits::heavy_seconds or more and did not mostly
  // wait (an interpreter's imports): the calibration ended there, since every further
  // chunk it ran alone would pay that start-up again, one after the other.
  bool heavy_start = false;
  std::optional<ChunkSpec> failed;
  std::chrono::steady_clock::time_point failed_started;
  double failed_wall = 0, failed_cpu = 0;
  bool failed_beside = false;  // the failed chunk ran on the second thread (`beside`)
};

struct CalibrationLimits {
  double enough_seconds = 0.002;      // quick chunks: keep calibrating until this long
  uint64_t max_records_fraction = 8;  // never calibrate more than 1/8 of the records (>= 3)
  // A first record at least this slow that mostly waits, with no more records left than
  // max_waiting_workers: a record per chunk on a worker each is best whatever the split
  // between start-up and per-record cost, so nothing more is calibrated. One this slow that
  // does not mostly wait ends the calibration too (Calibration::heavy_start).
  double heavy_seconds = 0.05;
  // Whether a heavy first record that does not mostly wait ends the calibration (not for
  // a warm command, whose start-up was paid before the calibration).
  bool heavy_start_ends = true;
  // Whether the per-record chunk may run beside a second one (cores >= 2, a first record of
  // a command's start-up or more): not for a warm command, whose other slots are still
  // starting while the calibration runs (a chunk on one of them would book its start-up).
  bool side_by_side = true;
  // A calibration chunk running this long is stopped (an `exec` child is killed): chunks
  // may need each other running at once, and a heavy chunk should not run alone for long.
  // Its attempt 1 ends free of charge; the chosen mode runs attempt 2.
  double stop_seconds = 3;
  // Serial chosen: more chunks run and are measured (KeepMeasuringChunk) while the whole
  // calibration stays under this long and its held outputs under keep_measuring_bytes
  // (held outputs take fresh pages, which serial mode's reused buffers do not: a few
  // milliseconds a MiB where page faults are dear).
  double keep_measuring_seconds = 0.5;
  uint64_t keep_measuring_bytes = 4u << 20;
  uint32_t cores = 1;
  uint32_t max_waiting_workers = 64;
};

// Runs chunks in this thread, each to completion. With the user's `plan` (when
// --chunks or --chunk-size fixed it): its chunks in order, at least three, until they took
// enough_seconds, or only the first when it alone took heavy_seconds.
// Otherwise prefix chunks of `data` (or of `range`; `total_records` in all): one record;
// then (unless it was heavy, see CalibrationLimits::heavy_seconds) one big enough that
// the per-record cost shows (0.1 x total / the speedup the first record's CPU share allows:
// cores, or max_waiting_workers for waiting work), with another of its size beside it on a
// thread of its own (CalibrationLimits::side_by_side); then doubling sizes while the whole
// calibration took under enough_seconds. Never more than the records fraction. Stops at
// the first failed chunk (recorded in `error` and `failed`, not kept). `header` (--header)
// is sent before each chunk's records, as the job does.
Calibration Calibrate(const TaskDef& task, const std::vector<std::string>& args,
                      std::string_view data, const std::optional<IntRange>& range,
                      const std::vector<ChunkSpec>& plan, uint64_t total_records,
                      const CalibrationLimits& limits = {}, std::string_view header = {});

// After ChooseMode chose serial for the records left (`in`, fitted to `cal`): the size of
// the next chunk to run serially and measure before choosing again, or 0 to stop checking.
// Doubling sizes from the calibration's last; each big enough that the model's start-up is
// at most a tenth of it and no bigger than serial mode's chunks (4 MiB of input); never
// more than half the records left, and only while the calibration plus the chunk's
// predicted time stay within keep_measuring_seconds and its outputs within
// keep_measuring_bytes. Work that is all start-up (no per-record cost) is not checked: one
// chunk for the rest is best whatever it costs.
uint64_t KeepMeasuringChunk(const AutoInputs& in, const Calibration& cal,
                            const CalibrationLimits& limits);

// --header: the input's first line with its newline (all of it if it has none).
std::string_view HeaderLine(std::string_view input);

// The cost model fitted to the calibration (least squares over its chunks' sizes and
// times; with fewer than two sizes everything is booked per record, the first chunk left
// out when there are others, and a per-record part
// under a fifth of the start-up in the biggest chunk is noise, booked per chunk), for the records
// left: `total_records` and `total_bytes` are the whole job's.
AutoInputs FitCostModel(const Calibration& cal, uint64_t total_records, uint64_t total_bytes);

// The whole plan: the calibration's chunks, the one that failed (if any), then the rest of
// the input in `chunks` chunks, with ids, record numbers and byte offsets following them.
// `index`: the input's lines as counted before the calibration (ignored for a range).
std::vector<ChunkSpec> PlanRest(const Calibration& cal, std::string_view data,
                                const std::optional<IntRange>& range, uint64_t chunks,
                                const RecordIndex& index);

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
  // Predicted wall time of the whole job: the calibration plus the estimate for the rest;
  // 0 (no prediction) when the calibration kept no chunk (its first failed): the plan then
  // rests on an assumption (ChooseMode's "unknown" inputs), not a measurement.
  double PredictedSeconds() const {
    return calibration.chunks.empty() ? 0 : calibration.wall + choice.estimate_seconds;
  }
};

// Why auto mode must not calibrate and plan this job itself, or "" if it may: options that
// ask for worker processes, options whose chunk plan is the job's own (--null,
// --record-size, --block, --state), an input so big that planning it here would touch
// every page at once (the job then plans it in bounded memory), or a pass-through task
// (TaskDef::run_view, identity): its output is slices of its input, written from the
// input's mapping, so there is nothing to compute and nothing to measure; counting the
// records and calibrating would only touch every page first. Auto then runs
// UncalibratedMode().
std::string CalibrationRuledOut(const JobConfig& config, const TaskDef& task, uint64_t input_bytes);

// The mode auto runs when CalibrationRuledOut(config, task, input_bytes) is not "":
// processes for flags only workers honour and --state (its own resume plan); serial for a
// pass-through task, at any size (any other mode would only add hand-offs to the same
// writes); processes for other tasks' inputs over 256 MiB (planned in bounded memory,
// shipped to workers); threads, one per core or
// -j, for the other reasons (--null, --record-size, --block: the job's own chunk plan), as
// a local job's chunks cost a thread less than a worker process.
Mode UncalibratedMode(const JobConfig& config, const TaskDef& task, uint64_t input_bytes);

// Calibrates and plans the job. Call only when CalibrationRuledOut(config, ...) is "".
// With --header, `data` is the whole input: the header line is sent before every chunk,
// as PlanJob's plan does, and the chunks' offsets count it.
// `consumed(n)` is told when the first n bytes of `data` need not stay in memory (planning
// touches every page; the job releases them as it goes). `file`: the open file `data`
// shows, read to count its records (FileBacking).
AutoPlan PlanAuto(const JobConfig& config, const TaskDef& task, std::string_view data,
                  uint32_t cores, const ConsumedFn& consumed = {}, FileBacking file = {});

// Hands the calibration's outputs to the sink and settles its chunks in the scheduler as
// attempt 1 each (Scheduler::MarkRun), so the chosen mode runs only the rest (the outputs
// are moved out); records each as an attempt of worker 0 (the coordinator's thread, as
// serial mode's only worker is) for --joblog, --trace, --stats-json and progress. A failed
// calibration chunk is settled as a failed attempt 1 of worker 0 (--retries decides); a
// stopped one as a free attempt 1 (Scheduler::ReleaseAttempt), logged as failed.
// Returns a write error, if any.
Status ApplyCalibration(AutoPlan& plan, const PlannedJob& job, Scheduler& scheduler,
                        ResultSink& sink, Telemetry& telemetry);

}  // namespace fanout
