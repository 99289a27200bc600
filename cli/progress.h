// Progress: the live one-line status on stderr (chunks done/total, MB/s or records/s,
// workers, failures, ETA), redrawn every 200 ms by its own thread from Telemetry's
// atomic counters, and erased when the job ends. Only started when asked (--progress)
// or when stderr is a terminal; never mixed into non-terminal logs unless asked.
#pragma once

#include <cstdint>
#include <string>
#include <thread>

#include "engine/telemetry.h"

namespace fanout {

class Progress {
 public:
  // How the rate is shown; one unit for the whole job, never switching mid-job.
  enum class Rate {
    kBytes,    // MB/s: the job reads input bytes
    kRecords,  // records/s: --range jobs, which read none
  };
  // Starts drawing at once. `total_chunks` is the plan's chunk count.
  Progress(const Telemetry& telemetry, uint64_t total_chunks, Rate rate);
  ~Progress();  // stops the thread and erases the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // The line as it would be drawn now (for tests and the final redraw).
  static std::string Line(const Telemetry& telemetry, uint64_t total_chunks, double elapsed,
                          Rate rate);

 private:
  const Telemetry& telemetry_;
  uint64_t total_;
  Rate rate_;
  std::jthread thread_;
};

}  // namespace fanout
