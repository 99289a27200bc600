#include "cli/progress.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>

#include "common/units.h"

namespace fanout {

std::string Progress::Line(const Telemetry& t, uint64_t total, double elapsed, Rate unit) {
  uint64_t done = t.chunks_done.load();
  uint64_t bytes = t.bytes_done.load();
  uint64_t records = t.records_done.load();
  char rate[64];
  if (unit == Rate::kBytes) {
    std::snprintf(rate, sizeof rate, "%.1f MB/s",
                  elapsed > 0 ? static_cast<double>(bytes) / 1e6 / elapsed : 0.0);
  } else {
    std::snprintf(rate, sizeof rate, "%.0f records/s",
                  elapsed > 0 ? static_cast<double>(records) / elapsed : 0.0);
  }
  std::string eta = "--";
  if (done > 0 && done < total) {
    double left = elapsed / static_cast<double>(done) * static_cast<double>(total - done);
    eta = FormatDuration(std::chrono::microseconds(static_cast<int64_t>(left * 1e6)));
  } else if (done >= total) {
    eta = "0s";
  }
  char line[256];
  std::snprintf(
      line, sizeof line, "fanout: %lu/%lu chunks (%.0f%%)  %s  workers %u  failures %lu  ETA %s",
      static_cast<unsigned long>(done), static_cast<unsigned long>(total),
      total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0, rate,
      t.workers_running.load(), static_cast<unsigned long>(t.failures.load()), eta.c_str());
  return line;
}

Progress::Progress(const Telemetry& telemetry, uint64_t total_chunks, Rate rate)
    : telemetry_(telemetry), total_(total_chunks), rate_(rate) {
  thread_ = std::jthread([this](std::stop_token stop) {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    auto start = std::chrono::steady_clock::now();
    do {
      double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::string line = "\r\033[K" + Line(telemetry_, total_, elapsed, rate_);
      [[maybe_unused]] ssize_t n = write(STDERR_FILENO, line.data(), line.size());
    } while (!cv.wait_for(lock, stop, std::chrono::milliseconds(200), [] { return false; }) &&
             !stop.stop_requested());
    const char erase[] = "\r\033[K";
    [[maybe_unused]] ssize_t n = write(STDERR_FILENO, erase, sizeof erase - 1);
  });
}

Progress::~Progress() {
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace fanout
