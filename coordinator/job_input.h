// JobInput: the job's input bytes, held for the whole job. A regular file is mapped
// read-only (chunks are sent straight from the mapping, no copy); stdin, pipes and other
// streams are read fully into memory. Owns the mapping or buffer; not thread-safe to
// move, but view() may be read from any thread while the object lives.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace fanout {

class JobInput {
 public:
  // Opens `path` ("-" or "" = stdin). Errors name the path and the reason.
  static Result<JobInput> Open(const std::string& path);
  // An input with no bytes (for --range jobs).
  JobInput() = default;
  // An input held in memory (the library's Pool builds one from its chunks).
  static JobInput FromBuffer(std::string bytes);

  JobInput(JobInput&& other) noexcept;
  JobInput& operator=(JobInput&&) = delete;
  JobInput(const JobInput&) = delete;
  ~JobInput();

  std::string_view view() const { return view_; }

 private:
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::string buffer_;
  std::string_view view_;
};

}  // namespace fanout
