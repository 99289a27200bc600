// Tasks: named functions applied to one chunk of records. One registry serves every mode
// (serial, threads, worker processes), so a task behaves identically wherever it runs.
// Thread-safety: a TaskFn may run concurrently on several threads with different chunks;
// the registry is filled at start-up (static registration) and read-only afterwards.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "common/async_attempt.h"
#include "common/file_backing.h"
#include "common/status.h"
#include "fanout/task.h"

namespace fanout {

// Half-open integer interval [lo, hi): the records of a `--range` chunk.
struct IntRange {
  int64_t lo = 0;
  int64_t hi = 0;
  bool operator==(const IntRange&) const = default;
};

// One chunk as a task sees it. Exactly one representation is meaningful:
// `range` for --range input (data is then empty), otherwise `data`, the chunk's
// records byte for byte (lines including their terminators).
struct ChunkInput {
  std::string_view data;
  std::optional<IntRange> range;
  uint64_t chunk_id = 0;
  uint32_t attempt = 0;
  std::string worker_id;  // "" when run in the coordinator (serial/threads)
  // The --max-message limit on the attempt's output in bytes (0 = none). `exec` enforces it
  // while the command writes (Command); other tasks' outputs are checked when they end.
  uint64_t max_output = 0;
  // The open file `data` shows, when the job has one and `data` is its bytes as they are
  // (no --header line before them; never set for a range): `exec` splices it into the
  // command's stdin.
  FileBacking file;
};

// Returns the chunk's records as bytes: `data` itself, or a range materialized as one
// decimal integer per line ("lo\n...hi-1\n"). `storage` keeps a materialized range alive.
std::string_view ChunkBytes(const ChunkInput& chunk, std::string& storage);

// Runs the task on one chunk, appending its output to `out`. A non-OK status is a chunk
// error whose message names the cause. Long-running tasks must honour `stop` promptly
// (a cancelled attempt's output is discarded, its status ignored).
using TaskFn = std::function<Status(const ChunkInput& chunk, std::span<const std::string> args,
                                    std::string& out, std::stop_token stop)>;

// The form of a task whose output is always a slice of its input (identity): for a chunk
// with data (not a range) it sets `out` to a view within `chunk.data` and copies nothing,
// so a caller that keeps the input alive can pass the bytes along as they are. Its output
// and errors must equal run's.
using ViewFn = std::function<Status(const ChunkInput& chunk, std::span<const std::string> args,
                                    std::string_view& out)>;

// Checks a task's arguments before any chunk runs (a usage error, exit code 2).
using ArgsValidator = std::function<Status(std::span<const std::string> args)>;

// Starts an attempt of a task's async form (async_attempt.h), for an event loop to drive.
// `chunk.data` must stay valid until the attempt is destroyed; the attempt owns anything
// else it needs. An error status fails the attempt before it starts (e.g. a command that
// cannot be spawned). Must not block.
using AsyncStart = std::function<Result<std::unique_ptr<AsyncAttempt>>(
    const ChunkInput& chunk, std::span<const std::string> args)>;

struct TaskDef {
  std::string name;
  std::string usage;    // e.g. "sleep MS": shown in --help and in usage errors
  std::string summary;  // one line, shown in --help
  ArgsValidator validate;
  TaskFn run;
  // The same task as an AsyncAttempt, for tasks that mostly wait (sleep, exec); empty for
  // the others. Output and errors must equal run's. Workers run such attempts on their
  // event loop, so --slots may far exceed the cores.
  AsyncStart start_async;
  // The same task as a slice of its input (see ViewFn); empty for tasks that make bytes.
  ViewFn run_view;
};

// Thread-safe: tasks may be registered (a plugin loaded by one Pool call) while other
// threads run jobs. A TaskDef, once registered, stays at its address for the registry's
// life, so the `const TaskDef*` and `const TaskDef&` that running jobs hold stay valid.
class TaskRegistry {
 public:
  // The process-wide registry that built-in tasks and FANOUT_TASK register into.
  static TaskRegistry& Global();

  // Registers `def`; returns false if the name is taken (the first registration wins).
  bool Register(TaskDef def);
  const TaskDef* Find(std::string_view name) const;
  std::vector<std::string> Names() const;   // sorted
  std::vector<const TaskDef*> All() const;  // in registration order

 private:
  const TaskDef* FindLocked(std::string_view name) const;

  mutable std::shared_mutex mu_;
  std::deque<TaskDef> defs_;  // a deque: push_back never moves the elements
};

// Looks the task up and validates its args: a clear one-line error for unknown tasks.
Result<const TaskDef*> ResolveTask(const TaskRegistry& registry, std::string_view name,
                                   std::span<const std::string> args);

// Runs a task with the exceptions it might throw turned into a chunk error.
Status RunTask(const TaskDef& def, const ChunkInput& chunk, std::span<const std::string> args,
               std::string& out, std::stop_token stop);

// Turns a public task (fanout/task.h) into a TaskDef: arguments are validated, a range
// chunk is materialized unless `options.raw_ranges`, exceptions become chunk errors
// (TaskFailed: its message; others: "NAME: what()") and the result is appended to `out`.
// The built-in tasks and register_task/FANOUT_TASK all go through here.
TaskDef MakeTaskDef(const std::string& name, TaskFunction fn, TaskOptions options);

// The built-in tasks are registered by RegisterBuiltinTasks (tasks/builtin_tasks.h).

}  // namespace fanout
