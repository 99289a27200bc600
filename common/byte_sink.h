// ByteSink: where ordered output bytes go (the ResultAssembler's one side effect). The
// job's output file is one (OutputFile); tests put one in its place that fails on demand,
// so what a failed write does to a job is tested without filling a disk.
// Not thread-safe: one writer.
#pragma once

#include <string_view>

#include "common/file_backing.h"
#include "common/status.h"

namespace fanout {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Appends `data` (it may be buffered); an error names the output and the reason.
  virtual Status Write(std::string_view data) = 0;
  // The same for bytes that the open file `file` holds at file.offset (a pass-through
  // chunk's output is its input): a sink may copy them in the kernel instead of reading
  // them through `data`'s mapping (FileBacking).
  virtual Status WriteFile(std::string_view data, FileBacking file) {
    (void)file;
    return Write(data);
  }
  // Hands buffered bytes on (called whenever the writer is about to wait).
  virtual Status Flush() = 0;
};

}  // namespace fanout
