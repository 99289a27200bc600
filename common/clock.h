// Clock: where time comes from, so that code deciding by time (liveness, back-off, wait
// limits) runs on a fake clock in tests (tests/support/fake_clock.h) and on the steady
// clock in the programs. Monotonic; never the wall-clock time of day.
#pragma once

#include <chrono>

namespace fanout {

class Clock {
 public:
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual time_point Now() const = 0;
  // The real clock (std::chrono::steady_clock). Thread-safe.
  static const Clock& Steady();
};

}  // namespace fanout
