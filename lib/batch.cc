// RunBatch (batch.h): builds a JobConfig and an in-memory PlannedJob from a BatchSpec and
// runs it with the engine's RunPlannedJob, observing chunk outcomes through ResultSink.
#include "lib/batch.h"

#include <algorithm>

#include "common/chunking.h"
#include "engine/job.h"
#include "engine/listen_security.h"
#include "engine/plugins.h"
#include "engine/run_planned.h"
#include "lib/spmd.h"
#include "tasks/builtin_tasks.h"

namespace fanout {
namespace {

// Loads the plugins (once per process, engine/plugins.h); errors are PoolErrors. Returns the
// worker arguments that load the same plugins.
std::vector<std::string> LoadPlugins(const std::vector<std::string>& plugins) {
  auto args = LoadJobPlugins(plugins);
  if (!args.ok()) throw PoolError(args.status().message());
  return std::move(args).value();
}

JobConfig MakeConfig(const PoolSettings& options, const BatchSpec& spec) {
  JobConfig config;
  config.task = spec.task;
  config.args = spec.args;
  config.scheduler.retries = options.retries;
  config.scheduler.timeout = std::chrono::duration_cast<Micros>(options.timeout);
  config.scheduler.keep_going = spec.keep_going;
  config.min_workers = options.min_workers;
  config.wait_timeout = options.wait_timeout;
  config.worker_args = LoadPlugins(options.plugins);
  config.worker_args.insert(config.worker_args.end(), options.worker_args.begin(),
                            options.worker_args.end());
  config.worker_bin = options.worker_binary.empty() ? SelfWorkerBinary() : options.worker_binary;
  switch (options.mode) {
    case PoolMode::kSerial:
      config.mode = Mode::kSerial;
      break;
    case PoolMode::kThreads:
      config.mode = Mode::kThreads;
      break;
    case PoolMode::kProcesses:
    case PoolMode::kRemote:
      config.mode = Mode::kProcesses;
      config.listen = options.endpoint;
      break;
  }
  ListenSecurity security{options.curve_secret, options.authorized_keys, options.insecure};
  if (Status s = ApplyListenSecurity(security, config); !s.ok()) throw PoolError(s.message());
  return config;
}

std::vector<ChunkSpec> PlanChunks(const BatchSpec& spec, std::string& buffer) {
  std::vector<ChunkSpec> chunks;
  if (spec.range) {
    ChunkingOptions cut;
    cut.chunks = std::max<uint64_t>(spec.range_chunks, 1);
    return PlanRangeChunks(IntRange{spec.range->lo, spec.range->hi}, cut, cut.chunks);
  }
  for (const std::string& data : spec.chunks) {
    ChunkSpec c;
    c.id = chunks.size();
    c.begin = buffer.size();
    buffer += data;
    c.end = buffer.size();
    c.records = CountLines(data);
    c.first_record = chunks.empty() ? 0 : chunks.back().first_record + chunks.back().records;
    chunks.push_back(c);
  }
  return chunks;
}

std::exception_ptr ChunkError(const BatchSpec& spec, const Scheduler& scheduler,
                              const RunStats& stats, uint64_t chunk) {
  const auto& failures = scheduler.failures_of(chunk);
  std::string reason = failures.empty() ? "failed" : failures.back().reason;
  uint64_t id = chunk < spec.ids.size() ? spec.ids[chunk] : chunk;
  std::string message = "chunk " + std::to_string(id) + " failed";
  if (!failures.empty()) {
    message += " on worker " + stats.WorkerName(failures.back().worker) + " (attempt " +
               std::to_string(failures.back().attempt) + "; " +
               ExhaustedAttempts(scheduler, chunk, /*flags=*/false) + ")";
  }
  return std::make_exception_ptr(TaskError(id, reason, message + ": " + reason));
}

// Hands accepted outputs and final failures to the callbacks as they happen.
class CallbackObserver : public ChunkObserver {
 public:
  CallbackObserver(const BatchSpec& spec, const BatchCallbacks& callbacks,
                   const Scheduler& scheduler, const RunStats& stats, std::vector<bool>& reported)
      : spec_(spec),
        callbacks_(callbacks),
        scheduler_(scheduler),
        stats_(stats),
        reported_(reported) {}
  Status OnAccepted(uint64_t chunk, Blob output) override {
    reported_[chunk] = true;
    callbacks_.on_result(chunk, std::string(output.view()));
    return Status::Ok();
  }
  Status OnFailed(uint64_t chunk) override {
    reported_[chunk] = true;
    callbacks_.on_error(chunk, ChunkError(spec_, scheduler_, stats_, chunk));
    return Status::Ok();
  }

 private:
  const BatchSpec& spec_;
  const BatchCallbacks& callbacks_;
  const Scheduler& scheduler_;
  const RunStats& stats_;
  std::vector<bool>& reported_;
};

// No more threads or local workers than chunks: they would only start and stop. Remote
// mode starts none (workers connect to the endpoint).
uint32_t WorkerCount(const PoolSettings& options, const PlannedJob& job) {
  if (options.mode == PoolMode::kRemote) return 0;
  return static_cast<uint32_t>(std::min<uint64_t>(WorkersOf(options), job.chunks.size()));
}

// The pool's warm workers, started for the first job that needs them: as many local
// workers as the options say (each job uses those it has work for).
WarmProcesses& WarmFleet(WarmWorkers& warm, const JobConfig& config, const PoolSettings& options) {
  std::lock_guard lock(warm.mu);
  if (!warm.fleet) {
    uint32_t workers = options.mode == PoolMode::kRemote ? 0 : WorkersOf(options);
    warm.fleet = std::make_unique<WarmProcesses>(config, workers);
  }
  return *warm.fleet;
}

}  // namespace

uint32_t WorkersOf(const PoolSettings& options) {
  return options.workers ? options.workers : DefaultJobs();
}

void RunBatch(const PoolSettings& options, const BatchSpec& spec, const BatchCallbacks& callbacks,
              WarmWorkers* warm, std::stop_token stop) {
  TaskRegistry& registry = TaskRegistry::Global();
  RegisterBuiltinTasks(registry);
  bool local = options.mode == PoolMode::kSerial || options.mode == PoolMode::kThreads;
  if (options.mode == PoolMode::kRemote && options.endpoint.empty()) {
    throw PoolError("remote mode needs an endpoint for workers to connect to");
  }
  JobConfig config = MakeConfig(options, spec);  // loads plugins: before the task lookup
  auto task = ResolveTask(registry, spec.task, spec.args);
  // Workers may know tasks this process does not (plugins, other binaries): in processes
  // and remote mode an unknown task is left for the workers to refuse.
  TaskDef remote_only{spec.task, spec.task, "", nullptr, nullptr, nullptr, nullptr};
  if (!task.ok() && (local || registry.Find(spec.task) != nullptr)) {
    throw PoolError(task.status().message());
  }
  const TaskDef& def = task.ok() ? **task : remote_only;
  std::string buffer;
  std::vector<ChunkSpec> chunks = PlanChunks(spec, buffer);
  PlannedJob job{config, def, JobInput::FromBuffer(std::move(buffer)), std::move(chunks), {}};
  if (job.chunks.empty()) return;

  Scheduler scheduler(job.chunks.size(), config.scheduler);
  RunStats stats;
  std::vector<bool> reported(job.chunks.size(), false);
  CallbackObserver observer(spec, callbacks, scheduler, stats, reported);
  ResultSink sink(job, scheduler, observer, stats);
  ModeResult result;
  try {
    if (warm && config.mode == Mode::kProcesses) {
      result = WarmFleet(*warm, config, options).Run(job, scheduler, sink, stats, stop);
    } else {
      result = RunPlannedJob(job, WorkerCount(options, job), scheduler, sink, stats, stop);
    }
  } catch (const std::exception& e) {
    // Something below threw mid-job (e.g. the transport): the chunks not reported yet get
    // the error; the host program lives on.
    result = ModeResult::Failed(e.what());
  } catch (...) {
    result = ModeResult::Failed("unknown error");
  }

  std::string why = result.kind == ModeResult::Kind::kInterrupted ? "interrupted" : result.message;
  bool cancelled = result.kind != ModeResult::Kind::kCompleted && stop.stop_requested();
  for (uint64_t c = 0; c < job.chunks.size(); ++c) {
    if (reported[c]) continue;
    bool failed = std::find(scheduler.failed_chunks().begin(), scheduler.failed_chunks().end(),
                            c) != scheduler.failed_chunks().end();
    uint64_t id = c < spec.ids.size() ? spec.ids[c] : c;
    if (failed) {
      callbacks.on_error(c, ChunkError(spec, scheduler, stats, c));
    } else if (cancelled) {
      callbacks.on_error(
          c, std::make_exception_ptr(Cancelled("chunk " + std::to_string(id) + " cancelled")));
    } else if (result.kind != ModeResult::Kind::kCompleted) {
      callbacks.on_error(c, std::make_exception_ptr(PoolError("job failed: " + why)));
    } else {
      callbacks.on_error(c, std::make_exception_ptr(PoolError("chunk " + std::to_string(id) +
                                                              " not run: another chunk failed")));
    }
  }
}

}  // namespace fanout
