// `exec --warm -- CMD [ARGS...]`: the warm form of the exec task. CMD is started once per
// worker slot and kept (WarmPool); each chunk is sent to it over the warm framing
// (WARM_PROTOCOL.md) and its answer is the chunk's output. A chunk whose process dies,
// hangs until cancelled (--timeout) or breaks the framing fails with the reason, and the
// next chunk gets a fresh process. Thread-safety: as the exec task's (each attempt borrows
// its own process from the thread-safe pool).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/task.h"

namespace fanout {

class WarmProcess;

// The command of exec args of the form `--warm [--] CMD [ARGS...]`, or nothing when the
// args are not the warm form (then they are plain exec's).
std::optional<std::vector<std::string>> WarmArgv(std::span<const std::string> args);

// `exec` (tasks/builtin_tasks.cc) with its warm form added: args starting with --warm run
// through the warm process pool, the rest through `exec` unchanged.
TaskDef WithWarmForm(TaskDef exec);

// True when `def` with `args` is a warm command (auto mode books its start-up per slot).
bool IsWarmTask(const TaskDef& def, std::span<const std::string> args);

// Starts one warm process for `args` (a warm exec's) into the pool of worker `worker` and
// waits up to `timeout` for its READY line, so that the next chunk finds it warm. Returns
// the start-up time in seconds; an error if it could not start or died (the process is
// then dropped; the real run will report the cause per chunk).
Result<double> WarmUp(std::span<const std::string> args, const std::string& worker,
                      std::chrono::milliseconds timeout);

// Warm processes started ahead of need, outside the pool: auto mode starts the other
// slots' processes while it calibrates on the first one (their start-up overlaps the
// calibration instead of following it), then keeps as many as the chosen plan has slots
// for. Kept ones go into the pool of `worker` unready (a chunk sent to one waits for its
// READY); the others are killed by the destructor, having run no chunk.
class WarmSpares {
 public:
  WarmSpares();
  // Starts `count` processes of `args` (a warm exec's; none when it is not one, or when a
  // start fails: the real run then starts and reports as usual).
  WarmSpares(std::span<const std::string> args, const std::string& worker, uint32_t count);
  ~WarmSpares();
  WarmSpares(WarmSpares&&) noexcept;
  WarmSpares& operator=(WarmSpares&&) noexcept;

  size_t size() const { return processes_.size(); }
  // Gives up to `count` of them to the pool; the rest are killed when this is destroyed.
  void Keep(size_t count);

 private:
  std::string key_;
  std::vector<std::unique_ptr<WarmProcess>> processes_;
};

}  // namespace fanout
