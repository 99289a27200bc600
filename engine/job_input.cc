#include "engine/job_input.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/units.h"
#include "common/write_all.h"
#include "engine/content_hash.h"
#include "engine/interrupt.h"
#include "engine/mapping_guard.h"
#include "engine/private_dir.h"

namespace fanout {
namespace {

// The space spooling leaves free on the spool's filesystem: 1 GiB, or a tenth of a
// filesystem smaller than 10 GiB.
uint64_t FreeSpaceMargin(const struct statvfs& fs) {
  uint64_t size = static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize;
  return std::min<uint64_t>(uint64_t{1} << 30, size / 10);
}

// Waits until `in` is readable (data, or end of input) or an interrupt arrives (when
// Interrupt is installed). A FIFO opened without blocking reads as ended while no writer
// has come yet; poll waits for one.
void WaitReadable(int in) {
  pollfd p[2] = {{in, POLLIN, 0}, {Interrupt::fd(), POLLIN, 0}};
  while (poll(p, Interrupt::fd() >= 0 ? 2 : 1, -1) < 0 && errno == EINTR &&
         !Interrupt::Requested()) {
  }
}

// Copies everything readable from `in` to `out`, feeding it to `hasher` if given. Errors
// name the input. Stops at once on SIGINT/SIGTERM/SIGHUP (the caller sees
// Interrupt::Requested()), and before the copy passes `max_spool` bytes (0: no limit) or
// would leave less than FreeSpaceMargin free.
Status Copy(int in, int out, const std::string& name, uint64_t max_spool, ContentHasher* hasher) {
  constexpr uint64_t kCheckEvery = uint64_t{64} << 20;  // fstatvfs every 64 MiB
  std::vector<char> buf(1 << 20);
  uint64_t total = 0, checked_at = 0;
  for (;;) {
    if (total == 0 || total - checked_at >= kCheckEvery) {
      checked_at = total;
      struct statvfs fs {};
      if (fstatvfs(out, &fs) == 0) {
        uint64_t avail = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
        if (avail < FreeSpaceMargin(fs)) {
          return Status::Error("spooling input " + name + " to " + TempRoot() +
                               " would leave less than " + FormatBytes(FreeSpaceMargin(fs)) +
                               " free (" + FormatBytes(total) +
                               " spooled): free space, set TMPDIR, or read a file with -i");
        }
      }
    }
    WaitReadable(in);
    if (Interrupt::Requested()) return Status::Error("interrupted while reading input " + name);
    ssize_t n = read(in, buf.data(), buf.size());
    if (n == 0) return Status::Ok();
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status::Error("cannot read input " + name + ": " + std::strerror(errno));
    }
    total += static_cast<uint64_t>(n);
    if (max_spool > 0 && total > max_spool) {
      return Status::Error("input " + name + " is over --max-spool " + FormatBytes(max_spool) +
                           " (streams are copied to " + TempRoot() +
                           " first): raise --max-spool, or pass a regular file");
    }
    std::string_view bytes(buf.data(), static_cast<size_t>(n));
    if (hasher) hasher->Update(bytes);
    if (int err = WriteAll(out, bytes)) {
      return Status::Error("cannot spool input " + name +
                           " to a temporary file: " + std::strerror(err));
    }
  }
}

// An unlinked temporary file holding all of `fd`'s bytes (a pipe or other stream).
Result<int> Spool(int fd, const std::string& name, uint64_t max_spool, ContentHasher* hasher) {
  std::string pattern = TempRoot() + "/fanout-input-XXXXXX";
  int out = mkostemp(pattern.data(), O_CLOEXEC);
  if (out < 0) {
    return Status::Error("cannot create a temporary file for input " + name + " in " +
                         pattern.substr(0, pattern.rfind('/')) + ": " + std::strerror(errno));
  }
  unlink(pattern.c_str());
  if (Status s = Copy(fd, out, name, max_spool, hasher); !s.ok()) {
    close(out);  // the spool was unlinked: closing frees its blocks
    return s;
  }
  return out;
}

int64_t Nanos(const struct timespec& t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

}  // namespace

Result<JobInput> JobInput::Open(const std::string& path, uint64_t max_spool,
                                ContentHasher* spool_hasher) {
  bool is_stdin = path.empty() || path == "-";
  std::string name = is_stdin ? "(stdin)" : "'" + path + "'";
  int fd =
      // Without O_NONBLOCK, opening a FIFO would wait for a writer deaf to SIGINT/SIGTERM.
      is_stdin ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0)
               : open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Status::Error("cannot open input " + name + ": " + std::strerror(errno));
  JobInput in;
  struct stat st {};
  Status status;
  if (fstat(fd, &st) != 0) {
    status = Status::Error("cannot stat input " + name + ": " + std::strerror(errno));
  } else if (S_ISDIR(st.st_mode)) {
    status = Status::Error("input " + name + " is a directory");
  } else if (!S_ISREG(st.st_mode) || st.st_size == 0) {
    // Pipes and streams; also "empty" regular files such as /proc ones, read to the end.
    in.spooled_ = true;  // changes are checked on the spool, not at the path
    auto spooled = Spool(fd, name, max_spool, spool_hasher);
    close(fd);
    if (!spooled.ok()) return spooled.status();
    fd = *spooled;
    if (fstat(fd, &st) != 0) status = Status::Error("cannot stat the spooled input");
    st.st_mtim = {};
  }
  if (status.ok()) in.mtime_ns_ = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  if (status.ok() && st.st_size > 0) {
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      status = Status::Error("cannot map input " + name + ": " + std::strerror(errno));
    } else {
      in.map_ = p;
      in.map_size_ = static_cast<size_t>(st.st_size);
      // Planning reads the whole input at once: map its first pages in one call, not one
      // fault per 64 KiB (a fault cost ~10 us in a VM: 3 ms of an 11 MB job). Bounded (16
      // MiB, within the coordinator's memory bound of BigFileTest), so a huge input's
      // pages are still mapped as read and released as consumed. Best effort
      // (MADV_POPULATE_READ: Linux 5.14).
      madvise(p, std::min(in.map_size_, kPopulated), MADV_POPULATE_READ);
      in.view_ = std::string_view(static_cast<const char*>(p), in.map_size_);
      in.fd_ = fd;  // local workers map it too
      fd = -1;
      in.guarded_ = MappingGuard::Register(p, in.map_size_);
      if (!is_stdin) in.path_ = path;
      struct stat now {};  // afresh: a spool's mtime was cleared above
      if (fstat(in.fd_, &now) == 0) {
        in.opened_ = {now.st_dev, now.st_ino, static_cast<uint64_t>(now.st_size),
                      Nanos(now.st_mtim), Nanos(now.st_ctim)};
      }
    }
  }
  if (fd >= 0) close(fd);
  if (!status.ok()) return status;
  return in;
}

Status JobInput::CheckUnchanged() const {
  if (fd_ < 0) return Status::Ok();
  std::string name = path_.empty() ? "(stdin)" : "'" + path_ + "'";
  auto changed = [&](const std::string& what) {
    return Status::Error("input " + name + " changed during the job (" + what + ")");
  };
  struct stat st {};
  if (fstat(fd_, &st) != 0) return changed(std::string("fstat: ") + std::strerror(errno));
  if (static_cast<uint64_t>(st.st_size) != opened_.size) {
    return changed("size " + std::to_string(opened_.size) + " -> " + std::to_string(st.st_size));
  }
  if (MappingGuard::Faulted(map_)) return changed("read past its end: it was truncated");
  if (Nanos(st.st_mtim) != opened_.mtime_ns) return changed("written to: its mtime changed");
  if (Nanos(st.st_ctim) != opened_.ctime_ns) return changed("its ctime changed");
  if (path_.empty() || spooled_) return Status::Ok();
  if (stat(path_.c_str(), &st) != 0) {
    return changed(std::string("the path is gone: ") + std::strerror(errno));
  }
  if (st.st_dev != opened_.dev || st.st_ino != opened_.ino) {
    return changed("the path names another file now");  // e.g. rotated by rename
  }
  return Status::Ok();
}

void JobInput::CopyOut(uint64_t begin, uint64_t size, char* to) const {
  // Bytes in memory (no mapping) are copied, and so are a few pages of a mapping: a system
  // call per one-record chunk cost more than the copy (63,000 preads for 100,000 echoed
  // chunks, BENCHMARKS.md), and such small chunks' pages were just read to send them.
  // MappingGuard makes a read past a truncation yield zeros, as pread would. Bigger ranges
  // are read from the file: their pages may have been released, and faulting them back in
  // costs more than the read.
  if (!map_ || (size <= kCopiedFromMapping && guarded_)) {
    std::string_view bytes = view_.substr(begin, size);
    std::copy(bytes.begin(), bytes.end(), to);
    return;
  }
  // The file shrank (or cannot be read): the rest reads as zeros.
  ReadAllAtOrZeros(fd_, to, static_cast<size_t>(size), begin);
}

void JobInput::Release(uint64_t begin, uint64_t end) const {
  if (!map_ || begin >= end || begin >= map_size_) return;
  static const uint64_t kPage = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  // Only whole pages inside [begin, end) are dropped: a page shared with a neighbouring
  // chunk may still be needed, and dropping it would fault it back in (for one-record
  // chunks, once per chunk). Ranges smaller than a page cost no system call.
  uint64_t from = (begin + kPage - 1) / kPage * kPage;
  uint64_t to = end >= map_size_ ? map_size_ : end / kPage * kPage;
  if (from >= to) return;
  madvise(static_cast<char*>(map_) + from, static_cast<size_t>(to - from), MADV_DONTNEED);
}

void JobInput::ReleaseScanned(uint64_t begin, uint64_t end) const {
  if (map_size_ > kPopulated) Release(begin, end);
}

JobInput JobInput::FromBuffer(std::string bytes) {
  JobInput in;
  in.buffer_ = std::move(bytes);
  in.view_ = in.buffer_;
  return in;
}

JobInput::JobInput(JobInput&& other) noexcept
    : map_(other.map_),
      map_size_(other.map_size_),
      fd_(other.fd_),
      guarded_(other.guarded_),
      buffer_(std::move(other.buffer_)),
      mtime_ns_(other.mtime_ns_),
      path_(std::move(other.path_)),
      spooled_(other.spooled_),
      opened_(other.opened_) {
  // A view into the buffer must follow it (a short string lives inside the object).
  view_ = map_ ? other.view_ : std::string_view(buffer_);
  other.map_ = nullptr;
  other.map_size_ = 0;
  other.fd_ = -1;
  other.view_ = {};
}

JobInput::~JobInput() {
  if (map_) {
    MappingGuard::Unregister(map_);
    munmap(map_, map_size_);
  }
  if (fd_ >= 0) close(fd_);
}

}  // namespace fanout
