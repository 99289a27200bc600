// RunCallJob (call_job.h): an in-memory PlannedJob from a CallSpec, run with RunPlannedJob
// or a warm fleet, each chunk's outcome observed through ResultSink.
#include "engine/call_job.h"

#include <algorithm>

#include "engine/planned_job.h"
#include "engine/run_planned.h"
#include "engine/warm_processes.h"
#include "tasks/builtin_tasks.h"

namespace fanout {
namespace {

std::vector<ChunkSpec> PlanCall(const CallSpec& spec) {
  if (spec.range) {
    ChunkingOptions cut;
    cut.chunks = spec.chunk_count();
    return PlanRangeChunks(*spec.range, cut, cut.chunks);
  }
  std::vector<ChunkSpec> chunks;
  uint64_t at = 0;
  for (uint64_t size : spec.sizes) {
    ChunkSpec c;
    c.id = chunks.size();
    c.begin = at;
    c.end = at += size;
    c.records = CountLines(std::string_view(spec.bytes).substr(c.begin, size));
    c.first_record = chunks.empty() ? 0 : chunks.back().first_record + chunks.back().records;
    chunks.push_back(c);
  }
  return chunks;
}

ChunkFailure Failed(const CallSpec& spec, const Scheduler& scheduler, const RunStats& stats,
                    uint64_t chunk) {
  const auto& failures = scheduler.failures_of(chunk);
  ChunkFailure f;
  f.reason = failures.empty() ? "failed" : failures.back().reason;
  f.message = "chunk " + std::to_string(ChunkNumber(spec.ids, chunk)) + " failed";
  if (!failures.empty()) {
    f.message += " on worker " + stats.WorkerName(failures.back().worker) + " (attempt " +
                 std::to_string(failures.back().attempt) + "; " +
                 ExhaustedAttempts(scheduler, chunk, /*flags=*/false) + ")";
  }
  f.message += ": " + f.reason;
  return f;
}

// Hands accepted outputs and final failures to the callbacks as they happen.
class CallbackObserver : public ChunkObserver {
 public:
  CallbackObserver(const CallSpec& spec, const CallCallbacks& callbacks, const Scheduler& scheduler,
                   const RunStats& stats, std::vector<bool>& reported)
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
    callbacks_.on_error(chunk, Failed(spec_, scheduler_, stats_, chunk));
    return Status::Ok();
  }

 private:
  const CallSpec& spec_;
  const CallCallbacks& callbacks_;
  const Scheduler& scheduler_;
  const RunStats& stats_;
  std::vector<bool>& reported_;
};

}  // namespace

const char* ChunkFailureKindName(ChunkFailure::Kind kind) {
  switch (kind) {
    case ChunkFailure::Kind::kFailed:
      return "failed";
    case ChunkFailure::Kind::kCancelled:
      return "cancelled";
    case ChunkFailure::Kind::kNotRun:
      return "not_run";
    case ChunkFailure::Kind::kJobFailed:
      break;
  }
  return "job_failed";
}

ChunkFailure::Kind ChunkFailureKindNamed(std::string_view name) {
  for (auto kind :
       {ChunkFailure::Kind::kFailed, ChunkFailure::Kind::kCancelled, ChunkFailure::Kind::kNotRun}) {
    if (name == ChunkFailureKindName(kind)) return kind;
  }
  return ChunkFailure::Kind::kJobFailed;
}

Status RunCallJob(const JobConfig& config, CallSpec spec, const CallCallbacks& callbacks,
                  const std::function<WarmProcesses*()>& fleet, uint32_t workers,
                  std::stop_token stop) {
  TaskRegistry& registry = TaskRegistry::Global();
  RegisterBuiltinTasks(registry);
  auto task = ResolveTask(registry, config.task, config.args);
  // Workers may know tasks this process does not (plugins, other binaries): in processes
  // mode an unknown task is left for the workers to refuse.
  TaskDef remote_only{config.task, config.task, "", nullptr, nullptr, nullptr, nullptr};
  if (!task.ok() && (config.mode != Mode::kProcesses || registry.Find(config.task) != nullptr)) {
    return task.status();
  }
  const TaskDef& def = task.ok() ? **task : remote_only;
  std::vector<ChunkSpec> chunks = PlanCall(spec);
  PlannedJob job{config, def, JobInput::FromBuffer(std::move(spec.bytes)), std::move(chunks), {}};
  if (job.chunks.empty()) return Status::Ok();

  Scheduler scheduler(job.chunks.size(), config.scheduler);
  RunStats stats;
  std::vector<bool> reported(job.chunks.size(), false);
  CallbackObserver observer(spec, callbacks, scheduler, stats, reported);
  ResultSink sink(job, scheduler, observer, stats);
  ModeResult result;
  try {
    if (fleet && config.mode == Mode::kProcesses) {
      result = fleet()->Run(job, scheduler, sink, stats, stop);
    } else {
      uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(workers, job.chunks.size()));
      result = RunPlannedJob(job, n, scheduler, sink, stats, stop);
    }
  } catch (const std::exception& e) {
    // Something below threw mid-job (e.g. the transport): the chunks not reported yet get
    // the error; the caller lives on.
    result = ModeResult::Failed(e.what());
  } catch (...) {
    result = ModeResult::Failed("unknown error");
  }

  std::string why = result.kind == ModeResult::Kind::kInterrupted ? "interrupted" : result.message;
  bool cancelled = result.kind != ModeResult::Kind::kCompleted && stop.stop_requested();
  const auto& failed = scheduler.failed_chunks();
  for (uint64_t c = 0; c < job.chunks.size(); ++c) {
    if (reported[c]) continue;
    std::string id = std::to_string(ChunkNumber(spec.ids, c));
    if (std::find(failed.begin(), failed.end(), c) != failed.end()) {
      callbacks.on_error(c, Failed(spec, scheduler, stats, c));
    } else if (cancelled) {
      callbacks.on_error(
          c, {ChunkFailure::Kind::kCancelled, "cancelled", "chunk " + id + " cancelled"});
    } else if (result.kind != ModeResult::Kind::kCompleted) {
      callbacks.on_error(c, {ChunkFailure::Kind::kJobFailed, why, "job failed: " + why});
    } else {
      callbacks.on_error(c, {ChunkFailure::Kind::kNotRun, "another chunk failed",
                             "chunk " + id + " not run: another chunk failed"});
    }
  }
  return Status::Ok();
}

}  // namespace fanout
