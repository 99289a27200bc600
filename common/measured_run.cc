#include "common/measured_run.h"

#include <time.h>

#include <chrono>

namespace fanout {
namespace {

thread_local double child_cpu_seconds = 0;

}  // namespace

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void AddChildCpuSeconds(double seconds) { child_cpu_seconds += seconds; }

Measured MeasuredRun(const TaskDef& def, const ChunkInput& chunk, std::span<const std::string> args,
                     std::string& out, std::stop_token stop, bool thread_cpu) {
  child_cpu_seconds = 0;
  auto wall0 = std::chrono::steady_clock::now();
  double cpu0 = thread_cpu ? ThreadCpuSeconds() : 0;
  Measured m;
  m.status = RunTask(def, chunk, args, out, std::move(stop));
  m.cpu_seconds = (thread_cpu ? ThreadCpuSeconds() - cpu0 : 0) + child_cpu_seconds;
  m.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  child_cpu_seconds = 0;
  return m;
}

}  // namespace fanout
