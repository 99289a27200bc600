// Parsing of user-facing quantities on the command line: durations ("500ms", "2s",
// "1.5m", "300%"), byte sizes ("64K", "4M", "1G") and counts. Errors are one-line
// messages naming the flag's value and the expected form.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fanout {

// A duration: absolute, or a multiple of a reference (e.g. the median chunk time).
struct DurationSpec {
  std::chrono::microseconds absolute{0};
  double percent = 0;  // > 0: relative ("300%" -> 300)
  bool relative() const { return percent > 0; }
};

// "250ms", "2s", "1.5m", "1h", "100us"; a bare number means seconds. Must be > 0.
Result<std::chrono::microseconds> ParseDuration(std::string_view text);
// As ParseDuration, or "N%" (N > 0).
Result<DurationSpec> ParseDurationSpec(std::string_view text);
// "4096", "64K", "4M", "1G", "1T" (powers of 1024; a trailing "B"/"iB" is accepted). > 0.
Result<uint64_t> ParseSize(std::string_view text);

std::string FormatDuration(std::chrono::microseconds d);  // "1.23s", "45.0ms", "120us"
std::string FormatBytes(uint64_t bytes);                  // "1.5 MiB"

}  // namespace fanout
