// ByteSink: where ordered output bytes go (the ResultAssembler's one side effect). The
// job's output file is one (OutputFile); tests put one in its place that fails on demand,
// so what a failed write does to a job is tested without filling a disk.
// Not thread-safe: one writer.
#pragma once

#include <string_view>

#include "common/status.h"

namespace fanout {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Appends `data` (it may be buffered); an error names the output and the reason.
  virtual Status Write(std::string_view data) = 0;
  // Hands buffered bytes on (called whenever the writer is about to wait).
  virtual Status Flush() = 0;
};

}  // namespace fanout
