// StopAlarm: requests a std::stop_source when its deadline passes, or when Ctrl-C (or
// SIGTERM, SIGHUP: engine/interrupt.h) arrives. The alarms are kept by the thread that
// waits for those signals (Interrupt::SetTick) once Interrupt::Install() ran, as in
// fanout's programs; else (a library user's process) by one process-wide thread started on
// first use and kept for the life of the process. Auto mode's calibration arms one per
// chunk it runs (a chunk running too long is stopped), serial and threads modes one per
// run (a long task is cancelled on Ctrl-C instead of finishing first). Before, each of
// those started and joined a thread of its own, and later one more thread started per
// process: on a small virtual machine a thread's start cost a few hundred microseconds, a
// tenth of a millisecond-scale job (BENCHMARKS.md, bench-auto's product and identity rows).
//
// The thread sleeps until the earliest deadline (in ppoll on Interrupt's descriptors, or on
// Interrupt::fd() and an eventfd of its own); an alarm wakes it only when it sets an
// earlier deadline than the one it sleeps until, so a run of quick chunks each armed with a
// later deadline costs no wake-ups. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stop_token>

namespace fanout {

class StopAlarm {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // Requests `source` once `deadline` passes (nullopt: never) or once an interrupt is
  // requested, whichever comes first (at once if the interrupt already was).
  StopAlarm(std::stop_source source, std::optional<TimePoint> deadline);
  // Disarms: once it returns, this alarm never requests `source`.
  ~StopAlarm();
  StopAlarm(const StopAlarm&) = delete;
  StopAlarm& operator=(const StopAlarm&) = delete;

 private:
  uint64_t id_;
};

}  // namespace fanout
