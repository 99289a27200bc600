// fanout/task.h: defining tasks, the named functions fanout applies to each chunk.
// A task receives one chunk (its records as bytes) and the job's arguments and returns the
// chunk's output bytes; throwing fails the chunk (the exception's message is the reason,
// and fanout retries it like any failed attempt). Register tasks at start-up with
// FANOUT_TASK (static registration) or register_task; the registry is read-only once work
// starts. The built-in tasks (identity, sleep, product, exec) are registered the same way.
// Thread-safety: a task may run on several threads at once, each call with its own chunk.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "fanout/export.h"

namespace fanout {

// Half-open integer interval [lo, hi) of a range chunk (Pool::map_range, `--range`).
struct NumberRange {
  int64_t lo = 0;
  int64_t hi = 0;
};

// One chunk as a task sees it. Valid only during the call.
struct TaskChunk {
  // The chunk's records byte for byte (lines including their terminators). A range chunk
  // is materialized as one decimal integer per line, unless the task was registered with
  // TaskOptions::raw_ranges (then `data` is empty and `range` is set).
  std::string_view data;
  std::optional<NumberRange> range;
  uint64_t id = 0;          // the chunk's index in the job (0-based, input order)
  uint32_t attempt = 0;     // 1-based; > 1 after a failure or a lost worker
  std::string_view worker;  // the worker's name; "" when run in the calling process
  std::stop_token stop;     // requested when this attempt is cancelled: return promptly

  // The records without their line terminators ("\n" or "\r\n").
  FANOUT_API std::vector<std::string_view> lines() const;
};

using TaskArgs = std::span<const std::string>;

// The chunk's output bytes. Throw to fail the chunk.
using TaskFunction = std::function<std::string(const TaskChunk& chunk, TaskArgs args)>;

// Thrown by a task to fail its chunk with exactly this message (other exceptions are
// reported as "TASK: what()").
class FANOUT_API TaskFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TaskOptions {
  std::string usage;    // e.g. "sleep MS" (defaults to the name): shown in `fanout --help`
  std::string summary;  // one line for `fanout --help`
  // Checks the arguments before any chunk runs; throw (e.g. TaskFailed) to refuse them.
  std::function<void(TaskArgs args)> validate;
  bool raw_ranges = false;  // see TaskChunk::data
};

// Registers a task in the process-wide registry. Returns false if the name is taken (the
// first registration wins) or empty.
FANOUT_API bool register_task(const std::string& name, TaskFunction fn, TaskOptions options = {});

// The names of every registered task (built-ins included), sorted.
FANOUT_API std::vector<std::string> task_names();

// The spellings before the public API settled on snake_case functions (fanout/pool.h);
// kept so existing programs build, to be removed in 0.2.
[[deprecated("use fanout::register_task")]] inline bool RegisterTask(const std::string& name,
                                                                     TaskFunction fn,
                                                                     TaskOptions options = {}) {
  return register_task(name, std::move(fn), std::move(options));
}
[[deprecated("use fanout::task_names")]] inline std::vector<std::string> TaskNames() {
  return task_names();
}

// Adapts `fn(chunk, args)` or `fn(chunk)` returning something convertible to std::string.
template <typename Fn>
TaskFunction make_task_function(Fn fn) {
  if constexpr (std::is_invocable_v<Fn&, const TaskChunk&, TaskArgs>) {
    return [fn = std::move(fn)](const TaskChunk& c, TaskArgs a) { return std::string(fn(c, a)); };
  } else {
    static_assert(
        std::is_invocable_v<Fn&, const TaskChunk&>,
        "a fanout task is called as fn(const TaskChunk&, TaskArgs) or fn(const TaskChunk&)");
    return [fn = std::move(fn)](const TaskChunk& c, TaskArgs) { return std::string(fn(c)); };
  }
}

}  // namespace fanout

#define FANOUT_TASK_CONCAT_INNER(a, b) a##b
#define FANOUT_TASK_CONCAT(a, b) FANOUT_TASK_CONCAT_INNER(a, b)
// FANOUT_TASK("name", fn [, TaskOptions]): registers fn at static initialization, in the
// program or shared library that contains this line.
#define FANOUT_TASK(name, ...)                                                    \
  [[maybe_unused]] static const bool FANOUT_TASK_CONCAT(fanout_task_, __LINE__) = \
      ::fanout::detail::register_at_startup(name, __VA_ARGS__)

namespace fanout::detail {
template <typename Fn>
bool register_at_startup(const std::string& name, Fn fn, TaskOptions options = {}) {
  return register_task(name, make_task_function(std::move(fn)), std::move(options));
}
}  // namespace fanout::detail
