// Progress: the live one-line status on stderr (chunks done/total, MB/s or records/s,
// workers, failures, ETA), redrawn every 200 ms by its own thread from Telemetry's
// atomic counters, and erased when the job ends. Only started when asked (--progress)
// or when stderr is a terminal; never mixed into non-terminal logs unless asked.
#pragma once

#include <cstdint>
#include <string>
#include <thread>

#include "coordinator/telemetry.h"

namespace fanout {

class Progress {
 public:
  // Starts drawing at once. `total_chunks` is the plan's chunk count.
  Progress(const Telemetry& telemetry, uint64_t total_chunks);
  ~Progress();  // stops the thread and erases the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // The line as it would be drawn now (for tests and the final redraw).
  static std::string Line(const Telemetry& telemetry, uint64_t total_chunks, double elapsed);

 private:
  const Telemetry& telemetry_;
  uint64_t total_;
  std::jthread thread_;
};

}  // namespace fanout
