// OutputFile: where a job's output goes. A named file is written atomically: bytes go to
// a temporary file in the same directory, which Commit() renames over the name; if the
// job fails (or the object is destroyed uncommitted) the temporary is removed, so a
// failed job never leaves a partial file under the requested name. "-" is stdout,
// written directly. Not thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace fanout {

class OutputFile {
 public:
  // Opens the temporary next to `path` (or stdout for "-"/""): fails early and clearly
  // on an unwritable location, before any work is done.
  static Result<OutputFile> Open(const std::string& path);

  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  OutputFile(const OutputFile&) = delete;
  ~OutputFile();

  Status Write(std::string_view data);
  // Flushes and renames into place. After a failed Commit the temporary is removed.
  Status Commit();
  // Removes the temporary (idempotent).
  void Discard();
  uint64_t bytes_written() const { return bytes_; }
  // The hidden temporary being written ("" for stdout).
  const std::string& temp_path() const { return temp_; }

 private:
  OutputFile(int fd, std::string path, std::string temp)
      : fd_(fd), path_(std::move(path)), temp_(std::move(temp)) {}
  int fd_ = -1;
  std::string path_;  // "" for stdout
  std::string temp_;
  uint64_t bytes_ = 0;
  bool done_ = false;
};

}  // namespace fanout
