// JobInput: the job's input bytes, held for the whole job without holding them in memory.
// A regular file is mapped read-only (chunks are sent straight from the mapping, no
// copy); stdin, pipes and other streams are first copied to an unlinked temporary file,
// which is then mapped the same way. Pages of the mapping that are no longer needed are
// released (Release) so the coordinator's resident memory stays bounded on huge inputs.
// Owns the mapping; not thread-safe to move, but view() and Release() may be used from
// any thread while the object lives.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fanout {

class ContentHasher;

class JobInput {
 public:
  // Opens `path` ("-" or "" = stdin). Errors name the path and the reason. A stream that
  // is spooled is fed to `spool_hasher` (if given) as it is copied; a regular file is not
  // (the caller hashes the mapping if it needs to).
  static Result<JobInput> Open(const std::string& path, ContentHasher* spool_hasher = nullptr);
  // An input with no bytes (for --range jobs).
  JobInput() = default;
  // An input held in memory (the library's Pool builds one from its chunks).
  static JobInput FromBuffer(std::string bytes);

  JobInput(JobInput&& other) noexcept;
  JobInput& operator=(JobInput&&) = delete;
  JobInput(const JobInput&) = delete;
  ~JobInput();

  std::string_view view() const { return view_; }
  // Drops the whole pages within [begin, end) from this process's memory; they are read
  // back from the file (page cache) if touched again, so this is always safe.
  void Release(uint64_t begin, uint64_t end) const;
  // The open file behind the mapping (the spool file for stdin), for local workers that
  // map it themselves (/proc/PID/fd/N); -1 for FromBuffer and empty inputs.
  int fd() const { return fd_; }
  // Modification time in nanoseconds since the epoch (0 for stdin and pipes).
  int64_t mtime_ns() const { return mtime_ns_; }

 private:
  void* map_ = nullptr;
  size_t map_size_ = 0;
  int fd_ = -1;         // kept open while mapped
  std::string buffer_;  // FromBuffer's bytes (view_ points into them)
  std::string_view view_;
  int64_t mtime_ns_ = 0;
};

}  // namespace fanout
