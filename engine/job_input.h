// JobInput: the job's input bytes, held for the whole job without holding them in memory.
// A regular file is mapped read-only (chunks are read straight from the mapping, no
// copy); stdin, pipes and other streams are first copied to an unlinked temporary file,
// which is then mapped the same way. Pages of the mapping that are no longer needed are
// released (Release) so the coordinator's resident memory stays bounded on huge inputs.
// A file that shrinks under the mapping cannot kill the process (MappingGuard: the lost
// pages read as zeros); CheckUnchanged tells the job that its input changed, so it fails
// instead of writing output made from a half-rewritten file.
// Owns the mapping; not thread-safe to move, but view(), Release() and CheckUnchanged()
// may be used from any thread while the object lives.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fanout {

class ContentHasher;

class JobInput {
 public:
  // Opens `path` ("-" or "" = stdin). Errors name the path and the reason. A stream is
  // spooled only up to `max_spool` bytes (0: no limit) and never so far that its
  // filesystem would keep less than min(1 GiB, a tenth of it) free; spooling stops at
  // once on SIGINT/SIGTERM/SIGHUP (Interrupt::Requested() then tells the error from the
  // others). A stream that is spooled is fed to `spool_hasher` (if given) as it is copied;
  // a regular file is not (the caller hashes the mapping if it needs to).
  static Result<JobInput> Open(const std::string& path, uint64_t max_spool = 0,
                               ContentHasher* spool_hasher = nullptr);
  // An input with no bytes (for --range jobs).
  JobInput() = default;
  // An input held in memory (the library's Pool builds one from its chunks).
  static JobInput FromBuffer(std::string bytes);

  JobInput(JobInput&& other) noexcept;
  JobInput& operator=(JobInput&&) = delete;
  JobInput(const JobInput&) = delete;
  ~JobInput();

  std::string_view view() const { return view_; }
  // Copies view().substr(begin, size) to `to` (which has room for `size` bytes); bytes
  // the file no longer has are zeros (and CheckUnchanged reports the change). Up to
  // kCopiedFromMapping bytes are copied from the mapping (MappingGuard turns a read past a
  // truncation into zeros); more are read from the file (pread), so pages released from
  // the mapping are not faulted back in.
  void CopyOut(uint64_t begin, uint64_t size, char* to) const;
  static constexpr uint64_t kCopiedFromMapping = 16384;
  // Drops the whole pages within [begin, end) from this process's memory; they are read
  // back from the file (page cache) if touched again, so this is always safe.
  void Release(uint64_t begin, uint64_t end) const;
  // Release for a pass that reads the input before the job does (planning, auto's
  // calibration plan, a fingerprint): only an input bigger than what Open maps in one call
  // (kPopulated) lets go of its pages; a smaller one is read again at once by the job, and
  // releasing it would fault every page back in.
  void ReleaseScanned(uint64_t begin, uint64_t end) const;
  static constexpr size_t kPopulated = size_t{16} << 20;
  // The open file behind the mapping (the spool file for stdin), for local workers that
  // map it themselves (/proc/PID/fd/N); -1 for FromBuffer and empty inputs.
  int fd() const { return fd_; }
  // Modification time in nanoseconds since the epoch (0 for stdin and pipes).
  int64_t mtime_ns() const { return mtime_ns_; }
  // An error such as "input 't.txt' changed during the job (size 23888896 -> 1000000)" if
  // the open file's size, mtime or ctime changed, the path now names another file, or a
  // read of the mapping faulted past the file's end; Ok for inputs without a file.
  // Costs an fstat and a stat.
  Status CheckUnchanged() const;

 private:
  void* map_ = nullptr;
  size_t map_size_ = 0;
  int fd_ = -1;           // kept open while mapped
  bool guarded_ = false;  // MappingGuard watches the mapping (it has a slot for it)
  std::string buffer_;    // FromBuffer's bytes (view_ points into them)
  std::string_view view_;
  int64_t mtime_ns_ = 0;
  // What CheckUnchanged compares with: the file as opened ("" path for stdin).
  std::string path_;
  bool spooled_ = false;  // the mapped file is our spool: the path is not compared
  struct Identity {
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
  } opened_;
};

}  // namespace fanout
