// MeasuredRun: runs one task attempt and measures its wall and CPU time, the numbers
// behind the "achieved parallelism" figure. CPU time is the calling thread's CPU time plus
// that of child processes the task started and reaped on this thread (exec), which tasks
// report through AddChildCpuSeconds. Thread-safe: all state is thread-local.
#pragma once

#include <span>
#include <stop_token>
#include <string>

#include "common/status.h"
#include "common/task.h"

namespace fanout {

struct Measured {
  Status status;
  double cpu_seconds = 0;
  double wall_seconds = 0;
};

// Runs `def` on `chunk` (exceptions become errors, see RunTask), appending to `out`.
// With `thread_cpu` false the thread's CPU clock is not read (it is a system call, not a
// vDSO read: for microsecond chunks it costs more than the task) and cpu_seconds holds
// only reaped children's time; a caller running a batch of chunks reads the clock around
// the whole batch instead.
Measured MeasuredRun(const TaskDef& def, const ChunkInput& chunk, std::span<const std::string> args,
                     std::string& out, std::stop_token stop, bool thread_cpu = true);

// Called by tasks that reap child processes: adds the child's user+system CPU time to
// the current thread's running attempt.
void AddChildCpuSeconds(double seconds);

// The calling thread's CPU time in seconds (CLOCK_THREAD_CPUTIME_ID).
double ThreadCpuSeconds();

}  // namespace fanout
