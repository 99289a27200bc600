#include "common/measured_run.h"

#include <time.h>

#include <chrono>
#include <exception>

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

namespace {

// Runs `body` (which returns the attempt's Status) and measures it.
template <typename Body>
Measured Measure(Body&& body, bool thread_cpu, std::chrono::steady_clock::time_point* mark) {
  child_cpu_seconds = 0;
  auto wall0 = mark ? *mark : std::chrono::steady_clock::now();
  double cpu0 = thread_cpu ? ThreadCpuSeconds() : 0;
  Measured m;
  m.status = body();
  m.cpu_seconds = (thread_cpu ? ThreadCpuSeconds() - cpu0 : 0) + child_cpu_seconds;
  auto wall1 = std::chrono::steady_clock::now();
  m.wall_seconds = std::chrono::duration<double>(wall1 - wall0).count();
  if (mark) *mark = wall1;
  child_cpu_seconds = 0;
  return m;
}

}  // namespace

Measured MeasuredRun(const TaskDef& def, const ChunkInput& chunk, std::span<const std::string> args,
                     std::string& out, std::stop_token stop, bool thread_cpu,
                     std::chrono::steady_clock::time_point* mark) {
  return Measure([&] { return RunTask(def, chunk, args, out, std::move(stop)); }, thread_cpu, mark);
}

Measured MeasuredView(const TaskDef& def, const ChunkInput& chunk,
                      std::span<const std::string> args, std::string_view& out, bool thread_cpu,
                      std::chrono::steady_clock::time_point* mark) {
  return Measure(
      [&]() -> Status {
        try {
          return def.run_view(chunk, args, out);
        } catch (const std::exception& e) {
          return Status::Error(def.name + ": " + e.what());
        } catch (...) {
          return Status::Error(def.name + ": unknown exception");
        }
      },
      thread_cpu, mark);
}

}  // namespace fanout
