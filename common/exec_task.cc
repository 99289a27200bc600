// RunCommand and the exec AsyncAttempt (exec_task.h): two drivers of one Command.
#include "common/exec_task.h"

#include <poll.h>
#include <string.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "common/measured_run.h"

namespace fanout {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int kPollMs = 20;  // how often a running command checks `stop`

// The poll timeout for `command`: kPollMs, or less when its deadline is sooner.
int PollTimeoutMs(const Command& command) {
  auto deadline = command.deadline();
  if (!deadline) return kPollMs;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - SteadyClock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, kPollMs));
}

class ExecAttempt : public AsyncAttempt {
 public:
  // Starts the command; `data` must outlive the attempt, `storage` backs a range.
  Status Start(const ChunkInput& chunk, std::span<const std::string> args) {
    std::string_view data = ChunkBytes(chunk, storage_);
    auto command = Command::Start(std::vector<std::string>(args.begin(), args.end()), data,
                                  ExecVariables(chunk.chunk_id, chunk.attempt, chunk.worker_id),
                                  chunk.max_output, chunk.file);
    if (!command.ok()) return command.status();
    command_ = std::move(command).value();
    return Status::Ok();
  }
  void AppendFds(std::vector<pollfd>& fds) const override { command_->AppendFds(fds); }
  std::optional<TimePoint> deadline() const override { return command_->deadline(); }
  bool Advance(TimePoint) override { return command_->Advance(); }
  void Cancel() override { command_->Kill(); }
  AsyncOutcome Take() override {
    return AsyncOutcome{command_->status(), std::move(command_->output()),
                        command_->child_cpu_seconds()};
  }

 private:
  std::string storage_;  // a range chunk's materialized records (stdin)
  std::unique_ptr<Command> command_;
};

}  // namespace

Status RunCommand(const std::vector<std::string>& argv, std::string_view input,
                  const EnvVars& extra_env, std::string& out, std::stop_token stop,
                  uint64_t max_output, FileBacking file) {
  if (argv.empty() || argv[0].empty()) return Status::Error("exec: missing command");
  if (stop.stop_requested()) return Status::Error("cancelled");
  auto started = Command::Start(argv, input, extra_env, max_output, file);
  if (!started.ok()) return started.status();
  Command& command = **started;
  std::vector<pollfd> fds;
  while (!command.Advance()) {
    if (stop.stop_requested()) {
      command.Kill();  // the destructor reaps
      out += command.output();
      return Status::Error("cancelled");
    }
    fds.clear();
    command.AppendFds(fds);
    if (poll(fds.data(), fds.size(), PollTimeoutMs(command)) < 0 && errno != EINTR) {
      char buf[256];
      std::string error = strerror_r(errno, buf, sizeof buf);  // GNU: returns the text
      command.Kill();
      return Status::Error("exec: '" + argv[0] + "': poll failed: " + error);
    }
  }
  if (out.empty()) {
    out = std::move(command.output());
  } else {
    out += command.output();
  }
  AddChildCpuSeconds(command.child_cpu_seconds());
  return command.status();
}

EnvVars ExecVariables(uint64_t chunk, uint32_t attempt, std::string_view worker) {
  return {{"FANOUT_CHUNK", std::to_string(chunk)},
          {"FANOUT_ATTEMPT", std::to_string(attempt)},
          {"FANOUT_WORKER", std::string(worker)}};
}

Result<std::unique_ptr<AsyncAttempt>> StartExecAttempt(const ChunkInput& chunk,
                                                       std::span<const std::string> args) {
  if (args.empty() || args[0].empty()) return Status::Error("exec: missing command");
  auto attempt = std::make_unique<ExecAttempt>();
  if (Status s = attempt->Start(chunk, args); !s.ok()) return s;
  return std::unique_ptr<AsyncAttempt>(std::move(attempt));
}

Status RunExecChunk(const ChunkInput& chunk, std::span<const std::string> args, std::string& out,
                    std::stop_token stop) {
  if (args.empty()) return Status::Error("exec: missing command");
  std::string storage;  // a range chunk's materialized records
  std::string_view data = ChunkBytes(chunk, storage);
  return RunCommand(std::vector<std::string>(args.begin(), args.end()), data,
                    ExecVariables(chunk.chunk_id, chunk.attempt, chunk.worker_id), out,
                    std::move(stop), chunk.max_output, chunk.file);
}

}  // namespace fanout
