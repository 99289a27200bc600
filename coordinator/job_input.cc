#include "coordinator/job_input.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fanout {
namespace {

Status ReadAll(int fd, std::string& out, const std::string& name) {
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      return Status::Ok();
    } else if (errno != EINTR) {
      return Status::Error("cannot read input " + name + ": " + std::strerror(errno));
    }
  }
}

}  // namespace

Result<JobInput> JobInput::Open(const std::string& path) {
  JobInput in;
  if (path.empty() || path == "-") {
    if (Status s = ReadAll(STDIN_FILENO, in.buffer_, "(stdin)"); !s.ok()) return s;
    in.view_ = in.buffer_;
    return in;
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("cannot open input '" + path + "': " + std::strerror(errno));
  struct stat st {};
  Status status;
  if (fstat(fd, &st) != 0) {
    status = Status::Error("cannot stat input '" + path + "': " + std::strerror(errno));
  } else if (S_ISDIR(st.st_mode)) {
    status = Status::Error("input '" + path + "' is a directory");
  } else if (S_ISREG(st.st_mode) && st.st_size > 0) {
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      status = Status::Error("cannot map input '" + path + "': " + std::strerror(errno));
    } else {
      in.map_ = p;
      in.map_size_ = static_cast<size_t>(st.st_size);
      in.view_ = std::string_view(static_cast<const char*>(p), in.map_size_);
    }
  } else {
    status = ReadAll(fd, in.buffer_, "'" + path + "'");
    in.view_ = in.buffer_;
  }
  close(fd);
  if (!status.ok()) return status;
  return in;
}

JobInput JobInput::FromBuffer(std::string bytes) {
  JobInput in;
  in.buffer_ = std::move(bytes);
  in.view_ = in.buffer_;
  return in;
}

JobInput::JobInput(JobInput&& other) noexcept
    : map_(other.map_), map_size_(other.map_size_), buffer_(std::move(other.buffer_)) {
  view_ = map_ ? other.view_ : std::string_view(buffer_);
  other.map_ = nullptr;
  other.map_size_ = 0;
  other.view_ = {};
}

JobInput::~JobInput() {
  if (map_) munmap(map_, map_size_);
}

}  // namespace fanout
