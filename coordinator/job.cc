#include "coordinator/job.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <thread>

#include "common/output_file.h"
#include "common/units.h"
#include "coordinator/coordinator.h"
#include "coordinator/interrupt.h"
#include "coordinator/local_modes.h"
#include "coordinator/progress.h"

namespace fanout {

std::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kSerial:
      return "serial";
    case Mode::kThreads:
      return "threads";
    case Mode::kProcesses:
      return "processes";
  }
  return "?";
}

std::string_view PlannedJob::Bytes(uint64_t chunk) const {
  const ChunkSpec& c = chunks[chunk];
  if (c.range) return {};
  return input.view().substr(c.begin, c.bytes());
}

ChunkInput PlannedJob::InputFor(uint64_t chunk, uint32_t attempt, const std::string& worker) const {
  ChunkInput in;
  in.data = Bytes(chunk);
  in.range = chunks[chunk].range;
  in.chunk_id = chunk;
  in.attempt = attempt;
  in.worker_id = worker;
  return in;
}

std::string PlannedJob::Describe(uint64_t chunk) const {
  const ChunkSpec& c = chunks[chunk];
  std::string text = "chunk " + std::to_string(chunk);
  if (c.range) {
    text += " (numbers " + std::to_string(c.range->lo) + "-" + std::to_string(c.range->hi - 1);
  } else {
    text += " (lines " + std::to_string(c.first_record + 1) + "-" +
            std::to_string(c.first_record + c.records);
  }
  return text + ")";
}

AttemptSpan PlannedJob::Span(const Telemetry& t, uint64_t chunk, uint32_t attempt,
                             WorkerIndex worker, double wall, uint64_t bytes_out,
                             const Status& status) const {
  AttemptSpan span;
  span.chunk = chunk;
  span.attempt = attempt;
  span.worker = worker;
  span.end = t.Now();
  span.start = std::max(0.0, span.end - wall);
  span.bytes_in = chunks[chunk].bytes();
  span.records = chunks[chunk].records;
  span.bytes_out = bytes_out;
  span.ok = status.ok();
  span.error = status.message();
  return span;
}

Status ResultSink::Accept(uint64_t chunk, Blob output, double cpu_seconds) {
  stats_.cpu_seconds += cpu_seconds;
  if (observer_) return observer_->OnAccepted(chunk, std::move(output));
  return assembler_->Add(chunk, std::move(output));
}

Status ResultSink::SyncFailures() {
  const auto& failed = scheduler_.failed_chunks();
  if (!scheduler_.Aborted()) {
    for (; synced_failures_ < failed.size(); ++synced_failures_) {
      uint64_t chunk = failed[synced_failures_];
      Status s = observer_ ? observer_->OnFailed(chunk) : assembler_->Skip(chunk);
      if (!s.ok()) return s;
    }
  }
  return Status::Ok();
}

namespace {

using Clock = std::chrono::steady_clock;

void PrintUsageError(const std::string& message) {
  std::fprintf(stderr, "fanout: %s\n", message.c_str());
}

// The lines explaining why `chunk` failed: one per attempt, most recent first.
void PrintChunkFailure(const PlannedJob& job, const Scheduler& scheduler, const RunStats& stats,
                       uint64_t chunk, const char* lead) {
  const auto& failures = scheduler.failures_of(chunk);
  if (failures.empty()) {
    std::fprintf(stderr, "%s%s failed\n", lead, job.Describe(chunk).c_str());
    return;
  }
  const AttemptFailure& last = failures.back();
  std::fprintf(stderr, "%s%s failed on worker %s (attempt %u of %zu): %s\n", lead,
               job.Describe(chunk).c_str(), stats.WorkerName(last.worker).c_str(), last.attempt,
               failures.size(), last.reason.c_str());
  for (size_t i = failures.size() - 1; i-- > 0;) {
    std::fprintf(stderr, "  earlier: attempt %u on worker %s: %s\n", failures[i].attempt,
                 stats.WorkerName(failures[i].worker).c_str(), failures[i].reason.c_str());
  }
}

void PrintSummary(const JobConfig& config, const PlannedJob& job, const Scheduler& scheduler,
                  const RunStats& stats, double wall) {
  if (config.quiet) return;
  const SchedulerCounters& c = scheduler.counters();
  auto seconds = [](double s) {
    return FormatDuration(std::chrono::duration_cast<Micros>(std::chrono::duration<double>(s)));
  };
  char parallelism[32];
  std::snprintf(parallelism, sizeof parallelism, "%.2fx", wall > 0 ? stats.cpu_seconds / wall : 0);
  std::string line = "fanout: mode=" + std::string(ModeName(config.mode)) +
                     " workers=" + std::to_string(stats.workers) +
                     " chunks=" + std::to_string(job.chunks.size()) + " wall=" + seconds(wall) +
                     " cpu=" + seconds(stats.cpu_seconds) + " parallelism=" + parallelism +
                     " retries=" + std::to_string(c.retries) +
                     " timeouts=" + std::to_string(c.timeouts) +
                     " workers_lost=" + std::to_string(c.workers_lost) +
                     " respawns=" + std::to_string(stats.respawns) +
                     " speculated=" + std::to_string(c.speculative) +
                     " late_dropped=" + std::to_string(c.late_duplicates) + "\n";
  std::fputs(line.c_str(), stderr);
}

uint32_t DefaultJobs() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

ModeResult RunMode(const PlannedJob& job, uint32_t jobs, Scheduler& scheduler, ResultSink& sink,
                   RunStats& stats) {
  switch (job.config.mode) {
    case Mode::kSerial:
      return RunSerial(job, scheduler, sink, stats);
    case Mode::kThreads:
      return RunThreads(job, jobs, scheduler, sink, stats);
    case Mode::kProcesses:
      return RunProcesses(job, jobs, scheduler, sink, stats);
  }
  return ModeResult::Failed("unknown mode");
}

// Turns the end state into the exit code, printing the failure report.
ExitCode Conclude(const PlannedJob& job, const Scheduler& scheduler, const RunStats& stats,
                  const ModeResult& result) {
  if (result.kind == ModeResult::Kind::kInterrupted) {
    std::fprintf(stderr, "fanout: interrupted by %s; output discarded\n",
                 Interrupt::signal_number() == SIGTERM ? "SIGTERM" : "SIGINT");
    return ExitCode::kInterrupted;
  }
  if (result.kind == ModeResult::Kind::kFailed) {
    std::fprintf(stderr, "fanout: job failed: %s\n", result.message.c_str());
    return ExitCode::kJobFailed;
  }
  if (scheduler.Aborted()) {
    PrintChunkFailure(job, scheduler, stats, scheduler.failed_chunks().front(), "fanout: ");
    return ExitCode::kJobFailed;
  }
  if (!scheduler.failed_chunks().empty()) {
    std::fprintf(stderr, "fanout: %zu of %zu chunks failed; their output is missing:\n",
                 scheduler.failed_chunks().size(), job.chunks.size());
    for (uint64_t chunk : scheduler.failed_chunks()) {
      PrintChunkFailure(job, scheduler, stats, chunk, "  ");
    }
    return ExitCode::kPartial;
  }
  return ExitCode::kOk;
}

}  // namespace

namespace {

// The files a job writes, all opened (and so checked) before any work starts.
struct JobFiles {
  std::optional<OutputFile> output, stats, trace;
};

Status OpenFiles(const JobConfig& config, JobFiles& files) {
  auto open = [](const std::string& path, std::optional<OutputFile>& into) -> Status {
    if (path.empty()) return Status::Ok();
    auto f = OutputFile::Open(path);
    if (!f.ok()) return f.status();
    into.emplace(std::move(f).value());
    return Status::Ok();
  };
  if (Status s = open(config.output.empty() ? "-" : config.output, files.output); !s.ok()) {
    return s;
  }
  if (Status s = open(config.stats_json, files.stats); !s.ok()) return s;
  return open(config.trace, files.trace);
}

// --dry-run: the plan on stdout, one line per chunk.
void PrintPlan(const PlannedJob& job, uint32_t jobs) {
  std::printf("fanout: dry run: %zu chunks, task '%s', mode %s, %u workers; nothing was run\n",
              job.chunks.size(), job.config.task.c_str(),
              std::string(ModeName(job.config.mode)).c_str(), jobs);
  for (const ChunkSpec& c : job.chunks) {
    std::printf("%s: %lu records, %lu bytes\n", job.Describe(c.id).c_str(),
                static_cast<unsigned long>(c.records), static_cast<unsigned long>(c.bytes()));
  }
}

JobTotals Totals(const PlannedJob& job, const Scheduler& scheduler, const RunStats& stats,
                 double wall, ExitCode code, uint32_t jobs) {
  JobTotals t;
  t.mode = ModeName(job.config.mode);
  t.workers = stats.workers ? stats.workers : jobs;
  t.chunks = job.chunks.size();
  for (const auto& c : job.chunks) t.records += c.records;
  t.wall_seconds = wall;
  t.cpu_seconds = stats.cpu_seconds;
  for (const auto& span : stats.telemetry.spans()) {
    if (!span.ok) continue;
    t.bytes_in += span.bytes_in;
    t.bytes_out += span.bytes_out;
  }
  t.respawns = stats.respawns;
  t.rejected_messages = stats.rejected_messages;
  t.counters = scheduler.counters();
  t.failed_chunks = scheduler.failed_chunks();
  t.exit_code = ToInt(code);
  return t;
}

// Commits or discards the output according to `code`; returns the final code.
ExitCode SettleOutput(const PlannedJob& job, const ResultAssembler& assembler, OutputFile& output,
                      ExitCode code) {
  if (code != ExitCode::kOk && code != ExitCode::kPartial) {
    output.Discard();
    return code;
  }
  if (!assembler.Complete()) {
    std::fprintf(stderr, "fanout: internal error: output incomplete (%lu of %zu chunks)\n",
                 static_cast<unsigned long>(assembler.next_to_write()), job.chunks.size());
    output.Discard();
    return ExitCode::kJobFailed;
  }
  if (Status s = output.Commit(); !s.ok()) {
    std::fprintf(stderr, "fanout: %s\n", s.message().c_str());
    return ExitCode::kJobFailed;
  }
  return code;
}

void WriteReports(const JobConfig& config, const RunStats& stats, const JobTotals& totals,
                  JobFiles& files) {
  if (config.report && !config.quiet) {
    std::fputs(stats.telemetry.Report(totals).c_str(), stderr);
  }
  auto write = [](std::optional<OutputFile>& file, const std::string& text) {
    if (!file) return;
    Status s = file->Write(text);
    if (s.ok()) s = file->Commit();
    if (!s.ok()) std::fprintf(stderr, "fanout: %s\n", s.message().c_str());
  };
  write(files.stats, stats.telemetry.StatsJson(totals));
  write(files.trace, stats.telemetry.TraceJson());
}

}  // namespace

ExitCode RunJob(const JobConfig& config) {
  TaskRegistry& registry = TaskRegistry::Global();
  RegisterBuiltinTasks(registry);
  auto task = ResolveTask(registry, config.task, config.args);
  if (!task.ok()) {
    PrintUsageError(task.status().message());
    return ExitCode::kUsage;
  }
  if (config.range && config.input != "-") {
    PrintUsageError("--range and --input are mutually exclusive (a range job reads no input)");
    return ExitCode::kUsage;
  }
  // Outputs are opened first so an unwritable path fails before any input is read.
  JobFiles files;
  if (Status s = OpenFiles(config, files); !s.ok()) {
    PrintUsageError(s.message());
    return ExitCode::kUsage;
  }
  Result<JobInput> input =
      config.range ? Result<JobInput>(JobInput()) : JobInput::Open(config.input);
  if (!input.ok()) {
    PrintUsageError(input.status().message());
    return ExitCode::kUsage;
  }

  uint32_t jobs = config.jobs_given ? config.jobs : DefaultJobs();
  if (config.mode == Mode::kSerial) jobs = 1;
  if (config.mode == Mode::kProcesses && !config.listen.empty() && !config.jobs_given) {
    jobs = 0;  // workers will connect to --listen
  }
  if (jobs == 0 && (config.mode != Mode::kProcesses || config.listen.empty())) {
    PrintUsageError("-j 0 starts no local workers: use it with --listen in processes mode");
    return ExitCode::kUsage;
  }
  uint64_t default_chunks = 4ull * std::max<uint32_t>(jobs, config.jobs_given ? 1 : DefaultJobs());
  PlannedJob job{config, **task, std::move(input).value(), {}};
  job.chunks = config.range ? PlanRangeChunks(*config.range, config.chunking, default_chunks)
                            : PlanLineChunks(job.input.view(), config.chunking, default_chunks);
  if (config.dry_run) {
    PrintPlan(job, jobs);
    return ExitCode::kOk;  // files are discarded by their destructors
  }
  spdlog::debug("planned {} chunks for task '{}' in mode {}", job.chunks.size(), config.task,
                ModeName(config.mode));

  auto start = Clock::now();
  Scheduler scheduler(job.chunks.size(), config.scheduler);
  ResultAssembler assembler(job.chunks.size(), /*ordered=*/true, &*files.output);
  RunStats stats;
  ResultSink sink(scheduler, assembler, stats);
  ModeResult result;
  {
    std::optional<Progress> progress;
    if (config.progress && !config.quiet) progress.emplace(stats.telemetry, job.chunks.size());
    result =
        job.chunks.empty() ? ModeResult::Completed() : RunMode(job, jobs, scheduler, sink, stats);
  }
  double wall = std::chrono::duration<double>(Clock::now() - start).count();

  ExitCode code = Conclude(job, scheduler, stats, result);
  code = SettleOutput(job, assembler, *files.output, code);
  PrintSummary(config, job, scheduler, stats, wall);
  WriteReports(config, stats, Totals(job, scheduler, stats, wall, code, jobs), files);
  return code;
}

}  // namespace fanout
