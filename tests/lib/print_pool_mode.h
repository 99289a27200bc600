// Test names show a PoolMode's name instead of its bytes (gtest's PrintTo hook), and
// LocalModeTestName names the instances of a suite over the local modes, for the library
// tests parameterized over modes.
#pragma once

#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "fanout/pool.h"

namespace fanout {
inline void PrintTo(PoolMode mode, std::ostream* os) {
  static const char* const kNames[] = {"serial", "threads", "processes", "remote"};
  *os << kNames[static_cast<int>(mode)];
}

// "Serial", "Threads", "Processes": the instance names of INSTANTIATE_TEST_SUITE_P over
// those modes.
inline std::string LocalModeTestName(const ::testing::TestParamInfo<PoolMode>& info) {
  switch (info.param) {
    case PoolMode::kSerial:
      return "Serial";
    case PoolMode::kThreads:
      return "Threads";
    default:
      return "Processes";
  }
}
}  // namespace fanout
