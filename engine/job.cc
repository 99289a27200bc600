#include "engine/job.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <thread>

#include "common/log.h"
#include "common/output_file.h"
#include "common/units.h"
#include "engine/auto_mode.h"
#include "engine/content_hash.h"
#include "engine/interrupt.h"
#include "engine/job_log.h"
#include "engine/job_observer.h"
#include "engine/job_setup.h"
#include "engine/run_planned.h"
#include "engine/state_store.h"
#include "engine/stop_fd.h"
#include "engine/warm_processes.h"
#include "tasks/builtin_tasks.h"

namespace fanout {

std::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kSerial:
      return "serial";
    case Mode::kThreads:
      return "threads";
    case Mode::kProcesses:
      return "processes";
    case Mode::kAuto:
      return "auto";
  }
  return "?";
}

uint32_t DefaultJobs() { return std::max(1u, std::thread::hardware_concurrency()); }

std::string_view PlannedJob::Bytes(uint64_t chunk) const {
  const ChunkSpec& c = chunks[chunk];
  if (c.range) return {};
  return input.view().substr(c.begin, c.bytes());
}

std::string_view PlannedJob::Payload(uint64_t chunk, std::string& storage) const {
  if (header.empty() || chunks[chunk].range) return Bytes(chunk);
  std::string_view bytes = Bytes(chunk);
  storage.reserve(header.size() + bytes.size());
  storage.assign(header);
  storage.append(bytes);
  return storage;
}

uint64_t PlannedJob::PayloadSize(uint64_t chunk) const {
  const ChunkSpec& spec = chunks[chunk];
  return spec.range ? 0 : header.size() + spec.bytes();
}

void PlannedJob::CopyPayload(uint64_t chunk, char* to) const {
  const ChunkSpec& spec = chunks[chunk];
  if (spec.range) return;
  to = std::copy(header.begin(), header.end(), to);
  input.CopyOut(spec.begin, spec.bytes(), to);
}

ChunkInput PlannedJob::InputFor(uint64_t chunk, uint32_t attempt, const std::string& worker,
                                std::string& storage) const {
  ChunkInput in;
  in.data = Payload(chunk, storage);
  in.range = chunks[chunk].range;
  // The chunk's bytes as the file has them (no --header line before them): `exec` splices
  // them from the file into its command.
  if (!in.range && header.empty() && input.fd() >= 0) in.file = {input.fd(), chunks[chunk].begin};
  in.chunk_id = chunk;
  in.attempt = attempt;
  in.worker_id = worker;
  // The same limit on a chunk's output as a worker's (--max-message), so a job behaves
  // alike in every mode.
  in.max_output = static_cast<uint64_t>(std::max<int64_t>(config.max_message, 0));
  return in;
}

std::string PlannedJob::Describe(uint64_t chunk) const {
  const ChunkSpec& c = chunks[chunk];
  std::string text = "chunk " + std::to_string(chunk);
  if (c.range) {
    text += " (numbers " + std::to_string(c.range->lo) + "-" + std::to_string(c.range->hi - 1);
  } else if (c.bytes() == 0) {
    text += " (header only";
  } else if (!c.counted) {
    text += " (bytes " + std::to_string(c.begin) + "-" + std::to_string(c.end - 1);
  } else if (config.chunking.kind != RecordKind::kLines) {
    text += " (records " + std::to_string(c.first_record + 1) + "-" +
            std::to_string(c.first_record + c.records);
  } else {
    uint64_t first = c.first_record + (header.empty() ? 1 : 2);  // 1-based, in the file
    text += " (lines " + std::to_string(first) + "-" + std::to_string(first + c.records - 1);
  }
  return text + ")";
}

AttemptSpan PlannedJob::Span(const Telemetry& t, uint64_t chunk, uint32_t attempt,
                             WorkerIndex worker, double wall, uint64_t bytes_out,
                             const Status& status) const {
  return SpanAt(t.Now(), chunk, attempt, worker, wall, bytes_out, status);
}

AttemptSpan PlannedJob::SpanAt(double end, uint64_t chunk, uint32_t attempt, WorkerIndex worker,
                               double wall, uint64_t bytes_out, const Status& status) const {
  AttemptSpan span;
  span.chunk = chunk;
  span.attempt = attempt;
  span.worker = worker;
  span.end = end;
  span.start = std::max(0.0, span.end - wall);
  span.bytes_in = chunks[chunk].bytes();
  span.records = chunks[chunk].records;
  span.bytes_out = bytes_out;
  span.ok = status.ok();
  span.error = status.message();
  return span;
}

std::string ExhaustedAttempts(const Scheduler& scheduler, uint64_t chunk, bool flags) {
  uint32_t lost = 0, task = 0;
  for (const AttemptFailure& f : scheduler.failures_of(chunk)) ++(f.lost ? lost : task);
  const SchedulerOptions& o = scheduler.options();
  if (o.crash_limit > 0 && lost >= o.crash_limit) {
    return std::to_string(lost) + " workers lost under it, " +
           (flags ? "--crash-limit " : "crash limit ") + std::to_string(o.crash_limit);
  }
  return std::to_string(task) + (task == 1 ? " failure" : " failures") + ", " +
         (flags ? "--retries " : "retries ") + std::to_string(o.retries);
}

std::string LatestFailureNote(const Scheduler& scheduler, uint64_t chunk) {
  const auto& failures = scheduler.failures_of(chunk);
  if (failures.empty()) return "";
  const AttemptFailure& last = failures.back();
  for (size_t i = 0; i + 1 < failures.size(); ++i) {
    if (failures[i].reason == last.reason) {
      return "same as attempt " + std::to_string(failures[i].attempt);
    }
  }
  return last.reason;
}

namespace {

using SteadyClock = std::chrono::steady_clock;

// Where this thread's job writes its failure report (RunJob's JobHost::report): stderr for
// `fanout run`, a buffer for a job the server runs for a client. Each job runs on one
// thread, so the stream is the thread's, set for the length of RunJob.
thread_local FILE* report_stream = stderr;
FILE* ReportStream() { return report_stream; }

void PrintUsageError(const std::string& message) {
  std::fprintf(ReportStream(), "fanout: %s\n", message.c_str());
}

// "attempts 2-3" / "attempt 2" for a sorted list of attempt numbers.
std::string AttemptList(const std::vector<uint32_t>& attempts) {
  std::string text = attempts.size() == 1 ? "attempt " : "attempts ";
  for (size_t i = 0; i < attempts.size();) {
    size_t j = i;
    while (j + 1 < attempts.size() && attempts[j + 1] == attempts[j] + 1) ++j;
    if (i > 0) text += ",";
    text += std::to_string(attempts[i]);
    if (j > i) text += "-" + std::to_string(attempts[j]);
    i = j + 1;
  }
  return text;
}

// The lines explaining why `chunk` failed, most recent attempt first; each distinct reason
// is printed once, with the other attempts that failed the same way.
void PrintChunkFailure(const PlannedJob& job, const Scheduler& scheduler, const RunStats& stats,
                       uint64_t chunk, const char* lead) {
  const auto& failures = scheduler.failures_of(chunk);
  if (failures.empty()) {
    std::fprintf(ReportStream(), "%s%s failed\n", lead, job.Describe(chunk).c_str());
    return;
  }
  std::vector<bool> shown(failures.size(), false);
  for (size_t i = failures.size(); i-- > 0;) {
    if (shown[i]) continue;
    std::vector<uint32_t> same;
    for (size_t k = 0; k < i; ++k) {
      if (!shown[k] && failures[k].reason == failures[i].reason) {
        shown[k] = true;
        same.push_back(failures[k].attempt);
      }
    }
    std::string also = same.empty() ? "" : " (same on " + AttemptList(same) + ")";
    const AttemptFailure& f = failures[i];
    if (i + 1 == failures.size()) {
      std::fprintf(ReportStream(), "%s%s failed on worker %s (attempt %u; %s): %s%s\n", lead,
                   job.Describe(chunk).c_str(), stats.WorkerName(f.worker).c_str(), f.attempt,
                   ExhaustedAttempts(scheduler, chunk).c_str(), f.reason.c_str(), also.c_str());
    } else {
      std::fprintf(ReportStream(), "  earlier: attempt %u on worker %s: %s%s\n", f.attempt,
                   stats.WorkerName(f.worker).c_str(), f.reason.c_str(), also.c_str());
    }
  }
}

// Turns the end state into the exit code, printing the failure report.
ExitCode Conclude(const PlannedJob& job, const Scheduler& scheduler, const RunStats& stats,
                  const ModeResult& result) {
  if (result.kind == ModeResult::Kind::kInterrupted && !Interrupt::Requested()) {
    std::fprintf(ReportStream(), "fanout: cancelled; output discarded\n");  // JobHost::stop
    return ExitCode::kInterrupted;
  }
  if (result.kind == ModeResult::Kind::kInterrupted) {
    int sig = Interrupt::signal_number();
    std::fprintf(ReportStream(), "fanout: interrupted by %s; output discarded\n",
                 sig == SIGTERM  ? "SIGTERM"
                 : sig == SIGHUP ? "SIGHUP"
                                 : "SIGINT");
    return ExitCode::kInterrupted;
  }
  if (result.kind == ModeResult::Kind::kFailed) {
    std::fprintf(ReportStream(), "fanout: job failed: %s\n", result.message.c_str());
    return ExitCode::kJobFailed;
  }
  if (scheduler.Aborted()) {
    PrintChunkFailure(job, scheduler, stats, scheduler.failed_chunks().front(), "fanout: ");
    return ExitCode::kJobFailed;
  }
  if (!scheduler.failed_chunks().empty()) {
    std::fprintf(ReportStream(), "fanout: %zu of %zu chunks failed; their output is missing:\n",
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
  std::unique_ptr<JobLog> joblog;
};

Status OpenFiles(const JobConfig& config, JobFiles& files) {
  auto open = [](const std::string& path, std::optional<OutputFile>& into,
                 const std::string& shown = "") -> Status {
    if (path.empty()) return Status::Ok();
    auto f = OutputFile::Open(path, shown);
    if (!f.ok()) return f.status();
    into.emplace(std::move(f).value());
    return Status::Ok();
  };
  if (Status s =
          open(config.output.empty() ? "-" : config.output, files.output, config.output_shown);
      !s.ok()) {
    return s;
  }
  if (Status s = open(config.stats_json, files.stats); !s.ok()) return s;
  if (Status s = open(config.trace, files.trace); !s.ok()) return s;
  if (config.joblog.empty()) return Status::Ok();
  auto log = JobLog::Open(config.joblog, config.resume);
  if (!log.ok()) return log.status();
  files.joblog = std::move(log).value();
  return Status::Ok();
}

// --state: starts the acquired store (the manifest compared or written) and returns the
// chunks an earlier run finished (ascending). `hosted`: the state is a host's journal (a
// server resumes every job it runs), which says so only of a job that had begun.
Status OpenState(const PlannedJob& job, StateStore* state, const ContentHasher& spooled,
                 bool hosted, std::vector<uint64_t>& stored) {
  if (!state) return Status::Ok();
  Manifest manifest = JobManifest(job, InputFingerprint(job, spooled));
  if (Status s = state->Start(manifest, job.config.resume); !s.ok()) return s;
  for (const ChunkSpec& c : job.chunks) {
    if (state->Has(c)) stored.push_back(c.id);
  }
  if (job.config.resume && !(hosted && stored.empty())) {
    Log().info("resuming: {} of {} chunks were finished by an earlier run", stored.size(),
               job.chunks.size());
  }
  return Status::Ok();
}

// Scheduler options with the default reorder window: 4 chunks per worker, at least 8, and
// more for small chunks, as long as the window's chunks hold at most kWindowBudget bytes of
// input: one-record chunks need thousands in flight to keep workers busy (prefetch), while
// 4 MiB chunks keep the window at 8 (bounded memory on big files).
SchedulerOptions WithWindow(const PlannedJob& job, uint32_t jobs) {
  constexpr uint64_t kWindowBudget = 8u << 20;
  constexpr uint64_t kMaxWindow = 4096;
  const JobConfig& config = job.config;
  SchedulerOptions o = config.scheduler;
  if (config.window_given) return o;
  if (config.unordered) {
    o.window = 0;
    return o;
  }
  uint64_t chunks = std::max<uint64_t>(job.chunks.size(), 1);
  uint64_t average = std::max<uint64_t>(job.input.view().size() / chunks, 1);
  uint64_t affordable = config.range ? kMaxWindow : std::min(kMaxWindow, kWindowBudget / average);
  // Four per slot: with --slots, every slot of a local worker can have a chunk running.
  o.window = std::max<uint64_t>({8, uint64_t{4} * jobs * config.local_slots, affordable});
  return o;
}

// After the job: removes the state on success (unless --keep-state), else says where it is.
void SettleState(StateStore* state, const JobConfig& config, ExitCode code, bool hosts_state) {
  if (!state) return;
  if (code == ExitCode::kOk && !config.keep_state) {
    state->Remove();
  } else if (code != ExitCode::kOk && !hosts_state) {
    std::fprintf(ReportStream(),
                 "fanout: %zu finished chunks are kept in %s; run again with --resume\n",
                 state->finished(), state->dir().c_str());
  }
}

// Workers drop frames over --max-message, so a chunk that big could never be delivered.
Status CheckMessageLimit(const PlannedJob& job) {
  if (job.config.mode != Mode::kProcesses) return Status::Ok();
  for (uint64_t c = 0; c < job.chunks.size(); ++c) {
    uint64_t bytes = job.Bytes(c).size();
    if (bytes > static_cast<uint64_t>(job.config.max_message)) {
      return Status::Error(job.Describe(c) + " is " + std::to_string(bytes) +
                           " bytes, over --max-message " + std::to_string(job.config.max_message) +
                           ": use more chunks or raise --max-message");
    }
  }
  return Status::Ok();
}

// --dry-run: the plan on stdout, one line per chunk.
// `note`: auto mode's word on which parts of the plan are decided at run time, or "".
void PrintPlan(const PlannedJob& job, uint32_t jobs, const std::string& note) {
  std::printf("fanout: dry run: %zu chunks, task '%s', mode %s, %u workers; nothing was run\n",
              job.chunks.size(), job.config.task.c_str(),
              std::string(ModeName(job.config.mode)).c_str(), jobs);
  if (!note.empty()) std::printf("fanout: dry run: %s\n", note.c_str());
  for (const ChunkSpec& c : job.chunks) {
    if (c.counted) {
      std::printf("%s: %lu records, %lu bytes\n", job.Describe(c.id).c_str(),
                  static_cast<unsigned long>(c.records), static_cast<unsigned long>(c.bytes()));
    } else {
      std::printf("%s: %lu bytes\n", job.Describe(c.id).c_str(),
                  static_cast<unsigned long>(c.bytes()));
    }
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
  t.bytes_in = stats.telemetry.ok_bytes_in();
  t.bytes_out = stats.telemetry.ok_bytes_out();
  t.respawns = stats.respawns;
  t.rejected_messages = stats.rejected_messages;
  t.counters = scheduler.counters();
  t.failed_chunks = scheduler.failed_chunks();
  t.exit_code = ToInt(code);
  // Read only for --stats-json, the one place it is shown: the kernel formats all of
  // /proc/self/status for it (0.1 ms of each job on a warm server on an EPYC guest).
  if (!job.config.stats_json.empty()) t.peak_rss_bytes = PeakRssBytes();
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
    std::fprintf(ReportStream(), "fanout: internal error: output incomplete (%lu of %zu chunks)\n",
                 static_cast<unsigned long>(assembler.next_to_write()), job.chunks.size());
    output.Discard();
    return ExitCode::kJobFailed;
  }
  if (Status s = output.Commit(); !s.ok()) {
    if (output.reader_closed()) return ExitCode::kBrokenPipe;  // quietly, as `head` expects
    std::fprintf(ReportStream(), "fanout: %s\n", s.message().c_str());
    return ExitCode::kJobFailed;
  }
  return code;
}

// The output as JobHost::output_progress sees it: after each flush, how many bytes of the
// ordered output its file holds.
class ProgressSink : public ByteSink {
 public:
  ProgressSink(OutputFile& file, const std::function<void(const std::string&, uint64_t)>& told)
      : file_(file), told_(told) {}
  Status Write(std::string_view data) override { return file_.Write(data); }
  Status WriteFile(std::string_view data, FileBacking file) override {
    return file_.WriteFile(data, file);
  }
  Status Flush() override {
    Status s = file_.Flush();
    if (s.ok() && file_.bytes_written() != bytes_) {
      bytes_ = file_.bytes_written();
      told_(file_.temp_path(), bytes_);
    }
    return s;
  }

 private:
  OutputFile& file_;
  const std::function<void(const std::string&, uint64_t)>& told_;
  uint64_t bytes_ = 0;
};

void WriteReports(const RunStats& stats, const JobTotals& totals, JobFiles& files) {
  // `text` is built only when its file was asked for: a trace of many chunks is costly.
  auto write = [](std::optional<OutputFile>& file, const auto& text) {
    if (!file) return;
    Status s = file->Write(text());
    if (s.ok()) s = file->Commit();
    if (!s.ok()) std::fprintf(ReportStream(), "fanout: %s\n", s.message().c_str());
  };
  write(files.stats, [&] { return stats.telemetry.StatsJson(totals); });
  write(files.trace, [&] { return stats.telemetry.TraceJson(); });
}

}  // namespace

namespace {

ExitCode RunJobUnguarded(const JobConfig& config, JobObserver* observer, const JobHost& host) {
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
  // --state is taken (created, checked, locked) before any other file is opened, so a
  // refused or busy DIR leaves everything untouched.
  std::unique_ptr<StateStore> state;
  if (!config.state_dir.empty() && !config.dry_run) {
    auto acquired = StateStore::Acquire(config.state_dir);
    if (!acquired.ok()) {
      PrintUsageError(acquired.status().message());
      return ExitCode::kUsage;
    }
    state = std::move(acquired).value();
  }
  // Outputs are opened next so an unwritable path fails before any input is read.
  JobFiles files;
  if (Status s = OpenFiles(config, files); !s.ok()) {
    PrintUsageError(s.message());
    return ExitCode::kUsage;
  }
  // A host's cancel also ends a write waiting for a reader that stalled (a FIFO named by
  // a server's client), as Ctrl-C ends one in `fanout run` (-1 when nothing can cancel).
  StopFd cancelled(host.stop);
  files.output->StopWritesAlsoOn(cancelled.fd());
  ContentHasher spooled;  // with --state, a spooled input's content hash
  Result<JobInput> input =
      config.range ? Result<JobInput>(JobInput())
                   : JobInput::Open(config.input, config.max_spool, state ? &spooled : nullptr);
  if (!input.ok() && Interrupt::Requested()) {
    int sig = Interrupt::signal_number();
    std::fprintf(ReportStream(),
                 "fanout: interrupted by %s while reading the input; nothing written\n",
                 sig == SIGTERM  ? "SIGTERM"
                 : sig == SIGHUP ? "SIGHUP"
                                 : "SIGINT");
    return ExitCode::kInterrupted;
  }
  if (!input.ok()) {
    PrintUsageError(input.status().message());
    return ExitCode::kUsage;
  }

  uint32_t jobs = config.jobs_given ? config.jobs : DefaultJobs();
  bool may_listen = config.mode == Mode::kProcesses || config.mode == Mode::kAuto;
  if (config.mode == Mode::kSerial) jobs = 1;
  if (may_listen && !config.listen.empty() && !config.jobs_given) {
    jobs = 0;  // workers will connect to --listen
  }
  if (jobs == 0 && (!may_listen || config.listen.empty())) {
    PrintUsageError("-j 0 starts no local workers: use it with --listen in processes mode");
    return ExitCode::kUsage;
  }
  uint64_t default_chunks = DefaultChunksPerWorker(**task, config.args) *
                            std::max<uint32_t>(jobs, config.jobs_given ? 1 : DefaultJobs());
  auto start = SteadyClock::now();  // the wall time includes auto mode's calibration
  JobConfig resolved = config;      // auto mode: with the mode it chose
  PlannedJob job{resolved, **task, std::move(input).value(), {}, {}};
  std::optional<AutoPlan> auto_plan;
  std::string auto_choice;  // auto mode: what it chose and why ("" otherwise)
  if (config.mode == Mode::kAuto && !config.dry_run) {
    std::string ruled_out = CalibrationRuledOut(config, **task, job.input.view().size());
    if (ruled_out.empty()) {
      const JobInput& in = job.input;
      auto_plan = PlanAuto(
          config, **task, in.view(), DefaultJobs(),
          [&in](uint64_t upto) { in.ReleaseScanned(0, upto); }, FileBacking{in.fd(), 0});
      if (!auto_plan->status.ok()) {
        PrintUsageError(auto_plan->status.message());
        return ExitCode::kUsage;
      }
      resolved.mode = auto_plan->choice.mode;
      jobs = auto_plan->choice.workers;
      job.chunks = std::move(auto_plan->chunks);
      if (config.header && !config.range) job.header = HeaderLine(in.view());
      auto_choice = auto_plan->Summary(job.chunks.size());
    } else {
      resolved.mode = UncalibratedMode(config, **task, job.input.view().size());
      if (resolved.mode == Mode::kSerial) jobs = 1;
      auto_choice = std::string(ModeName(resolved.mode)) + ", " + std::to_string(jobs) +
                    " workers: " + ruled_out;
    }
    Log().info("auto: {}", auto_choice);
  }
  if (!auto_plan) {
    if (Status s = PlanJob(job, default_chunks); !s.ok()) {
      PrintUsageError(s.message());
      return ExitCode::kUsage;
    }
  }
  if (Status s = CheckMessageLimit(job); !s.ok()) {
    PrintUsageError(s.message());
    return ExitCode::kUsage;
  }
  if (config.dry_run) {
    std::string note;
    if (config.mode == Mode::kAuto) {
      std::string ruled_out = CalibrationRuledOut(config, **task, job.input.view().size());
      if (!ruled_out.empty()) {
        resolved.mode = UncalibratedMode(config, **task, job.input.view().size());
        if (resolved.mode == Mode::kSerial) jobs = 1;
        note = "auto will run " + std::string(ModeName(resolved.mode)) +
               " with this plan: " + ruled_out;
      } else {
        note = std::string(
                   "auto decides at run time, from the first chunks run to completion "
                   "(their start-up and per-record cost, and CPU share; a choice of serial "
                   "is checked on the next chunks for up to 0.5 s): serial or threads, the "
                   "worker count") +
               (config.jobs_given ? " (-j caps it)" : "") +
               (config.chunking.chunks || config.chunking.chunk_size
                    ? "; the chunks above are the user's and are kept"
                    : " and the chunk count; the chunks above are the default plan, not auto's");
      }
    }
    PrintPlan(job, jobs, note);
    return ExitCode::kOk;  // files are discarded by their destructors
  }
  Log().debug("planned {} chunks for task '{}' in mode {}", job.chunks.size(), config.task,
              ModeName(config.mode));

  std::vector<uint64_t> stored;
  if (Status s = OpenState(job, state.get(), spooled, host.hosts_state, stored); !s.ok()) {
    PrintUsageError(s.message());
    return ExitCode::kUsage;
  }
  if (state && !files.output->temp_path().empty()) {
    state->AdoptOutputTemp(config.output, files.output->temp_path());
  }

  Scheduler scheduler(job.chunks.size(), WithWindow(job, jobs));
  for (uint64_t chunk : stored) scheduler.MarkDone(chunk);
  std::optional<ProgressSink> progress;
  ByteSink* out = &*files.output;
  if (host.output_progress && !files.output->temp_path().empty()) {
    out = &progress.emplace(*files.output, host.output_progress);
  }
  ResultAssembler assembler(job.chunks.size(), !config.unordered, out);
  assembler.SetInput(job.input.view(), job.input.fd());
  RunStats stats;
  if (observer) stats.telemetry.SetListener(observer->listener());
  stats.telemetry.SetJobLog(files.joblog.get());
  stats.telemetry.KeepSpans(!config.trace.empty(), job.chunks.size());
  ResultSink sink(job, scheduler, assembler, stats, state.get(), stored);
  ModeResult result;
  if (Status s = sink.FeedStored(); !s.ok()) result = ModeResult::Failed(s.message());
  if (auto_plan && result.kind == ModeResult::Kind::kCompleted) {
    // The calibration's attempts are worker 0's (the coordinator's thread; serial mode's
    // worker, or thread-0, takes the name over when the chosen mode runs).
    stats.telemetry.StartedEarlier(
        std::chrono::duration<double>(SteadyClock::now() - start).count());
    stats.telemetry.SetWorker(0, {"calibration", "local"});
    // A chunk run beside the first on a second thread is that thread's (thread-1 takes
    // the name over in threads mode), so the trace draws the two side by side.
    const Calibration& cal = auto_plan->calibration;
    if (cal.failed_beside ||
        std::find(cal.beside.begin(), cal.beside.end(), true) != cal.beside.end()) {
      stats.telemetry.SetWorker(1, {"calibration", "local"});
    }
    stats.workers = 1;
    Status s = ApplyCalibration(*auto_plan, job, scheduler, sink, stats.telemetry);
    if (s.ok()) s = sink.Flush();
    if (!s.ok()) result = ModeResult::Failed(s.message());
  }
  if (result.kind == ModeResult::Kind::kCompleted && !scheduler.Finished()) {
    // On --resume this run's chunks are counted, so a progress rate and ETA are right.
    if (observer) {
      observer->OnRunStart(stats.telemetry, job.chunks.size() - stored.size(),
                           config.range ? JobObserver::Unit::kRecords : JobObserver::Unit::kBytes);
    }
    // OnRunEnd also when the mode throws (std::bad_alloc, caught by RunJob).
    struct RunEnd {
      JobObserver* observer;
      ~RunEnd() {
        if (observer) observer->OnRunEnd();
      }
    } run_end{observer};
    if (host.fleet && resolved.mode == Mode::kProcesses) {
      result = host.fleet->Run(job, scheduler, sink, stats, host.stop);
    } else {
      result = RunPlannedJob(job, jobs, scheduler, sink, stats, host.stop);
    }
  }
  double wall = std::chrono::duration<double>(SteadyClock::now() - start).count();

  // A write given up when the job was stopped (its reader had stalled) is the interrupt.
  if (files.output->stopped()) result = ModeResult::Interrupted();
  ExitCode code;
  Status changed = job.input.CheckUnchanged();
  if (!changed.ok() && result.kind != ModeResult::Kind::kInterrupted) {
    // Whatever the mode saw (workers that died reading past the end, spliced lines), the
    // output cannot be trusted: the input change is the reason given.
    std::fprintf(ReportStream(), "fanout: %s; output discarded\n", changed.message().c_str());
    code = ExitCode::kJobFailed;
  } else if (files.output->reader_closed() && result.kind == ModeResult::Kind::kFailed) {
    code = ExitCode::kBrokenPipe;  // like any Unix tool whose reader left: no message
  } else {
    code = Conclude(job, scheduler, stats, result);
  }
  code = SettleOutput(job, assembler, *files.output, code);
  if (code == ExitCode::kOk && files.output->reader_closed()) code = ExitCode::kBrokenPipe;
  SettleState(state.get(), config, code, host.hosts_state);
  JobTotals totals = Totals(job, scheduler, stats, wall, code, jobs);
  totals.auto_choice = auto_choice;
  if (auto_plan) totals.auto_calibration_chunks = auto_plan->calibration.chunks.size();
  if (observer) {
    observer->OnJobEnd({.totals = totals,
                        .auto_mode = config.mode == Mode::kAuto,
                        .workers_started = stats.workers,
                        .predicted_seconds = auto_plan ? auto_plan->PredictedSeconds() : 0,
                        .telemetry = stats.telemetry});
  }
  WriteReports(stats, totals, files);
  return code;
}

}  // namespace

ExitCode RunJob(const JobConfig& config, JobObserver* observer, const JobHost& host) {
  struct Stream {
    FILE* saved = report_stream;
    ~Stream() { report_stream = saved; }
  } restore;
  report_stream = host.report ? host.report : stderr;
  // The last resort: PlanLimits and the other checks refuse what is known to be too big,
  // but no allocation failure may end in abort() (files being written are discarded by
  // their destructors on the way out).
  try {
    return RunJobUnguarded(config, observer, host);
  } catch (const std::bad_alloc&) {
    std::fprintf(ReportStream(),
                 "fanout: out of memory: the job needs more than this machine can give "
                 "(try fewer or larger chunks, or a smaller --window)\n");
    return ExitCode::kJobFailed;
  }
}

}  // namespace fanout
