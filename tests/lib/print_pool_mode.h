// Test names show a PoolMode's name instead of its bytes (gtest's PrintTo hook), for the
// library tests parameterized over modes.
#pragma once

#include <ostream>

#include "fanout/pool.h"

namespace fanout {
inline void PrintTo(PoolMode mode, std::ostream* os) {
  static const char* const kNames[] = {"serial", "threads", "processes", "remote"};
  *os << kNames[static_cast<int>(mode)];
}
}  // namespace fanout
