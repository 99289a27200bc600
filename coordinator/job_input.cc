#include "coordinator/job_input.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/write_all.h"
#include "coordinator/content_hash.h"
#include "coordinator/private_dir.h"

namespace fanout {
namespace {

// Copies everything readable from `in` to `out`, feeding it to `hasher` if given. Errors
// name the input.
Status Copy(int in, int out, const std::string& name, ContentHasher* hasher) {
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = read(in, buf.data(), buf.size());
    if (n == 0) return Status::Ok();
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Error("cannot read input " + name + ": " + std::strerror(errno));
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
Result<int> Spool(int fd, const std::string& name, ContentHasher* hasher) {
  std::string pattern = TempRoot() + "/fanout-input-XXXXXX";
  int out = mkostemp(pattern.data(), O_CLOEXEC);
  if (out < 0) {
    return Status::Error("cannot create a temporary file for input " + name + " in " +
                         pattern.substr(0, pattern.rfind('/')) + ": " + std::strerror(errno));
  }
  unlink(pattern.c_str());
  if (Status s = Copy(fd, out, name, hasher); !s.ok()) {
    close(out);
    return s;
  }
  return out;
}

}  // namespace

Result<JobInput> JobInput::Open(const std::string& path, ContentHasher* spool_hasher) {
  bool is_stdin = path.empty() || path == "-";
  std::string name = is_stdin ? "(stdin)" : "'" + path + "'";
  int fd =
      is_stdin ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0) : open(path.c_str(), O_RDONLY | O_CLOEXEC);
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
    auto spooled = Spool(fd, name, spool_hasher);
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
      in.view_ = std::string_view(static_cast<const char*>(p), in.map_size_);
      in.fd_ = fd;  // local workers map it too
      fd = -1;
    }
  }
  if (fd >= 0) close(fd);
  if (!status.ok()) return status;
  return in;
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
      buffer_(std::move(other.buffer_)),
      mtime_ns_(other.mtime_ns_) {
  // A view into the buffer must follow it (a short string lives inside the object).
  view_ = map_ ? other.view_ : std::string_view(buffer_);
  other.map_ = nullptr;
  other.map_size_ = 0;
  other.fd_ = -1;
  other.view_ = {};
}

JobInput::~JobInput() {
  if (map_) munmap(map_, map_size_);
  if (fd_ >= 0) close(fd_);
}

}  // namespace fanout
