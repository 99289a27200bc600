#include "coordinator/auto_mode.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stop_token>
#include <thread>

#include "common/measured_run.h"
#include "common/warm_task.h"

namespace fanout {
namespace {

constexpr double kIoBoundCpuFraction = 0.2;    // below: the task mostly waits
constexpr double kMinWaitSeconds = 0.0001;     // per record, to count as waiting
constexpr double kMaxOverheadFraction = 0.02;  // dispatch overhead < 2% of the work
constexpr uint64_t kChunksPerWorker = 4;       // for balance
constexpr uint64_t kMaxChunkBytes = 4u << 20;  // big chunks fault in fresh output pages
constexpr double kParallelMustWin = 0.9;       // parallel only if clearly faster...
constexpr double kMinGainSeconds = 0.002;      // ...and by more than timing noise

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

// At least enough chunks to keep each under kMaxChunkBytes; never more than records.
uint64_t BoundChunks(const AutoInputs& in, uint64_t chunks) {
  chunks = std::max<uint64_t>(chunks, (in.bytes + kMaxChunkBytes - 1) / kMaxChunkBytes);
  return std::clamp<uint64_t>(chunks, 1, std::max<uint64_t>(in.records, 1));
}

// Chunks for `workers`: >= 4 per worker, few enough that dispatch stays under 2% of the
// work, small enough to bound output memory; never more than records.
uint64_t PickChunks(const AutoInputs& in, uint32_t workers, double work, double chunk_cost) {
  if (in.chunks) return in.chunks;
  uint64_t balance = kChunksPerWorker * workers;
  double affordable = chunk_cost > 0 ? work * kMaxOverheadFraction / chunk_cost : 1e18;
  uint64_t chunks = balance;
  if (affordable < static_cast<double>(balance)) {
    chunks = std::max<uint64_t>(workers, static_cast<uint64_t>(affordable));
  }
  return BoundChunks(in, chunks);
}

}  // namespace

AutoChoice ChooseMode(const AutoInputs& in, const DispatchCosts& costs) {
  AutoChoice c;
  double work = static_cast<double>(in.records) * in.record_seconds;
  if (in.records == 0 && !in.needs_processes) {
    c.reason = "the calibration ran every record";
    return c;
  }
  // Waiting only counts when records wait long enough to be worth a thread each.
  bool io_bound = in.cpu_fraction < kIoBoundCpuFraction && in.record_seconds >= kMinWaitSeconds;
  uint32_t cap =
      in.jobs ? in.jobs : (io_bound ? in.max_waiting_workers : std::max<uint32_t>(in.cores, 1));
  uint32_t workers = static_cast<uint32_t>(std::clamp<uint64_t>(in.records, 1, cap));
  if (in.jobs && in.needs_processes) workers = in.jobs;
  double effective = io_bound ? workers : std::min<uint32_t>(workers, std::max(in.cores, 1u));
  double chunk_cost = in.warm_chunk_seconds + (in.needs_processes ? costs.process_chunk_seconds
                                                                  : costs.thread_chunk_seconds);
  double start = in.slot_start_seconds +
                 (in.needs_processes ? costs.process_start_seconds : costs.thread_start_seconds);
  uint64_t chunks = PickChunks(in, workers, work, chunk_cost);
  // The coordinator alone writes the output and touches every input page once: the part
  // of the job no worker count shortens (Amdahl).
  double moved = static_cast<double>(in.bytes) * (1 + in.output_per_input);
  double parallel = start + std::max(work / effective, moved * costs.coordinator_byte_seconds) +
                    static_cast<double>(chunks) * chunk_cost / workers;
  std::string figures = std::to_string(in.records) + " records x " + Seconds(in.record_seconds) +
                        " = " + Seconds(work) + " of " + (io_bound ? "mostly waiting" : "CPU") +
                        " work";
  if (in.slot_start_seconds > 0) {
    figures += "; a warm command starting in " + Seconds(in.slot_start_seconds) +
               " per slot, answering in " + Seconds(in.warm_chunk_seconds) + " per chunk";
  }
  if (in.needs_processes) {
    c.mode = Mode::kProcesses;
    c.workers = workers;
    c.chunks = chunks;
    c.estimate_seconds = parallel;
    c.reason = figures + "; flags that only worker processes honour ask for them";
    return c;
  }
  if (workers <= 1 || parallel >= kParallelMustWin * work || work - parallel < kMinGainSeconds) {
    c.chunks = in.chunks ? in.chunks : BoundChunks(in, 1);
    c.estimate_seconds = work;
    c.reason = figures + "; " + std::to_string(workers) + " workers would take ~" +
               Seconds(parallel) + " with dispatch and output, not clearly faster than serial";
    return c;
  }
  c.mode = Mode::kThreads;
  c.workers = workers;
  c.chunks = chunks;
  c.estimate_seconds = parallel;
  c.reason = figures + "; ~" + Seconds(parallel) + " on " + std::to_string(workers) +
             " threads (in-process threads dispatch cheaper than worker processes)";
  return c;
}

namespace {

// One thread for the whole calibration: while armed, it cancels the armed stop source
// once the deadline passes. Arm/Disarm take a lock and wake the thread only when it is
// idle: a timed wait that finds a later deadline simply waits again, so quick chunks
// cost no context switch each.
class Watchdog {
 public:
  Watchdog()
      : thread_([this](std::stop_token own) {
          std::unique_lock lock(mu_);
          while (!own.stop_requested()) {
            if (!armed_) {
              idle_ = true;
              cv_.wait(lock, own, [&] { return armed_.has_value(); });
              idle_ = false;
              continue;
            }
            // A copy: the wait reads its deadline with our mutex released.
            auto until = deadline_;
            cv_.wait_until(lock, own, until, [] { return false; });
            if (armed_ && std::chrono::steady_clock::now() >= deadline_) {
              armed_->request_stop();
              armed_.reset();
            }
          }
        }) {}
  void Arm(std::stop_source source, double seconds) {
    std::lock_guard lock(mu_);
    armed_ = std::move(source);
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(seconds));
    if (idle_) cv_.notify_all();
  }
  void Disarm() {
    std::lock_guard lock(mu_);
    armed_.reset();
  }

 private:
  std::mutex mu_;
  std::condition_variable_any cv_;
  std::optional<std::stop_source> armed_;
  std::chrono::steady_clock::time_point deadline_;
  bool idle_ = false;
  std::jthread thread_;  // last: stopped and joined first
};

constexpr size_t kMinCalibrationChunks = 3;

// Byte offset just past `records` lines starting at `from` (or data.size()).
uint64_t SkipLines(std::string_view data, uint64_t from, uint64_t records) {
  uint64_t at = from;
  for (uint64_t i = 0; i < records && at < data.size(); ++i) {
    const void* nl = std::memchr(data.data() + at, '\n', data.size() - at);
    at = nl ? static_cast<uint64_t>(static_cast<const char*>(nl) - data.data()) + 1 : data.size();
  }
  return at;
}

// Runs `spec` with a deadline; false if it was cancelled or failed (then not kept).
bool RunOne(const TaskDef& task, const std::vector<std::string>& args, std::string_view data,
            const ChunkSpec& spec, double deadline, Watchdog& dog, Calibration& cal) {
  ChunkInput in;
  in.data = spec.range ? std::string_view() : data.substr(spec.begin, spec.bytes());
  in.range = spec.range;
  in.chunk_id = spec.id;
  in.attempt = 1;
  std::stop_source stop;
  std::string out;
  dog.Arm(stop, deadline);
  Measured m = MeasuredRun(task, in, args, out, stop.get_token());
  dog.Disarm();
  if (stop.stop_requested()) {
    cal.cut_short = true;
    cal.cut_records = static_cast<double>(spec.records);
    cal.cut_seconds = m.wall_seconds;
    cal.cpu += m.cpu_seconds;  // for the CPU fraction only
    cal.wall += m.wall_seconds;
    return false;
  }
  if (!m.status.ok()) {
    cal.error = m.status;
    return false;
  }
  cal.chunks.push_back(spec);
  cal.outputs.push_back(std::move(out));
  cal.cpu_seconds.push_back(m.cpu_seconds);
  cal.wall_seconds.push_back(m.wall_seconds);
  cal.records += spec.records;
  cal.bytes += spec.bytes();
  cal.wall += m.wall_seconds;
  cal.cpu += m.cpu_seconds;
  cal.output_bytes += cal.outputs.back().size();
  return true;
}

}  // namespace

Calibration Calibrate(const TaskDef& task, const std::vector<std::string>& args,
                      std::string_view data, const std::optional<IntRange>& range,
                      const std::vector<ChunkSpec>& plan, uint64_t total,
                      const CalibrationLimits& limits) {
  Calibration cal;
  Watchdog dog;
  auto start = std::chrono::steady_clock::now();
  // Enough once it took enough_seconds over at least kMinChunks chunks (the first one runs
  // cold, so one alone says little).
  auto enough = [&] {
    return cal.chunks.size() >= kMinCalibrationChunks &&
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >=
               limits.enough_seconds;
  };
  if (!plan.empty()) {  // the user's chunks, in order, while they are quick
    for (uint64_t i = 0; i < plan.size() && !enough(); ++i) {
      if (!RunOne(task, args, data, plan[i], limits.deadline_seconds, dog, cal)) break;
    }
    return cal;
  }
  uint64_t budget = std::max<uint64_t>(1, total / limits.max_records_fraction);
  if (total <= 1) budget = total;
  for (uint64_t size = 1; cal.records < budget; size *= 2) {
    ChunkSpec spec;
    spec.id = cal.chunks.size();
    spec.first_record = cal.records;
    spec.records = std::min(size, budget - cal.records);
    if (range) {
      int64_t lo = range->lo + static_cast<int64_t>(cal.records);
      spec.range = IntRange{lo, lo + static_cast<int64_t>(spec.records)};
    } else {
      spec.begin = cal.bytes;
      spec.end = SkipLines(data, spec.begin, spec.records);
    }
    if (!RunOne(task, args, data, spec, limits.deadline_seconds, dog, cal)) break;
    if (enough()) break;
  }
  return cal;
}

std::vector<ChunkSpec> PlanRest(const Calibration& cal, std::string_view data,
                                const std::optional<IntRange>& range, uint64_t chunks,
                                const ConsumedFn& consumed) {
  ChunkingOptions options;
  options.chunks = std::max<uint64_t>(chunks, 1);
  std::vector<ChunkSpec> rest;
  if (range) {
    IntRange left{range->lo + static_cast<int64_t>(cal.records), range->hi};
    rest = PlanRangeChunks(left, options, options.chunks);
  } else {
    ConsumedFn shifted;
    if (consumed) shifted = [&](uint64_t upto) { consumed(cal.bytes + upto); };
    rest = PlanChunks(data.substr(cal.bytes), options, options.chunks, shifted);
    for (ChunkSpec& c : rest) {
      c.begin += cal.bytes;
      c.end += cal.bytes;
    }
  }
  std::vector<ChunkSpec> plan = cal.chunks;
  for (ChunkSpec& c : rest) {
    c.id += cal.chunks.size();
    c.first_record += cal.records;
    plan.push_back(c);
  }
  return plan;
}

}  // namespace fanout

namespace fanout {
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

std::string CalibrationRuledOut(const JobConfig& config, uint64_t input_bytes) {
  if (auto flags = ProcessOnlyFlags(config); !flags.empty()) {
    return flags.front() + " asks for worker processes";
  }
  const ChunkingOptions& c = config.chunking;
  if (config.header || c.kind != RecordKind::kLines || c.block_bytes > 0 ||
      !config.state_dir.empty()) {
    return "--header, --null, --record-size, --block and --state keep the job's own chunk plan";
  }
  if (input_bytes > kMaxCalibratedInputBytes) {
    return "an input over 256 MiB is planned in bounded memory, not calibrated";
  }
  return "";
}

namespace {

constexpr double kTellableSeconds = 0.001;
constexpr std::chrono::milliseconds kWarmUpLimit{60000};  // a warm command's READY, at most

AutoInputs InputsFrom(const Calibration& cal, uint64_t total_records, uint64_t total_bytes) {
  AutoInputs in;
  in.records = total_records - cal.records;
  in.bytes = total_bytes - cal.bytes;
  // The first chunk runs cold (page faults, first-call costs): leave it out when there
  // are others.
  size_t from = cal.chunks.size() > 1 ? 1 : 0;
  double wall = 0, records = 0;
  for (size_t i = from; i < cal.chunks.size(); ++i) {
    wall += cal.wall_seconds[i];
    records += static_cast<double>(cal.chunks[i].records);
  }
  if (records > 0) in.record_seconds = wall / records;
  if (cal.cut_short) {
    in.record_seconds = std::max(in.record_seconds, cal.cut_seconds / cal.cut_records);
  }
  // Below a millisecond the CPU clock's granularity and start-up noise say nothing about
  // waiting; count such a task as CPU-bound.
  in.cpu_fraction = cal.wall >= kTellableSeconds ? cal.cpu / cal.wall : 1;
  // Unknown (nothing kept): assume the output is as big as the input.
  in.output_per_input =
      cal.bytes > 0 ? static_cast<double>(cal.output_bytes) / static_cast<double>(cal.bytes) : 1;
  return in;
}

// A warm command's chunk time is a round trip plus per-record work: fits wall = a + b *
// records over the calibration's chunks after the first (least squares), and books a per
// chunk, b per record. Without a usable fit the estimate stays per record.
void SplitChunkCost(const Calibration& cal, AutoInputs& in) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 1; i < cal.chunks.size(); ++i) {
    double x = static_cast<double>(cal.chunks[i].records), y = cal.wall_seconds[i];
    n += 1;
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  double denominator = n * sxx - sx * sx;
  if (n < 2 || denominator <= 0) return;
  double b = (n * sxy - sx * sy) / denominator;
  double a = (sy - b * sx) / n;
  if (a <= 0 || b <= 0) return;
  in.warm_chunk_seconds = a;
  in.record_seconds = cal.cut_short ? std::max(b, cal.cut_seconds / cal.cut_records) : b;
}

}  // namespace

std::string AutoPlan::Summary(size_t total_chunks) const {
  return std::string(ModeName(choice.mode)) + ", " + std::to_string(choice.workers) + " workers, " +
         std::to_string(total_chunks) + " chunks (" + std::to_string(calibration.chunks.size()) +
         " run while calibrating): " + choice.reason;
}

AutoPlan PlanAuto(const JobConfig& config, const TaskDef& task, std::string_view data,
                  uint32_t cores, const ConsumedFn& consumed) {
  AutoPlan plan;
  const auto& range = config.range;
  bool user_plan = config.chunking.chunks || config.chunking.chunk_size;
  uint64_t default_chunks = 4ull * (config.jobs_given ? std::max(config.jobs, 1u) : cores);
  if (user_plan) {
    auto whole = range ? PlanRangeChunksWithin(*range, config.chunking, default_chunks, {})
                       : PlanChunksWithin(data, config.chunking, default_chunks, {}, consumed);
    if (!whole.ok()) {
      plan.status = whole.status();
      return plan;
    }
    plan.chunks = std::move(whole).value();
  }
  uint64_t total = range ? static_cast<uint64_t>(range->hi - range->lo)
                         : CountRecords(data, RecordKind::kLines, 0, consumed);
  // A warm command starts before the calibration, so that no chunk books its start-up
  // (which every slot pays once, not every chunk); the calibration's chunks then reuse it.
  std::optional<double> warm_start;
  if (IsWarmTask(task, config.args)) {
    auto up = WarmUp(config.args, "", kWarmUpLimit);
    if (up.ok()) warm_start = *up;
  }
  plan.calibration = Calibrate(task, config.args, data, range, plan.chunks, total);
  const Calibration& cal = plan.calibration;
  AutoInputs in = InputsFrom(cal, total, range ? 0 : data.size());
  if (warm_start) {
    in.slot_start_seconds = *warm_start;
    SplitChunkCost(cal, in);
  }
  in.cores = cores;
  in.jobs = config.jobs_given ? config.jobs : 0;
  // Waiting in-process tasks (sleep) cost a parked thread each; a waiting `exec` command
  // is a whole process, and often waits on a disk or a server that many would swamp.
  in.max_waiting_workers = task.name == "exec" ? 64 : 1024;
  // A warm slot is a live interpreter for the whole job: one per core unless -j says more.
  if (warm_start) in.max_waiting_workers = std::max(cores, 1u);
  if (user_plan) in.chunks = plan.chunks.size() - cal.chunks.size();
  if (cal.error && cal.chunks.empty() && !cal.cut_short) {
    in.record_seconds = 1e-3;  // unknown: assume work worth spreading; the run will report
  }
  plan.choice = ChooseMode(in);
  if (cal.error)
    plan.choice.reason += " (a calibration chunk failed: " + cal.error->message() + ")";
  if (!user_plan) {
    plan.chunks = in.records == 0 ? cal.chunks : PlanRest(cal, data, range, plan.choice.chunks);
  }
  return plan;
}

Status ApplyCalibration(AutoPlan& plan, const PlannedJob& job, Scheduler& scheduler,
                        ResultSink& sink, Telemetry& telemetry) {
  Calibration& cal = plan.calibration;
  // The calibration ran just before the job's clock started: place its spans before 0.
  double at = -cal.wall;
  for (size_t i = 0; i < cal.chunks.size(); ++i) {
    scheduler.MarkDone(cal.chunks[i].id);
    AttemptSpan span = job.Span(telemetry, cal.chunks[i].id, 1, 0, cal.wall_seconds[i],
                                cal.outputs[i].size(), Status::Ok());
    span.start = at;
    span.end = at += cal.wall_seconds[i];
    span.cpu_seconds = cal.cpu_seconds[i];
    telemetry.RecordCalibration(span);
    if (Status s =
            sink.Accept(cal.chunks[i].id, Blob(std::move(cal.outputs[i])), cal.cpu_seconds[i]);
        !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

}  // namespace fanout
