// RunBatch (batch.h): a JobConfig from the Pool's options and a CallSpec from the call's
// chunks, run with the engine's RunCallJob; failures become the Pool's exceptions.
#include "lib/batch.h"

#include <algorithm>

#include "engine/call_job.h"
#include "engine/job.h"
#include "engine/listen_security.h"
#include "engine/plugins.h"
#include "lib/spmd.h"

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

std::exception_ptr ErrorOf(uint64_t chunk, const BatchSpec& spec, const ChunkFailure& f) {
  uint64_t id = ChunkNumber(spec.ids, chunk);
  switch (f.kind) {
    case ChunkFailure::Kind::kFailed:
      return std::make_exception_ptr(TaskError(id, f.reason, f.message));
    case ChunkFailure::Kind::kCancelled:
      return std::make_exception_ptr(Cancelled(f.message));
    case ChunkFailure::Kind::kNotRun:
    case ChunkFailure::Kind::kJobFailed:
      break;
  }
  return std::make_exception_ptr(PoolError(f.message));
}

uint32_t WorkersOf(const PoolSettings& options) {
  return options.workers ? options.workers : DefaultJobs();
}

void RunBatch(const PoolSettings& options, const BatchSpec& spec, const BatchCallbacks& callbacks,
              WarmWorkers* warm, std::stop_token stop) {
  if (!options.server.empty()) return RunBatchOnServer(options, spec, callbacks, std::move(stop));
  if (options.mode == PoolMode::kRemote && options.endpoint.empty()) {
    throw PoolError("remote mode needs an endpoint for workers to connect to");
  }
  JobConfig config = MakeConfig(options, spec);  // loads plugins: before the task lookup
  CallSpec call;
  if (spec.range) {
    call.range = IntRange{spec.range->lo, spec.range->hi};
    call.range_chunks = spec.range_chunks;
  } else {
    size_t total = 0;
    for (const std::string& data : spec.chunks) total += data.size();
    call.bytes.reserve(total);
    for (const std::string& data : spec.chunks) {
      call.bytes += data;
      call.sizes.push_back(data.size());
    }
  }
  call.ids = spec.ids;
  CallCallbacks to_callbacks{callbacks.on_result, [&](uint64_t chunk, ChunkFailure f) {
                               callbacks.on_error(chunk, ErrorOf(chunk, spec, f));
                             }};
  std::function<WarmProcesses*()> fleet;
  if (warm) fleet = [&] { return &WarmFleet(*warm, config, options); };
  uint32_t workers = options.mode == PoolMode::kRemote ? 0 : WorkersOf(options);
  if (Status s = RunCallJob(config, std::move(call), to_callbacks, fleet, workers, std::move(stop));
      !s.ok()) {
    throw PoolError(s.message());
  }
}

}  // namespace fanout
