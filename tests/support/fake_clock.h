// FakeClock: a Clock (common/clock.h) that moves only when the test says so.
#pragma once

#include "common/clock.h"

namespace fanout::testing {

class FakeClock final : public Clock {
 public:
  time_point Now() const override { return now_; }
  void Advance(duration d) { now_ += d; }

 private:
  time_point now_ = time_point(std::chrono::hours(1));
};

}  // namespace fanout::testing
