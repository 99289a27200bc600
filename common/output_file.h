// OutputFile: where a job's output goes. A named file is written atomically: bytes go to
// a temporary file in the same directory, which Commit() renames over the name; if the
// job fails (or the object is destroyed uncommitted) the temporary is removed, so a
// failed job never leaves a partial file under the requested name. Through a symbolic
// link, the file it points to is replaced. "-" is stdout, and an existing name that is not
// a regular file (/dev/null, a FIFO, /dev/stdout) is opened and written in place: renaming
// over a device would replace it with a file.
//
// An output whose reader sets the pace (a pipe, a FIFO, a terminal, a socket) is written
// without blocking and waited for in poll(2), beside the descriptor StopWritesOn names: a
// job told to stop (SIGTERM, Ctrl-C) while its reader has stopped reading ends then, as
// `cat` would, instead of waiting in write(2) for a reader that may never come back. An
// inherited stdout is written through an open file description of its own
// (/proc/self/fd/1), so the O_NONBLOCK it needs is never seen by the processes sharing it.
// Not thread-safe.
#pragma once

#include <sys/stat.h>

#include <string>
#include <string_view>
#include <utility>

#include "common/byte_sink.h"
#include "common/status.h"

namespace fanout {

class OutputFile : public ByteSink {
 public:
  // Opens the temporary next to `path` (or stdout for "-"/""): fails early and clearly
  // on an unwritable location, before any work is done. Errors name the output `shown`
  // ("" = `path`): a file its user never named (a server's spool) by what it is to them.
  static Result<OutputFile> Open(const std::string& path, const std::string& shown = "");

  // Process-wide: once `fd` is readable (Interrupt's self-pipe), a write that would wait
  // for a slow reader fails instead ("interrupted", stopped() true). -1: writes wait.
  static void StopWritesOn(int fd);
  // This file's writes also give up so once `fd` is readable (a job's own cancel, when a
  // host runs many jobs in one process); -1: only StopWritesOn's.
  void StopWritesAlsoOn(int fd) { own_stop_ = fd; }

  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  OutputFile(const OutputFile&) = delete;
  ~OutputFile() override;

  // Small writes are gathered in a buffer (one write(2) per kBuffer bytes, not one per
  // chunk of a million-chunk job); Flush() hands them to the file. Callers flush whenever
  // they would otherwise wait, so output is never held back for long.
  Status Write(std::string_view data) override;
  // Big writes (kBuffer or more) of a file's bytes go from that file in the kernel: spliced
  // into a pipe, or copied into a regular file (copy_file_range); other outputs (/dev/null,
  // a terminal) and whatever the kernel refuses are written as Write does.
  Status WriteFile(std::string_view data, FileBacking file) override;
  Status Flush() override;
  // Flushes and renames into place. After a failed Commit the temporary is removed.
  Status Commit();
  // Removes the temporary (idempotent).
  void Discard();
  uint64_t bytes_written() const { return bytes_; }
  // The hidden temporary being written ("" for stdout and outputs written in place).
  const std::string& temp_path() const { return temp_; }
  // A write failed with EPIPE: the reader of stdout (or of a FIFO) went away, as with
  // `fanout run ... | head -1`. The job then ends quietly (ExitCode::kBrokenPipe).
  bool reader_closed() const { return reader_closed_; }
  // A write was given up because StopWritesOn's descriptor became readable.
  bool stopped() const { return stopped_; }

 private:
  OutputFile(int fd, std::string path, std::string temp, std::string name = "");
  // Opens a temporary beside `path`, which Commit renames over `path`; `name` is what the
  // user gave (shown in errors).
  static Result<OutputFile> OpenTemporary(const std::string& name, const std::string& path);
  // Writes `data` to the file now (no buffering); an error names the output.
  Status WriteNow(std::string_view data);
  // The error a failed write of the output reports ("cannot write output 'NAME': ...").
  Status WriteError(int err);
  // Makes an output whose reader sets the pace non-blocking (see the class comment); `st`
  // is fd_'s.
  void AvoidBlocking(const struct stat& st);
  // Waits until fd_ takes more: 0, ECANCELED once the stop descriptor is readable, or an
  // errno.
  int WaitWritable() const;
  // Closes fd_ if this object opened it.
  void CloseOwn();
  bool reader_closed_ = false;
  bool stopped_ = false;
  bool paced_ = false;     // fd_ is non-blocking: a full pipe is waited for in WaitWritable
  bool socket_ = false;    // fd_ is a socket: written with send(MSG_DONTWAIT)
  bool reopened_ = false;  // fd_ is this object's own description of stdout
  static constexpr size_t kBuffer = 256 * 1024;
  int fd_ = -1;
  // How WriteFile can copy into fd_: splice (a pipe), copy_file_range (a regular file), or
  // not at all (none; also once the kernel refused).
  enum class KernelCopy { kNone, kSplice, kCopyFileRange } kernel_copy_ = KernelCopy::kNone;
  std::string buffer_;  // written, not yet flushed
  std::string path_;    // "" for stdout; the file replaced at Commit
  std::string temp_;    // "" when written in place
  std::string name_;    // the name the user gave
  int own_stop_ = -1;   // StopWritesAlsoOn's descriptor
  uint64_t bytes_ = 0;
  bool done_ = false;
};

}  // namespace fanout
