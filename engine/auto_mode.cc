#include "engine/auto_mode.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stop_token>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/measured_run.h"
#include "common/unique_fd.h"
#include "common/warm_task.h"
#include "engine/interrupt.h"
#include "engine/stop_alarm.h"

namespace fanout {
namespace {

constexpr double kWaitingCpuFraction = 0.2;    // below: the task mostly waits
constexpr double kCpuBoundFraction = 0.8;      // above: never more workers than cores
constexpr uint64_t kMaxChunkBytes = 4u << 20;  // big chunks fault in fresh output pages
constexpr double kParallelMustWin = 0.9;       // parallel only if clearly faster...
constexpr double kMinGainSeconds = 0.002;      // ...and by more than timing noise
// Records are not all alike and machines are shared: a plan's makespan is its rounds of
// chunks plus this fraction of one chunk, the tail that finer chunks shorten.
constexpr double kTailFraction = 0.25;
constexpr double kKeepMeasuringStartShare = 0.1;  // a serial check's start-up, at most
// A start-up fitted under this is no process's (fork+exec alone takes longer): checking it
// costs at most that once (KeepMeasuringChunk).
constexpr double kProbeStartSeconds = 0.0005;
constexpr uint64_t kMaxChunksPerWorker = 64;  // chunk counts tried: W, 2W, 4W, ... 64W
// A serial plan's chunks: at most this many times the biggest chunk measured, while the
// extra chunks' start-ups cost at most kExtrapolationStartShare of the estimate.
constexpr double kMaxExtrapolation = 2;
constexpr double kExtrapolationStartShare = 0.05;
constexpr uint64_t kSerialChunksPerCore = 4;  // serial mode's default plan: 4 a core
// A first record at least this slow (a command's start) has its per-record calibration
// chunk run beside a second one (RunNextPairSideBySide): a thread's start is then noise.
constexpr double kSideBySideFirstSeconds = 0.0005;

std::string Seconds(double s) {
  char buf[32];
  if (s < 1e-3) {
    std::snprintf(buf, sizeof buf, "%.1f us", s * 1e6);
  } else if (s < 1) {
    std::snprintf(buf, sizeof buf, "%.1f ms", s * 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f s", s);
  }
  return buf;
}

// "1.2 ms (40% CPU)", or "0" when nothing was measured.
std::string Cost(double wall, double cpu) {
  if (wall <= 0) return "0";
  return Seconds(wall) + " (" + std::to_string(static_cast<int>(std::lround(100 * cpu / wall))) +
         "% CPU)";
}

// The bytes a chunk lands in freshly grown buffers, per input byte: its output, and in
// worker processes its input as well (a message). An exec task's input is written to the
// command from the job's mapping, so a filter (grep, awk's counts, wc) that prints little
// is bounded by what it prints, not by what it reads.
double FreshPerInputByte(const AutoInputs& in) {
  return in.output_per_input + (in.needs_processes ? 1 : 0);
}

// At least enough chunks to keep each one's fresh bytes under kMaxChunkBytes; never more
// than records.
uint64_t BoundChunks(const AutoInputs& in, uint64_t chunks) {
  double fresh = static_cast<double>(in.bytes) * FreshPerInputByte(in);
  chunks = std::max<uint64_t>(chunks, static_cast<uint64_t>(std::ceil(fresh / kMaxChunkBytes)));
  if (in.superlinear_records > 0) {  // and none bigger than the cheapest size measured
    chunks = std::max(chunks, (in.records + in.superlinear_records - 1) / in.superlinear_records);
  }
  return std::clamp<uint64_t>(chunks, 1, std::max<uint64_t>(in.records, 1));
}

// The cost model's wall time for the records left in `chunks` chunks on `workers` workers
// (1: serial, no dispatch), with `start` paid once and `chunk_cost` per chunk of dispatch.
double Estimate(const AutoInputs& in, uint32_t workers, uint64_t chunks, double start,
                double chunk_cost, double byte_seconds) {
  double n = static_cast<double>(in.records), c = static_cast<double>(chunks);
  double chunk_wall = in.chunk_seconds + in.record_seconds * n / c;
  double chunk_cpu = std::min(in.chunk_cpu_seconds + in.record_cpu_seconds * n / c, chunk_wall);
  double cores = std::max<uint32_t>(in.cores, 1);
  if (workers <= 1) return c * chunk_wall;
  double rounds = std::ceil(c / workers);
  double concurrent = std::min<double>({static_cast<double>(workers), c, cores});
  double run = std::max(rounds * chunk_wall, c * chunk_cpu / concurrent);
  // The coordinator alone writes the output and touches every input page once: the part
  // of the job no worker count shortens (Amdahl).
  double moved = static_cast<double>(in.bytes) * (1 + in.output_per_input) * byte_seconds;
  double tail = kTailFraction * chunk_wall;
  return start + std::max(run + tail, moved) + c * chunk_cost / workers;
}

// The most records a serial chunk should hold while chunks are cheap (0: no bound):
// kMaxExtrapolation times the biggest chunk measured, and no more than serial mode's own
// chunks (kSerialChunksPerCore a core over the whole job).
uint64_t SerialChunkRecords(const AutoInputs& in) {
  if (in.measured_records == 0) return 0;
  uint64_t per_core = in.total_records / (kSerialChunksPerCore * std::max<uint32_t>(in.cores, 1));
  uint64_t most =
      std::min(static_cast<uint64_t>(kMaxExtrapolation * static_cast<double>(in.measured_records)),
               std::max<uint64_t>(per_core, 1));
  if (in.superlinear_records > 0) most = std::min(most, in.superlinear_records);
  return std::max<uint64_t>(1, most);
}

// Serial mode's chunk count for the records left: as few as BoundChunks allows, or more so
// that none is over SerialChunkRecords, as far as their start-ups stay within
// kExtrapolationStartShare of the work (an in-process task's chunk costs microseconds; a
// process start per chunk soon ends the split).
uint64_t SerialChunks(const AutoInputs& in) {
  uint64_t chunks = BoundChunks(in, 1), most = SerialChunkRecords(in);
  if (most == 0) return chunks;
  uint64_t wanted = (in.records + most - 1) / most;
  if (wanted <= 1) return chunks;
  double work = in.chunk_seconds + in.record_seconds * static_cast<double>(in.records);
  double affordable = in.chunk_seconds > 0
                          ? std::floor(kExtrapolationStartShare * work / in.chunk_seconds)
                          : static_cast<double>(wanted);
  auto extra = static_cast<uint64_t>(std::min(affordable, static_cast<double>(wanted - 1)));
  return std::max(chunks, BoundChunks(in, 1 + extra));
}

}  // namespace

AutoChoice ChooseMode(const AutoInputs& in, const DispatchCosts& costs) {
  AutoChoice c;
  if (in.records == 0 && !in.needs_processes) {
    c.reason = "the calibration ran every record";
    return c;
  }
  uint32_t cores = std::max<uint32_t>(in.cores, 1);
  if (in.heavy_start) {
    // Every chunk pays the start-up, and what the records cost is unknown: one chunk per
    // worker (a core each, or -j), side by side, pays it once in wall time, as one serial
    // chunk would, and is the fastest split if the records turn out to cost much. More
    // chunks only where 4 MiB a chunk asks for them, in whole rounds.
    uint32_t workers = in.jobs ? in.jobs : cores;
    if (!in.needs_processes) {
      workers = static_cast<uint32_t>(std::clamp<uint64_t>(in.records, 1, workers));
    }
    uint64_t rounds = (BoundChunks(in, workers) + workers - 1) / workers;
    uint64_t chunks = std::min<uint64_t>(rounds * workers, std::max<uint64_t>(in.records, 1));
    c.mode = in.needs_processes ? Mode::kProcesses : workers > 1 ? Mode::kThreads : Mode::kSerial;
    c.workers = workers;
    c.chunks = chunks;
    c.estimate_seconds = in.chunk_seconds * static_cast<double>(rounds);
    c.reason = "a start-up of " + Cost(in.chunk_seconds, in.chunk_cpu_seconds) +
               " in the first record alone, the records' own cost unknown; " +
               std::to_string(in.records) + " records left in " + std::to_string(chunks) +
               (chunks == 1 ? " chunk" : " chunks") +
               (workers > 1 ? " on " + std::to_string(workers) +
                                  " workers side by side, each "
                                  "paying the start-up once"
                            : "");
    return c;
  }
  double n = static_cast<double>(in.records);
  // The work in one chunk per worker (the least start-up any parallel plan pays).
  double wall = in.chunk_seconds + in.record_seconds * n;
  double cpu = std::min(in.chunk_cpu_seconds + in.record_cpu_seconds * n, wall);
  double cpu_share = wall > 0 ? cpu / wall : 1;
  bool waiting = cpu_share < kWaitingCpuFraction;
  std::string figures = "start-up " + Cost(in.chunk_seconds, in.chunk_cpu_seconds) +
                        " per chunk, " + Cost(in.record_seconds, in.record_cpu_seconds) +
                        " per record; " + std::to_string(in.records) +
                        " records left = " + Seconds(wall) + " of " +
                        (waiting                          ? "mostly waiting"
                         : cpu_share >= kCpuBoundFraction ? "CPU"
                                                          : "mixed") +
                        " work";
  if (in.slot_start_seconds > 0) {
    figures += "; a warm command starting in " + Seconds(in.slot_start_seconds) + " per slot";
  }
  // Worker counts to try: the cores; for work that waits, more, up to the cap.
  uint32_t cap = cpu_share >= kCpuBoundFraction ? cores : std::max(in.max_waiting_workers, cores);
  cap = static_cast<uint32_t>(std::clamp<uint64_t>(in.records, 1, cap));
  std::vector<uint32_t> worker_counts;
  if (in.jobs) {
    worker_counts.push_back(
        in.needs_processes ? in.jobs
                           : static_cast<uint32_t>(std::clamp<uint64_t>(in.records, 1, in.jobs)));
  } else {
    for (uint32_t w = std::min(cores, cap); w < cap; w *= 2) worker_counts.push_back(w);
    worker_counts.push_back(cap);
  }
  double chunk_cost = in.needs_processes ? costs.process_chunk_seconds : costs.thread_chunk_seconds;
  uint32_t best_workers = 0;
  uint64_t best_chunks = 0;
  double best = 0;
  for (uint32_t w : worker_counts) {
    if (w <= 1 && !in.needs_processes) continue;
    double start =
        in.slot_start_seconds + (in.needs_processes
                                     ? costs.process_start_seconds
                                     : costs.thread_start_seconds + w * costs.worker_start_seconds);
    std::vector<uint64_t> chunk_counts;
    if (in.chunks) {
      chunk_counts.push_back(in.chunks);
    } else {
      for (uint64_t k = 1; k <= kMaxChunksPerWorker; k *= 2)
        chunk_counts.push_back(BoundChunks(in, k * w));
    }
    for (uint64_t chunks : chunk_counts) {
      double t = Estimate(in, w, chunks, start, chunk_cost, costs.coordinator_byte_seconds);
      // Ties go to fewer workers and fewer chunks (tried first): 1% must be won.
      if (best_workers == 0 || t < best * 0.99) {
        best = t;
        best_workers = w;
        best_chunks = chunks;
      }
    }
  }
  if (in.needs_processes) {
    c.mode = Mode::kProcesses;
    c.workers = best_workers;
    c.chunks = best_chunks;
    c.estimate_seconds = best;
    c.reason = figures + "; flags that only worker processes honour ask for them";
    return c;
  }
  uint64_t serial_chunks = in.chunks ? in.chunks : SerialChunks(in);
  double serial = Estimate(in, 1, serial_chunks, 0, 0, 0);
  if (best_workers <= 1 || best >= kParallelMustWin * serial || serial - best < kMinGainSeconds) {
    c.chunks = serial_chunks;
    c.estimate_seconds = serial;
    c.reason = figures + "; serial ~" + Seconds(serial) +
               (best_workers > 1 ? "; " + std::to_string(best_workers) + " workers would take ~" +
                                       Seconds(best) + " with dispatch and output"
                                 : "") +
               ", not clearly faster than serial";
    return c;
  }
  c.mode = Mode::kThreads;
  c.workers = best_workers;
  c.chunks = best_chunks;
  c.estimate_seconds = best;
  c.reason = figures + "; ~" + Seconds(best) + " on " + std::to_string(best_workers) +
             " threads in " + std::to_string(best_chunks) + " chunks (serial ~" + Seconds(serial) +
             "; in-process threads dispatch cheaper than worker processes)";
  return c;
}

namespace {

constexpr uint64_t kMinPlanChunks = 3;

// Seconds this thread has waited on a run queue (/proc/thread-self/schedstat), or 0. The
// file stays open for the thread (one read a chunk, not four system calls).
double RunQueueSeconds() {
  thread_local UniqueFd fd(open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return 0;
  char text[128];
  ssize_t n = pread(fd.get(), text, sizeof text - 1, 0);
  if (n <= 0) return 0;
  text[n] = 0;
  unsigned long long running = 0, waiting = 0;
  return std::sscanf(text, "%llu %llu", &running, &waiting) == 2
             ? static_cast<double>(waiting) * 1e-9
             : 0;
}

// One calibration chunk as it ran (attempt 1): what Keep records in a Calibration.
struct ChunkRun {
  ChunkSpec spec;
  std::chrono::steady_clock::time_point started;
  Measured measured;
  Blob output;
  double queued = 0;     // of its wall time, queued for a CPU (Calibration::queued_seconds)
  bool stopped = false;  // by CalibrationLimits::stop_seconds (Calibration::stopped)
  bool beside = false;   // on the second thread (Calibration::beside)
};

// Runs `spec` to completion as attempt 1. `mark` (the calling thread's; nullptr on another
// thread): its run-queue time when its last chunk ended, taken as this one's start, and
// set to this one's end. The bookkeeping between two chunks is then booked to the second
// (microseconds, and queued time is bounded by the time not on a CPU): /proc reads were a
// third of what a chunk of a small product cost.
ChunkRun Run(const TaskDef& task, const std::vector<std::string>& args, std::string_view data,
             std::string_view header, const ChunkSpec& spec, double stop_seconds, double* mark) {
  ChunkRun run;
  run.spec = spec;
  run.started = std::chrono::steady_clock::now();
  ChunkInput in;
  in.data = spec.range ? std::string_view() : data.substr(spec.begin, spec.bytes());
  std::string storage;
  if (!header.empty() && !spec.range) {
    storage.reserve(header.size() + in.data.size());
    storage.assign(header);
    storage.append(in.data);
    in.data = storage;
  }
  in.range = spec.range;
  in.chunk_id = spec.id;
  in.attempt = 1;
  double queued = mark && *mark >= 0 ? *mark : RunQueueSeconds();
  std::stop_source stop;
  std::optional<StopAlarm> alarm;
  alarm.emplace(stop, std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(stop_seconds)));
  Measured& m = run.measured;
  if (task.run_view && !spec.range) {
    // A pass-through task (identity) is not copied, as serial mode does not copy it: the
    // output borrows the job's input mapping, which outlives the job's results. A view
    // outside it (the --header copy above) is copied.
    std::string_view view;
    m = MeasuredView(task, in, args, view);
    run.output = Blob::BorrowedIfWithin(view, data);
  } else {
    std::string bytes;
    m = MeasuredRun(task, in, args, bytes, stop.get_token());
    run.output = Blob(std::move(bytes));
  }
  alarm.reset();
  double ended = RunQueueSeconds();
  run.queued = ended - queued;
  if (mark) *mark = ended;
  if (stop.stop_requested() && Interrupt::Requested()) {
    m.status = Status::Error("interrupted");
  } else if (stop.stop_requested()) {
    m.status = Status::Error("stopped by auto mode's calibration after " + Seconds(m.wall_seconds) +
                             " (run again as the next attempt)");
    run.stopped = true;
  }
  return run;
}

// Records `run` in `cal`: kept if it succeeded (true), else as the calibration's failure.
bool Keep(Calibration& cal, ChunkRun&& run) {
  const Measured& m = run.measured;
  if (!m.status.ok()) {
    cal.error = m.status;
    cal.stopped = run.stopped;
    cal.failed = run.spec;
    cal.failed_started = run.started;
    cal.failed_wall = m.wall_seconds;
    cal.failed_cpu = m.cpu_seconds;
    cal.failed_beside = run.beside;
    return false;
  }
  cal.chunks.push_back(run.spec);
  cal.started.push_back(run.started);
  cal.beside.push_back(run.beside);
  cal.outputs.push_back(std::move(run.output));
  cal.cpu_seconds.push_back(m.cpu_seconds);
  cal.wall_seconds.push_back(m.wall_seconds);
  cal.queued_seconds.push_back(std::clamp(run.queued, 0.0, m.wall_seconds - m.cpu_seconds));
  cal.records += run.spec.records;
  cal.bytes += run.spec.bytes();
  cal.wall += m.wall_seconds;
  cal.cpu += m.cpu_seconds;
  cal.output_bytes += cal.outputs.back().size();
  return true;
}

// Runs `spec` to completion as attempt 1 and keeps it; false if it failed (then not kept).
bool RunOne(const TaskDef& task, const std::vector<std::string>& args, std::string_view data,
            std::string_view header, const ChunkSpec& spec, double stop_seconds, Calibration& cal) {
  return Keep(cal, Run(task, args, data, header, spec, stop_seconds, &cal.queue_mark));
}

// The prefix chunk of `records` records that starts at record `first` (byte `begin`).
ChunkSpec PrefixChunk(std::string_view data, const std::optional<IntRange>& range, uint64_t id,
                      uint64_t first, uint64_t begin, uint64_t records) {
  ChunkSpec spec;
  spec.id = id;
  spec.first_record = first;
  spec.records = records;
  if (range) {
    int64_t lo = range->lo + static_cast<int64_t>(first);
    spec.range = IntRange{lo, lo + static_cast<int64_t>(spec.records)};
  } else {
    spec.begin = begin;
    spec.end = SkipLines(data, spec.begin, spec.records);
  }
  return spec;
}

// Runs the next `records` records after the calibration's (a prefix chunk) with RunOne.
bool RunNextPrefix(const TaskDef& task, const std::vector<std::string>& args, std::string_view data,
                   const std::optional<IntRange>& range, std::string_view header, uint64_t records,
                   double stop_seconds, Calibration& cal) {
  ChunkSpec spec = PrefixChunk(data, range, cal.chunks.size(), cal.records, cal.bytes, records);
  return RunOne(task, args, data, header, spec, stop_seconds, cal);
}

// Runs the next two prefix chunks of `records` records each side by side, the second on a
// thread of its own, and keeps them in order as two RunNextPrefix calls would; false if
// either failed. A failed first chunk also drops the second's output: its records run again
// in the job, so nothing runs twice unless something failed.
bool RunNextPairSideBySide(const TaskDef& task, const std::vector<std::string>& args,
                           std::string_view data, const std::optional<IntRange>& range,
                           std::string_view header, uint64_t records, double stop_seconds,
                           Calibration& cal) {
  ChunkSpec first = PrefixChunk(data, range, cal.chunks.size(), cal.records, cal.bytes, records);
  ChunkSpec second = PrefixChunk(data, range, first.id + 1, cal.records + records,
                                 cal.bytes + first.bytes(), records);
  ChunkRun a, b;
  {
    std::jthread side([&] {
      b = Run(task, args, data, header, second, stop_seconds, nullptr);
      b.beside = true;
    });
    a = Run(task, args, data, header, first, stop_seconds, &cal.queue_mark);
  }
  return Keep(cal, std::move(a)) && Keep(cal, std::move(b));
}

}  // namespace

Calibration Calibrate(const TaskDef& task, const std::vector<std::string>& args,
                      std::string_view data, const std::optional<IntRange>& range,
                      const std::vector<ChunkSpec>& plan, uint64_t total,
                      const CalibrationLimits& limits, std::string_view header) {
  Calibration cal;
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // The time the machine gave the calibration: elapsed less what its thread spent ready but
  // not running (other processes' turn). "Enough" is judged by it, so a busy machine does
  // not cut the calibration short and make tiny work look big; heavy_seconds still bounds
  // the wall time.
  auto given = [&] {
    double queued = 0;
    for (double q : cal.queued_seconds) queued += q;
    return std::max(0.0, elapsed() - queued);
  };
  if (!plan.empty()) {
    // The user's chunks, in order: at least three (the first runs cold) while they are
    // quick, until they took enough_seconds; a slow one ends it.
    for (uint64_t i = 0; i < plan.size(); ++i) {
      if (i > 0 && ((i >= kMinPlanChunks && given() >= limits.enough_seconds) ||
                    elapsed() >= limits.heavy_seconds)) {
        break;
      }
      if (!RunOne(task, args, data, header, plan[i], limits.stop_seconds, cal)) break;
    }
    return cal;
  }
  uint64_t budget = std::min(total, std::max<uint64_t>(3, total / limits.max_records_fraction));
  auto run = [&](uint64_t size) {
    return RunNextPrefix(task, args, data, range, header, std::min(size, budget - cal.records),
                         limits.stop_seconds, cal);
  };
  if (budget == 0 || !run(1) || cal.records >= budget) return cal;
  double first_wall = cal.wall_seconds[0], first_cpu = cal.cpu_seconds[0];
  bool waits = first_cpu < kWaitingCpuFraction * first_wall;
  if (waits && first_wall >= limits.heavy_seconds &&
      total - cal.records <= limits.max_waiting_workers) {
    return cal;
  }
  if (!waits && first_wall >= limits.heavy_seconds && limits.heavy_start_ends) {
    cal.heavy_start = true;
    return cal;
  }
  // Big enough that b shows over a's noise, small enough to cost a tenth of what the
  // fastest plan could take (a speedup of the cores, or of the waiting workers).
  double speedup = waits ? std::max(limits.max_waiting_workers, limits.cores) : limits.cores;
  uint64_t size =
      std::max<uint64_t>(2, static_cast<uint64_t>(0.1 * total / std::max(speedup, 1.0)));
  if (limits.side_by_side && limits.cores >= 2 && first_wall >= kSideBySideFirstSeconds &&
      budget - cal.records >= 2 * size) {
    // The chunk that shows the per-record cost, and another of its size beside it on the
    // next core: the job's first parallel work, not a core left idle while one chunk is
    // measured (a tenth of the fastest plan's time, on one core of several). Two points
    // of one size also halve the noise in what a record costs.
    if (!RunNextPairSideBySide(task, args, data, range, header, size, limits.stop_seconds, cal)) {
      return cal;
    }
  } else if (!run(size)) {
    return cal;
  }
  for (size *= 2; cal.records < budget && given() < limits.enough_seconds; size *= 2) {
    if (!run(size)) break;
  }
  return cal;
}

namespace {

constexpr double kNoiseFraction = 0.2;
// A chunk's records cost clearly more each than a chunk half its size's at this ratio
// (SuperlinearRecords), among chunks that took at least kSuperlinearLeastSeconds.
constexpr double kSuperlinear = 1.25;
constexpr double kSuperlinearLeastSeconds = 20e-6;

// Least squares y = a + b*x over the points; false with fewer than two distinct x.
bool FitLine(const std::vector<double>& x, const std::vector<double>& y, double& a, double& b) {
  double n = static_cast<double>(x.size()), sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    sxx += x[i] * x[i];
    sxy += x[i] * y[i];
  }
  double denominator = n * sxx - sx * sx;
  if (x.size() < 2 || denominator <= 1e-9 * sxx * n) return false;
  b = (n * sxy - sx * sy) / denominator;
  a = (sy - b * sx) / n;
  return true;
}

// A fitted a and b, kept non-negative: a negative slope (the first, cold chunk was slow)
// books everything per chunk; a negative intercept books everything per record.
void FitCost(const std::vector<double>& x, const std::vector<double>& y, double& a, double& b) {
  // Three chunks or more, the later ones of at least two sizes: the first (one record, run
  // cold: the task's code and data touched for the first time) is left out. A cold
  // microsecond-scale first record otherwise reads as tens of microseconds of start-up in
  // every chunk, and a serial plan keeps its chunks big for it (SerialChunks).
  if (x.size() >= 3 && std::any_of(x.begin() + 2, x.end(), [&](double v) { return v != x[1]; })) {
    std::vector<double> later_x(x.begin() + 1, x.end()), later_y(y.begin() + 1, y.end());
    return FitCost(later_x, later_y, a, b);
  }
  double sx = 0, sy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
  }
  double biggest = x.empty() ? 0 : *std::max_element(x.begin(), x.end());
  if (!FitLine(x, y, a, b)) {
    // One size (the user's chunks): all per record, leaving out the first, cold chunk
    // when others were measured.
    if (x.size() > 1) {
      sx -= x[0];
      sy -= y[0];
    }
    a = 0;
    b = sx > 0 ? sy / sx : 0;
  } else if (b * biggest < kNoiseFraction * a) {
    // The per-record part of the biggest chunk is within the start-up's noise (a shared
    // machine varies a process start by more than that): book it all per chunk.
    b = 0;
    a = sy / static_cast<double>(x.size());
  } else if (a < 0) {
    a = 0;
    b = sx > 0 ? sy / sx : 0;
  }
}

// FitCost, then no start-up dearer than the whole first chunk (run cold: an upper bound on
// what a chunk costs once). Two later chunks of near sizes can fit a slope within their
// noise and book everything per chunk; when the records then show over that noise, the
// first chunk refutes the start-up: the range product (1, 999 and 1,499 numbers) read as
// 229 us a chunk and nothing a record, and serial ran the 17,500 numbers left as one
// chunk, 4 ms of work where 8 chunks took 2.
void FitCostWithinFirstChunk(const std::vector<double>& x, const std::vector<double>& y, double& a,
                             double& b) {
  FitCost(x, y, a, b);
  if (x.size() < 2 || a <= y[0]) return;
  double sx = 0, sy = 0, biggest = 0;
  for (size_t i = 1; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i] - y[0];
    biggest = std::max(biggest, x[i]);
  }
  double capped_b = sx > 0 ? std::max(0.0, sy / sx) : 0;
  if (capped_b * biggest < kNoiseFraction * y[0]) return;  // still within the noise
  a = y[0];
  b = capped_b;
}

// AutoInputs::superlinear_records: the per-record cost of each chunk but the first (run
// cold), less what its thread spent queued for a CPU (a busy machine's delay is not the
// work's), compared across sizes.
uint64_t SuperlinearRecords(const Calibration& cal) {
  std::vector<double> per(cal.chunks.size(), 0);
  size_t cheapest = 0;
  for (size_t i = 1; i < cal.chunks.size(); ++i) {
    double busy = cal.wall_seconds[i] - (i < cal.queued_seconds.size() ? cal.queued_seconds[i] : 0);
    if (cal.chunks[i].records == 0 || busy < kSuperlinearLeastSeconds) continue;
    per[i] = busy / static_cast<double>(cal.chunks[i].records);
    if (cheapest == 0 || per[i] < per[cheapest]) cheapest = i;
  }
  if (cheapest == 0) return 0;
  for (size_t i = 1; i < cal.chunks.size(); ++i) {
    if (per[i] > 0 && cal.chunks[i].records >= 2 * cal.chunks[cheapest].records &&
        per[i] >= kSuperlinear * per[cheapest]) {
      return cal.chunks[cheapest].records;
    }
  }
  return 0;
}

}  // namespace

AutoInputs FitCostModel(const Calibration& cal, uint64_t total_records, uint64_t total_bytes) {
  AutoInputs in;
  in.records = total_records - cal.records;
  in.total_records = total_records;
  in.bytes = total_bytes - cal.bytes;
  std::vector<double> sizes;
  for (const ChunkSpec& c : cal.chunks) {
    sizes.push_back(static_cast<double>(c.records));
    in.measured_records = std::max(in.measured_records, c.records);
  }
  in.superlinear_records = SuperlinearRecords(cal);
  FitCostWithinFirstChunk(sizes, cal.wall_seconds, in.chunk_seconds, in.record_seconds);
  // Time this thread spent ready but not running (a busy machine) is CPU the task
  // wanted, not waiting that more workers could overlap.
  std::vector<double> cpu = cal.cpu_seconds;
  for (size_t i = 0; i < cpu.size() && i < cal.queued_seconds.size(); ++i) {
    cpu[i] += cal.queued_seconds[i];
  }
  FitCostWithinFirstChunk(sizes, cpu, in.chunk_cpu_seconds, in.record_cpu_seconds);
  // On one core a chunk's wall time grows at least as fast as its CPU time. A wall fit
  // flatter than the CPU fit is a busy machine's noise (a small chunk delayed as long as a
  // bigger one), unless the task runs on several cores (CPU above wall in some chunk): take
  // the CPU's slope through the measured mean instead. CPU time barely moves under load.
  bool one_core = true;
  double mean_records = 0, mean_wall = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    one_core = one_core && i < cpu.size() && cpu[i] <= cal.wall_seconds[i] * 1.05;
    mean_records += sizes[i] / static_cast<double>(sizes.size());
    mean_wall += cal.wall_seconds[i] / static_cast<double>(sizes.size());
  }
  if (one_core && in.record_cpu_seconds > in.record_seconds) {
    in.record_seconds = in.record_cpu_seconds;
    in.chunk_seconds = std::max(0.0, mean_wall - in.record_seconds * mean_records);
  }
  // CPU beyond the wall time (a multi-threaded command) still occupies one worker's slot.
  in.chunk_cpu_seconds = std::min(in.chunk_cpu_seconds, in.chunk_seconds);
  in.record_cpu_seconds = std::min(in.record_cpu_seconds, in.record_seconds);
  if (cal.stopped && cal.failed && cal.failed->records > 0) {
    // A chunk stopped at the deadline: its records take at least that long.
    double records = static_cast<double>(cal.failed->records);
    if (in.chunk_seconds + in.record_seconds * records < cal.failed_wall) {
      double share = cal.failed_wall > 0 ? std::min(cal.failed_cpu / cal.failed_wall, 1.0) : 1;
      in.record_seconds = cal.failed_wall / records;
      in.record_cpu_seconds = in.record_seconds * share;
      in.chunk_seconds = in.chunk_cpu_seconds = 0;
    }
  } else if (cal.chunks.empty()) {  // unknown (a failure): assume work worth spreading
    in.record_seconds = in.record_cpu_seconds = 1e-3;
  } else if (cal.heavy_start) {
    // One record measured: its time is the start-up; what the records cost is unknown.
    in.heavy_start = true;
    in.chunk_seconds = cal.wall_seconds[0];
    in.chunk_cpu_seconds = std::min(cpu[0], in.chunk_seconds);
    in.record_seconds = in.record_cpu_seconds = 0;
  }
  // Unknown (nothing kept): assume the output is as big as the input.
  in.output_per_input =
      cal.bytes > 0 ? static_cast<double>(cal.output_bytes) / static_cast<double>(cal.bytes) : 1;
  return in;
}

std::vector<ChunkSpec> PlanRest(const Calibration& cal, std::string_view data,
                                const std::optional<IntRange>& range, uint64_t chunks,
                                const RecordIndex& index) {
  // The calibration's chunks, and the one that failed (its attempt 1 is settled by
  // ApplyCalibration; the chosen mode runs its retries).
  std::vector<ChunkSpec> plan = cal.chunks;
  uint64_t records = cal.records, bytes = cal.bytes;
  if (cal.failed) {
    plan.push_back(*cal.failed);
    records += cal.failed->records;
    if (!range) bytes = cal.failed->end;
  }
  uint64_t total = range ? static_cast<uint64_t>(range->hi - range->lo) : 0;
  if (range ? records >= total : bytes >= data.size()) return plan;
  std::vector<ChunkSpec> rest;
  if (range) {
    ChunkingOptions options;
    options.chunks = std::max<uint64_t>(chunks, 1);
    IntRange left{range->lo + static_cast<int64_t>(records), range->hi};
    rest = PlanRangeChunks(left, options, options.chunks);
    for (ChunkSpec& c : rest) c.first_record += records;
  } else {
    rest = PlanIndexedChunks(data, index, bytes, records, chunks);
  }
  uint64_t first_id = plan.size();
  for (ChunkSpec& c : rest) {
    c.id += first_id;
    plan.push_back(c);
  }
  return plan;
}

namespace {

// Flags that only worker processes honour: asking for them asks for processes.

constexpr uint64_t kMaxCalibratedInputBytes = 256u << 20;

}  // namespace

uint64_t DefaultChunksPerWorker(const TaskDef& task, std::span<const std::string> args) {
  return IsWarmTask(task, args) ? 8 : 4;
}

std::vector<std::string> ProcessOnlyFlags(const JobConfig& config) {
  std::vector<std::string> given;
  auto add = [&](bool set, const char* flag) {
    if (set) given.emplace_back(flag);
  };
  add(!config.listen.empty(), "--listen");
  add(config.scheduler.timeout.count() > 0 || config.scheduler.timeout_percent > 0, "--timeout");
  add(config.scheduler.speculate, "--speculate");
  add(!config.worker_bin.empty(), "--worker-bin");
  add(config.max_respawns >= 0, "--max-respawns");
  add(config.min_workers > 0, "--min-workers");
  add(config.wait_timeout.count() > 0, "--wait-timeout");
  add(config.local_slots > 1, "--slots");
  return given;
}

std::string CalibrationRuledOut(const JobConfig& config, const TaskDef& task,
                                uint64_t input_bytes) {
  if (auto flags = ProcessOnlyFlags(config); !flags.empty()) {
    return flags.front() + " asks for worker processes";
  }
  if (!config.state_dir.empty()) return "--state keeps the job's own chunk plan";
  // Before the size: serial mode writes a pass-through task's slices from the input at any
  // size, in the same bounded memory (1 GiB to /dev/null: 21 ms serial, 56 ms in the
  // processes mode an input over 256 MiB otherwise gets).
  if (task.run_view) {
    return "'" + task.name +
           "' passes its input through: nothing to compute in parallel, its slices are "
           "written straight from the input";
  }
  if (input_bytes > kMaxCalibratedInputBytes) {
    return "an input over 256 MiB is planned in bounded memory, not calibrated";
  }
  const ChunkingOptions& c = config.chunking;
  if (c.kind != RecordKind::kLines || c.block_bytes > 0) {
    return "--null, --record-size and --block keep the job's own chunk plan";
  }
  return "";
}

Mode UncalibratedMode(const JobConfig& config, const TaskDef& task, uint64_t input_bytes) {
  if (!ProcessOnlyFlags(config).empty() || !config.state_dir.empty()) return Mode::kProcesses;
  if (task.run_view) return Mode::kSerial;
  return input_bytes > kMaxCalibratedInputBytes ? Mode::kProcesses : Mode::kThreads;
}

namespace {

constexpr std::chrono::milliseconds kWarmUpLimit{60000};  // a warm command's READY, at most

}  // namespace

std::string AutoPlan::Summary(size_t total_chunks) const {
  return std::string(ModeName(choice.mode)) + ", " + std::to_string(choice.workers) + " workers, " +
         std::to_string(total_chunks) + " chunks (" + std::to_string(calibration.chunks.size()) +
         " run while calibrating): " + choice.reason;
}

uint64_t KeepMeasuringChunk(const AutoInputs& in, const Calibration& cal,
                            const CalibrationLimits& limits) {
  double a = in.chunk_seconds, b = in.record_seconds;
  if (in.records < 2 || cal.output_bytes >= limits.keep_measuring_bytes) return 0;
  double left = limits.keep_measuring_seconds - cal.wall;
  uint64_t last = cal.chunks.empty() ? 1 : cal.chunks.back().records;
  // The calibration's first chunk of many records (after the one-record chunk) ran cold as
  // well, and its sizes only grew: a cheap start-up is checked once against a chunk half
  // that size, measured warm, before sizes grow on. Work that grows faster than its records
  // shows only against a smaller chunk (the range product's 999 numbers read dearer a
  // number than 1,499 cold, then cost 3x as much a number as 499 warm), and a start-up fitted
  // on those cold chunks (100-230 us a chunk and nothing a record, where the product's
  // chunks cost microseconds to start) ran the 17,500 numbers left as one chunk.
  uint64_t first_sized = cal.chunks.size() >= 2 ? cal.chunks[1].records : 0;
  bool probed =
      std::any_of(cal.chunks.begin() + std::min<size_t>(cal.chunks.size(), 2), cal.chunks.end(),
                  [&](const ChunkSpec& c) { return c.records < first_sized; });
  bool probe = in.superlinear_records == 0 && !probed && first_sized >= 4 &&
               a <= kProbeStartSeconds && first_sized / 2 <= in.records / 2;
  if (probe) {
    uint64_t size = first_sized / 2;
    return a + std::max(b, 0.0) * static_cast<double>(size) <= left ? size : 0;
  }
  if (b <= 0) return 0;
  // Start-up at most kKeepMeasuringStartShare of the chunk, and doubling sizes (a few
  // chunks in all), as the calibration's.
  double least = std::ceil(a * (1 - kKeepMeasuringStartShare) / kKeepMeasuringStartShare / b);
  if (least > static_cast<double>(in.records)) return 0;
  // Work that grows faster than its records: half the cheapest size while that is also the
  // smallest measured (each smaller chunk found cheaper a record is the next to halve),
  // then that size once, which settles it: more checks of that size would each pay a
  // calibration chunk's bookkeeping (tens of microseconds) where serial mode runs the rest
  // in rounds (the product's 499-number chunks cost 20 us). Else doubling sizes.
  uint64_t next = 2 * last;
  if (in.superlinear_records > 0) {
    uint64_t smallest = UINT64_MAX;
    for (size_t i = 1; i < cal.chunks.size(); ++i)
      smallest = std::min(smallest, cal.chunks[i].records);
    if (smallest < in.superlinear_records && last == in.superlinear_records) return 0;
    next = smallest >= in.superlinear_records ? std::max<uint64_t>(in.superlinear_records / 2, 2)
                                              : in.superlinear_records;
  }
  uint64_t size = std::max<uint64_t>(next, static_cast<uint64_t>(least));
  // No bigger than a serial chunk while chunks are cheap (SerialChunkRecords).
  if (uint64_t most = SerialChunkRecords(in); most > 0 && static_cast<double>(most) >= least) {
    size = std::min(size, most);
  }
  if (in.bytes > 0 && FreshPerInputByte(in) > 0) {  // as BoundChunks bounds serial chunks
    double per_record =
        static_cast<double>(in.bytes) * FreshPerInputByte(in) / static_cast<double>(in.records);
    auto fits = static_cast<uint64_t>(static_cast<double>(kMaxChunkBytes) / per_record);
    if (fits < size) {
      if (static_cast<double>(fits) < least) return 0;
      size = std::max<uint64_t>(fits, 1);
    }
  }
  // Half the rest at most (serial runs the rest as one chunk: nothing left to check), and
  // within the time budget as the model predicts it.
  if (size > in.records / 2 || a + b * static_cast<double>(size) > left) return 0;
  return size;
}

namespace {
AutoPlan PlanAutoBody(const JobConfig& config, const TaskDef& task, std::string_view data,
                      std::string_view header, uint32_t cores, const ConsumedFn& consumed,
                      FileBacking file);
}  // namespace

std::string_view HeaderLine(std::string_view input) {
  const void* nl = std::memchr(input.data(), '\n', input.size());
  return input.substr(
      0, nl ? static_cast<size_t>(static_cast<const char*>(nl) - input.data()) + 1 : input.size());
}

AutoPlan PlanAuto(const JobConfig& config, const TaskDef& task, std::string_view all,
                  uint32_t cores, const ConsumedFn& all_consumed, FileBacking file) {
  // --header: plan and calibrate the records after the header line, then shift offsets.
  std::string_view header = config.header && !config.range ? HeaderLine(all) : "";
  std::string_view data = all.substr(header.size());
  ConsumedFn consumed;
  if (all_consumed) consumed = [&](uint64_t upto) { all_consumed(header.size() + upto); };
  if (file.fd >= 0) file.offset += header.size();
  AutoPlan plan = PlanAutoBody(config, task, data, header, cores, consumed, file);
  if (!header.empty()) {
    for (ChunkSpec& c : plan.chunks) {
      c.begin += header.size();
      c.end += header.size();
    }
    for (ChunkSpec& c : plan.calibration.chunks) {
      c.begin += header.size();
      c.end += header.size();
    }
    if (plan.status.ok() && plan.chunks.empty()) {
      // Header-only input: one chunk with no records, so the task's output header appears.
      ChunkSpec c;
      c.begin = c.end = header.size();
      plan.chunks.push_back(c);
    }
  }
  return plan;
}

namespace {

AutoPlan PlanAutoBody(const JobConfig& config, const TaskDef& task, std::string_view data,
                      std::string_view header, uint32_t cores, const ConsumedFn& consumed,
                      FileBacking file) {
  AutoPlan plan;
  const auto& range = config.range;
  bool user_plan = config.chunking.chunks || config.chunking.chunk_size;
  uint64_t default_chunks = 4ull * (config.jobs_given ? std::max(config.jobs, 1u) : cores);
  if (user_plan) {
    auto whole = range
                     ? PlanRangeChunksWithin(*range, config.chunking, default_chunks, {})
                     : PlanChunksWithin(data, config.chunking, default_chunks, {}, consumed, file);
    if (!whole.ok()) {
      plan.status = whole.status();
      return plan;
    }
    plan.chunks = std::move(whole).value();
  }
  // The input is read once to count its lines: the user's plan counted them, and the
  // rest of auto's own plan is cut from this index (PlanRest).
  RecordIndex index;
  if (!range && !user_plan) index = IndexRecords(data, RecordKind::kLines, consumed, file);
  uint64_t total = range        ? static_cast<uint64_t>(range->hi - range->lo)
                   : !user_plan ? index.records
                   : plan.chunks.empty()
                       ? 0
                       : plan.chunks.back().first_record + plan.chunks.back().records;
  // A warm command starts before the calibration, so that no chunk books its start-up
  // (which every slot pays once, not every chunk); the calibration's chunks then reuse it.
  std::optional<double> warm_start;
  WarmSpares spares;
  if (IsWarmTask(task, config.args)) {
    auto up = WarmUp(config.args, "", kWarmUpLimit);
    if (up.ok()) {
      warm_start = *up;
      // The other slots' processes start while the calibration runs on this one: at most
      // one per record beyond the first.
      uint32_t slots = config.jobs_given ? std::max(config.jobs, 1u) : std::max(cores, 1u);
      uint64_t others = std::min<uint64_t>(slots - 1, total > 0 ? total - 1 : 0);
      spares = WarmSpares(config.args, "", static_cast<uint32_t>(others));
    }
  }
  // Waiting in-process tasks (sleep) cost a parked thread each; a waiting `exec` command
  // is a whole process, and often waits on a disk or a server that many would swamp.
  uint32_t max_waiting = task.name == "exec" ? 64 : 1024;
  // A warm slot is a live interpreter for the whole job: one per core unless -j says more.
  if (warm_start) max_waiting = std::max(cores, 1u);
  CalibrationLimits limits;
  limits.cores = std::max(cores, 1u);
  // A warm command started before the calibration: a slow first record is the record's
  // own cost, not a start-up.
  limits.heavy_start_ends = !warm_start;
  limits.side_by_side = !warm_start;
  limits.max_waiting_workers = max_waiting;
  plan.calibration = Calibrate(task, config.args, data, range, plan.chunks, total, limits, header);
  Calibration& cal = plan.calibration;
  auto fit = [&] {
    AutoInputs in = FitCostModel(cal, total, range ? 0 : data.size());
    if (warm_start) in.slot_start_seconds = *warm_start;
    in.cores = cores;
    in.jobs = config.jobs_given ? config.jobs : 0;
    in.max_waiting_workers = max_waiting;
    if (user_plan) in.chunks = plan.chunks.size() - cal.chunks.size();
    return in;
  };
  AutoInputs in = fit();
  plan.choice = ChooseMode(in);
  // Serial chosen: the next chunks run here as serial mode would run them, and each is
  // measured and the choice made again (KeepMeasuringChunk), so a model fitted on a few
  // small chunks (a noisy machine, records that cost more further on, work that grows
  // faster than the records) is corrected while parallel can still pay. -j 1 and the
  // user's own chunks leave nothing to correct, and neither does a heavy start-up (each
  // chunk checked would pay it again). (A pass-through task never gets here:
  // CalibrationRuledOut.)
  size_t chosen_after = cal.chunks.size();
  if (!user_plan && !cal.error && !cal.heavy_start && !(config.jobs_given && config.jobs <= 1)) {
    while (plan.choice.mode == Mode::kSerial) {
      uint64_t size = KeepMeasuringChunk(in, cal, limits);
      if (size == 0) break;
      bool ran =
          RunNextPrefix(task, config.args, data, range, header, size, limits.stop_seconds, cal);
      in = fit();
      plan.choice = ChooseMode(in);
      if (!ran) break;
    }
  }
  // Threads mode's slots take the calibration's process and these; other modes use none.
  if (plan.choice.mode == Mode::kThreads) spares.Keep(plan.choice.workers - 1);
  std::string sizes;
  for (size_t i = 0; i < cal.chunks.size() && i < 4; ++i) {
    sizes += (i ? "+" : "") + std::to_string(cal.chunks[i].records);
  }
  if (cal.chunks.size() > 4) sizes += "+...";
  size_t checked = cal.chunks.size() - chosen_after;
  plan.choice.reason = "calibrated " + std::to_string(cal.chunks.size()) + " chunks" +
                       (sizes.empty() ? "" : " (" + sizes + " records)") + " to completion" +
                       (checked ? " (the last " + std::to_string(checked) +
                                      " serially, checking a first choice of serial)"
                                : "") +
                       ": " + plan.choice.reason;
  if (cal.error) {
    plan.choice.reason += std::string(" (a calibration chunk ") +
                          (cal.stopped ? "was " : "failed: ") + cal.error->message() + ")";
  }
  if (!user_plan) {
    plan.chunks = PlanRest(cal, data, range, plan.choice.chunks, index);
  }
  return plan;
}

}  // namespace

Status ApplyCalibration(AutoPlan& plan, const PlannedJob& job, Scheduler& scheduler,
                        ResultSink& sink, Telemetry& telemetry) {
  Calibration& cal = plan.calibration;
  auto now = std::chrono::steady_clock::now();
  for (size_t i = 0; i < cal.chunks.size(); ++i) {
    scheduler.MarkRun(cal.chunks[i].id);
    WorkerIndex worker = i < cal.beside.size() && cal.beside[i] ? 1 : 0;
    AttemptSpan span = job.Span(telemetry, cal.chunks[i].id, 1, worker, cal.wall_seconds[i],
                                cal.outputs[i].size(), Status::Ok());
    span.start = std::max(
        0.0, telemetry.Now() - std::chrono::duration<double>(now - cal.started[i]).count());
    span.end = span.start + cal.wall_seconds[i];
    span.cpu_seconds = cal.cpu_seconds[i];
    telemetry.RecordAttempt(std::move(span));
    // --header: the first output's first line is the output's header.
    if (Status s = sink.Vet(cal.outputs[i].view()); !s.ok()) return s;
    if (Status s = sink.Accept(cal.chunks[i].id, std::move(cal.outputs[i]), cal.cpu_seconds[i]);
        !s.ok()) {
      return s;
    }
  }
  // The chunk whose calibration attempt failed: that was its attempt 1, with its own
  // FANOUT_ATTEMPT; the chosen mode runs only what --retries allows after it.
  if (cal.failed && cal.failed->id < job.chunks.size()) {
    uint64_t id = cal.failed->id;
    scheduler.AddWorker(0, 1, 1);
    auto a = scheduler.Next(0, now);
    if (a && a->chunk == id) {
      AttemptSpan span = job.Span(telemetry, id, a->attempt, cal.failed_beside ? 1 : 0,
                                  cal.failed_wall, 0, *cal.error);
      span.start = std::max(
          0.0, telemetry.Now() - std::chrono::duration<double>(now - cal.failed_started).count());
      span.end = span.start + cal.failed_wall;
      span.cpu_seconds = cal.failed_cpu;
      telemetry.RecordAttempt(std::move(span));
      if (cal.stopped) {
        scheduler.ReleaseAttempt(id, a->attempt);  // the coordinator's doing: free
        return Status::Ok();
      }
      ResultOutcome outcome =
          scheduler.OnResult(0, id, a->attempt, false, cal.error->message(), now);
      if (outcome.verdict == Verdict::kRetrying) {
        Log().warn("{} attempt {} failed, retrying: {}", job.Describe(id), a->attempt,
                   LatestFailureNote(scheduler, id));
      }
      if (Status s = sink.SyncFailures(); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

}  // namespace fanout
