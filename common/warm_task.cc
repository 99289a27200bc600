// The warm exec: its argument form, the blocking driver for serial/threads modes and
// worker runner threads, and the AsyncAttempt for the worker's event loop. Both borrow a
// WarmProcess from WarmPool::Global() for one chunk and give it back if it stayed in step.
#include "common/warm_task.h"

#include <poll.h>
#include <string.h>

#include <algorithm>
#include <cerrno>

#include "common/exec_task.h"
#include "common/measured_run.h"
#include "common/warm_process.h"

namespace fanout {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int kPollMs = 20;  // how often a blocking driver checks `stop`
constexpr std::string_view kUsage = "(usage: exec --warm -- CMD [ARGS...])";

// The pool key: processes are shared only by attempts of one worker running one command.
std::string PoolKey(const std::string& worker, const std::vector<std::string>& argv) {
  std::string key = worker;
  for (const std::string& a : argv) {
    key += '\0';
    key += a;
  }
  return key;
}

int PollTimeoutMs(const WarmProcess& process) {
  auto deadline = process.deadline();
  if (!deadline) return kPollMs;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - SteadyClock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, kPollMs));
}

// A fresh warm process of `argv` for the slots of `worker`.
Result<std::unique_ptr<WarmProcess>> StartFor(const std::vector<std::string>& argv,
                                              const std::string& worker) {
  return WarmProcess::Start(argv, {{"FANOUT_WORKER", worker}});
}

// A warm process for `key`: an idle one from the pool, or a fresh one.
Result<std::unique_ptr<WarmProcess>> Borrow(const std::string& key,
                                            const std::vector<std::string>& argv,
                                            const std::string& worker) {
  if (auto idle = WarmPool::Global().Take(key)) return idle;
  return StartFor(argv, worker);
}

// Runs `process` without blocking past kPollMs until `done()` or `stop`; false if poll
// failed (errno set).
template <typename Done>
bool Drive(WarmProcess& process, std::stop_token stop, Done done) {
  std::vector<pollfd> fds;
  while (!done()) {
    if (stop.stop_requested()) return true;
    fds.clear();
    process.AppendFds(fds);
    if (poll(fds.data(), fds.size(), PollTimeoutMs(process)) < 0 && errno != EINTR) return false;
    process.Advance();
  }
  return true;
}

Status RunWarm(const ChunkInput& chunk, const std::vector<std::string>& argv, std::string& out,
               std::stop_token stop) {
  if (stop.stop_requested()) return Status::Error("cancelled");
  std::string storage;
  std::string_view data = ChunkBytes(chunk, storage);
  std::string key = PoolKey(chunk.worker_id, argv);
  auto borrowed = Borrow(key, argv, chunk.worker_id);
  if (!borrowed.ok()) return borrowed.status();
  std::unique_ptr<WarmProcess> process = std::move(borrowed).value();
  process->BeginChunk(chunk.chunk_id, chunk.attempt, data);
  if (!process->Advance() && !Drive(*process, stop, [&] { return process->chunk_done(); })) {
    char buf[256];
    return Status::Error("exec --warm: '" + argv[0] +
                         "': poll failed: " + strerror_r(errno, buf, sizeof buf));
  }
  if (!process->chunk_done()) return Status::Error("cancelled");  // the process is killed
  AddChildCpuSeconds(process->chunk_cpu_seconds());
  Status status = process->status();
  if (status.ok()) {
    if (out.empty()) {
      out = std::move(process->output());
    } else {
      out += process->output();
    }
  }
  WarmPool::Global().Give(key, std::move(process));
  return status;
}

class WarmAttempt : public AsyncAttempt {
 public:
  ~WarmAttempt() override {
    if (process_) WarmPool::Global().Give(key_, std::move(process_));
  }
  Status Start(const ChunkInput& chunk, const std::vector<std::string>& argv) {
    std::string_view data = ChunkBytes(chunk, storage_);
    key_ = PoolKey(chunk.worker_id, argv);
    auto borrowed = Borrow(key_, argv, chunk.worker_id);
    if (!borrowed.ok()) return borrowed.status();
    process_ = std::move(borrowed).value();
    process_->BeginChunk(chunk.chunk_id, chunk.attempt, data);
    return Status::Ok();
  }
  void AppendFds(std::vector<pollfd>& fds) const override { process_->AppendFds(fds); }
  std::optional<TimePoint> deadline() const override { return process_->deadline(); }
  bool Advance(TimePoint) override { return process_->Advance(); }
  void Cancel() override { process_->Kill(); }
  AsyncOutcome Take() override {
    AsyncOutcome outcome{process_->status(), {}, process_->chunk_cpu_seconds()};
    if (outcome.status.ok()) outcome.output = std::move(process_->output());
    return outcome;
  }

 private:
  std::string storage_;  // a range chunk's materialized records
  std::string key_;
  std::unique_ptr<WarmProcess> process_;  // borrowed; given back if still in step
};

Status ValidateWarm(const std::vector<std::string>& argv) {
  if (argv.empty()) return Status::Error("exec --warm: missing command " + std::string(kUsage));
  if (argv[0].empty()) return Status::Error("exec --warm: the command name is empty");
  return Status::Ok();
}

// The command of a valid warm exec's `args`, or nothing (not warm, or not valid).
std::optional<std::vector<std::string>> ValidWarmArgv(std::span<const std::string> args) {
  auto argv = WarmArgv(args);
  if (!argv || !ValidateWarm(*argv).ok()) return std::nullopt;
  return argv;
}

}  // namespace

std::optional<std::vector<std::string>> WarmArgv(std::span<const std::string> args) {
  if (args.empty() || args[0] != "--warm") return std::nullopt;
  args = args.subspan(1);
  if (!args.empty() && args[0] == "--") args = args.subspan(1);
  return std::vector<std::string>(args.begin(), args.end());
}

TaskDef WithWarmForm(TaskDef exec) {
  TaskDef def = std::move(exec);
  def.usage = "exec [--warm] -- CMD [ARGS...]";
  def.summary += "; with --warm, one long-lived CMD per slot speaking WARM_PROTOCOL.md";
  def.validate = [plain = def.validate](std::span<const std::string> args) {
    if (auto argv = WarmArgv(args)) return ValidateWarm(*argv);
    return plain ? plain(args) : Status::Ok();
  };
  def.run = [plain = def.run](const ChunkInput& chunk, std::span<const std::string> args,
                              std::string& out, std::stop_token stop) {
    auto argv = WarmArgv(args);
    if (!argv) return plain(chunk, args, out, std::move(stop));
    if (Status s = ValidateWarm(*argv); !s.ok()) return s;
    return RunWarm(chunk, *argv, out, std::move(stop));
  };
  def.start_async =
      [plain = def.start_async](
          const ChunkInput& chunk,
          std::span<const std::string> args) -> Result<std::unique_ptr<AsyncAttempt>> {
    auto argv = WarmArgv(args);
    if (!argv) return plain(chunk, args);
    if (Status s = ValidateWarm(*argv); !s.ok()) return s;
    auto attempt = std::make_unique<WarmAttempt>();
    if (Status s = attempt->Start(chunk, *argv); !s.ok()) return s;
    return std::unique_ptr<AsyncAttempt>(std::move(attempt));
  };
  return def;
}

bool IsWarmTask(const TaskDef& def, std::span<const std::string> args) {
  return def.name == "exec" && WarmArgv(args).has_value();
}

Result<double> WarmUp(std::span<const std::string> args, const std::string& worker,
                      std::chrono::milliseconds timeout) {
  auto argv = ValidWarmArgv(args);
  if (!argv) return Status::Error("not a warm command");
  auto start = SteadyClock::now();
  auto started = StartFor(*argv, worker);
  if (!started.ok()) return started.status();
  std::unique_ptr<WarmProcess> process = std::move(started).value();
  std::stop_source never;
  auto end = start + timeout;
  Drive(*process, never.get_token(),
        [&] { return process->ready() || process->chunk_done() || SteadyClock::now() >= end; });
  double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  if (!process->ready()) {
    return Status::Error(process->chunk_done() ? process->status().message()
                                               : "exec --warm: no READY line in time");
  }
  process->MarkCpu();
  WarmPool::Global().Give(PoolKey(worker, *argv), std::move(process));
  return seconds;
}

WarmSpares::WarmSpares() = default;

WarmSpares::WarmSpares(std::span<const std::string> args, const std::string& worker,
                       uint32_t count) {
  auto argv = ValidWarmArgv(args);
  if (!argv) return;
  key_ = PoolKey(worker, *argv);
  for (uint32_t i = 0; i < count; ++i) {
    auto started = StartFor(*argv, worker);
    if (!started.ok()) break;
    processes_.push_back(std::move(started).value());
  }
}

WarmSpares::~WarmSpares() = default;  // ~WarmProcess kills and reaps what was not kept
WarmSpares::WarmSpares(WarmSpares&&) noexcept = default;
WarmSpares& WarmSpares::operator=(WarmSpares&&) noexcept = default;

void WarmSpares::Keep(size_t count) {
  count = std::min(count, processes_.size());
  for (size_t i = 0; i < count; ++i) WarmPool::Global().Give(key_, std::move(processes_[i]));
  processes_.erase(processes_.begin(), processes_.begin() + static_cast<ptrdiff_t>(count));
}

}  // namespace fanout
