// MeasuredRun: runs one task attempt and measures its wall and CPU time, the numbers
// behind the "achieved parallelism" figure. CPU time is the calling thread's CPU time plus
// that of child processes the task started and reaped on this thread (exec), which tasks
// report through AddChildCpuSeconds. Thread-safe: all state is thread-local.
#pragma once

#include <chrono>
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
// With `mark`, the attempt starts at *mark (the caller's last read of the steady clock) and
// *mark is set to its end: a batch of attempts reads the clock once an attempt, not twice
// (a read cost about 100 ns on a VM's kvm-clock: a third of a no-op chunk's time).
Measured MeasuredRun(const TaskDef& def, const ChunkInput& chunk, std::span<const std::string> args,
                     std::string& out, std::stop_token stop, bool thread_cpu = true,
                     std::chrono::steady_clock::time_point* mark = nullptr);

// The same for a task's pass-through form (TaskDef::run_view, which must be set; `chunk`
// has data, not a range): `out` is set to a slice of `chunk.data`.
Measured MeasuredView(const TaskDef& def, const ChunkInput& chunk,
                      std::span<const std::string> args, std::string_view& out,
                      bool thread_cpu = true,
                      std::chrono::steady_clock::time_point* mark = nullptr);

// Called by tasks that reap child processes: adds the child's user+system CPU time to
// the current thread's running attempt.
void AddChildCpuSeconds(double seconds);

// The calling thread's CPU time in seconds (CLOCK_THREAD_CPUTIME_ID).
double ThreadCpuSeconds();

// The thread's CPU time over a batch of quick attempts run with thread_cpu = false: the
// clock is read when the batch starts and when it ends, and each attempt's share is in
// proportion to its wall time. Used by one thread.
class BatchCpuClock {
 public:
  void Start() { cpu0_ = ThreadCpuSeconds(); }        // before the batch's first attempt
  void AddWall(double seconds) { wall_ += seconds; }  // each attempt's wall time
  void Stop() { cpu_ = ThreadCpuSeconds() - cpu0_; }  // after its last
  double Share(double wall_seconds) const {           // an attempt's CPU seconds
    return wall_ > 0 ? cpu_ * wall_seconds / wall_ : 0;
  }

 private:
  double cpu0_ = 0, cpu_ = 0, wall_ = 0;
};

}  // namespace fanout
