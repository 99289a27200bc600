#include "common/output_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/write_all.h"

namespace fanout {
namespace {

constexpr std::string_view kTempMarker = ".fanout-";
constexpr size_t kTempSuffix = 6;  // mkstemp's XXXXXX
std::atomic<int> g_stop{-1};       // StopWritesOn's descriptor

// Creates `templ` (ending in XXXXXX, replaced by 6 random letters and digits) as a new file,
// as mkostemp does, but with mode 0666 less the umask, as a plain create gives. mkostemp
// makes it 0600, and reading the umask to widen that means setting it: a umask(0) of a
// moment in one thread of a server running jobs side by side gave a file or directory
// another thread created then mode 0666 or 0777. The kernel applies the umask here.
int CreateTemporary(std::string& templ) {
  static constexpr char kLetters[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  char* x = templ.data() + templ.size() - kTempSuffix;
  for (int tries = 0; tries < 1000; ++tries) {
    unsigned char noise[kTempSuffix];
    if (getrandom(noise, sizeof noise, 0) != static_cast<ssize_t>(sizeof noise)) return -1;
    for (size_t i = 0; i < kTempSuffix; ++i) x[i] = kLetters[noise[i] % (sizeof kLetters - 1)];
    int fd = ::open(templ.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

// Removes the temporaries `.BASE.fanout-XXXXXX` in `dir` that a run killed before it could
// remove them left behind: ours (same user), regular files, whose lock nobody holds (a
// live run holds its temporary's flock until it is renamed or removed).
void RemoveStaleTemporaries(const std::string& dir, const std::string& base) {
  std::string prefix = "." + base + std::string(kTempMarker);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (!name.starts_with(prefix) || name.size() != prefix.size() + kTempSuffix) continue;
    int fd = ::openat(::dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() &&
        ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      ::unlinkat(::dirfd(d), e->d_name, 0);
    }
    ::close(fd);
  }
  ::closedir(d);
}

}  // namespace

OutputFile::OutputFile(int fd, std::string path, std::string temp, std::string name)
    : fd_(fd),
      path_(std::move(path)),
      temp_(std::move(temp)),
      name_(name.empty() ? path_ : std::move(name)) {
  struct stat st {};
  if (fd_ >= 0 && ::fstat(fd_, &st) == 0) {
    AvoidBlocking(st);
    if (S_ISFIFO(st.st_mode)) kernel_copy_ = KernelCopy::kSplice;
    // Not in append mode: copy_file_range refuses it.
    if (S_ISREG(st.st_mode) && !(::fcntl(fd_, F_GETFL) & O_APPEND)) {
      kernel_copy_ = KernelCopy::kCopyFileRange;
    }
  }
}

void OutputFile::StopWritesOn(int fd) { g_stop.store(fd); }

void OutputFile::AvoidBlocking(const struct stat& st) {
  if (S_ISSOCK(st.st_mode)) {
    socket_ = true;
    return;
  }
  if (!S_ISFIFO(st.st_mode) && !(S_ISCHR(st.st_mode) && ::isatty(fd_))) return;
  if (!path_.empty()) {  // opened here: the description is this object's own
    int flags = ::fcntl(fd_, F_GETFL);
    paced_ = flags >= 0 && ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK) == 0;
    return;
  }
  // stdout's description is shared (with the shell, the rest of a pipeline): a second one.
  // Without /proc, or once the pipe's reader is gone (ENXIO), stdout is written as it is.
  int fd = ::open(("/proc/self/fd/" + std::to_string(fd_)).c_str(),
                  O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return;
  fd_ = fd;
  paced_ = reopened_ = true;
}

int OutputFile::WaitWritable() const {
  // A negative descriptor is skipped by poll(2).
  pollfd fds[3] = {{fd_, POLLOUT, 0}, {g_stop.load(), POLLIN, 0}, {own_stop_, POLLIN, 0}};
  for (;;) {
    int n = ::poll(fds, 3, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if ((fds[1].revents | fds[2].revents) & POLLIN) return ECANCELED;
    return 0;  // writable, or broken: the next write says which
  }
}

void OutputFile::CloseOwn() {
  if ((!path_.empty() || reopened_) && fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<OutputFile> OutputFile::Open(const std::string& path, const std::string& shown) {
  if (path.empty() || path == "-") return OutputFile(STDOUT_FILENO, "", "");
  const std::string& name = shown.empty() ? path : shown;
  struct stat st;
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode))
    return Status::Error("cannot write output '" + name + "': it is a directory");
  if (exists && !S_ISREG(st.st_mode)) {
    // A device, FIFO or socket (/dev/null, /dev/stdout, a named pipe): there is nothing to
    // rename over it, and replacing it would destroy it, so it is written in place.
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return Status::Error("cannot write output '" + name + "': " + std::strerror(errno));
    return OutputFile(fd, path, "", name);
  }
  // Through a symbolic link, the file it points to is replaced, not the link.
  struct stat lst;
  if (exists && ::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    if (char* real = ::realpath(path.c_str(), nullptr)) {
      std::string target = real;
      std::free(real);
      return OpenTemporary(name, target);
    }
  }
  return OpenTemporary(name, path);
}

Result<OutputFile> OutputFile::OpenTemporary(const std::string& name, const std::string& path) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  RemoveStaleTemporaries(dir, base);
  std::string temp = (slash == std::string::npos ? "" : dir) + "." + base + ".fanout-XXXXXX";
  int fd = CreateTemporary(temp);
  if (fd < 0) return Status::Error("cannot write output '" + name + "': " + std::strerror(errno));
  // Held until the temporary is renamed or removed: a later run removes it only if free.
  ::flock(fd, LOCK_EX);
  return OutputFile(fd, path, temp, name);
}

OutputFile::OutputFile(OutputFile&& other) noexcept
    : reader_closed_(other.reader_closed_),
      stopped_(other.stopped_),
      paced_(other.paced_),
      socket_(other.socket_),
      reopened_(other.reopened_),
      fd_(other.fd_),
      buffer_(std::move(other.buffer_)),
      path_(std::move(other.path_)),
      temp_(std::move(other.temp_)),
      name_(std::move(other.name_)),
      own_stop_(other.own_stop_),
      bytes_(other.bytes_),
      done_(other.done_) {
  kernel_copy_ = other.kernel_copy_;
  other.fd_ = -1;
  other.done_ = true;
}

OutputFile::~OutputFile() { Discard(); }

Status OutputFile::Write(std::string_view data) {
  bytes_ += data.size();
  // The whole buffer at once: grown by doubling, each step copied what it held into fresh
  // pages (a 77 KB output faulted in about 60 pages instead of 19; 7 us each where page
  // faults are dear). Pages of the reserve not written are never touched.
  if (buffer_.capacity() < kBuffer) buffer_.reserve(kBuffer);
  if (buffer_.size() + data.size() <= kBuffer) {
    buffer_.append(data);
    return Status::Ok();
  }
  if (Status s = Flush(); !s.ok()) return s;
  if (data.size() < kBuffer / 2) {
    buffer_.append(data);
    return Status::Ok();
  }
  return WriteNow(data);
}

Status OutputFile::Flush() {
  if (buffer_.empty()) return Status::Ok();
  Status s = WriteNow(buffer_);
  buffer_.clear();
  return s;
}

Status OutputFile::WriteFile(std::string_view data, FileBacking file) {
  if (file.fd < 0 || data.size() < kBuffer || kernel_copy_ == KernelCopy::kNone) {
    return Write(data);
  }
  if (Status s = Flush(); !s.ok()) return s;
  bytes_ += data.size();
  while (!data.empty()) {
    auto at = static_cast<loff_t>(file.offset);
    ssize_t n = kernel_copy_ == KernelCopy::kSplice
                    ? ::splice(file.fd, &at, fd_, nullptr, data.size(), 0)
                    : ::copy_file_range(file.fd, &at, fd_, nullptr, data.size(), 0);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      file.offset += static_cast<uint64_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN && paced_) {
      if (int err = WaitWritable(); err != 0) return WriteError(err);
    } else if (n < 0 && errno == EPIPE) {
      return WriteError(EPIPE);
    } else {
      // The kernel cannot copy this way (EINVAL, EXDEV, EOPNOTSUPP; EAGAIN from a
      // non-blocking pipe), or the file ended early (it shrank; its mapping reads zeros):
      // the rest is written as Write would, where a real write error shows again.
      if (n < 0 && errno != EAGAIN) kernel_copy_ = KernelCopy::kNone;
      break;
    }
  }
  return data.empty() ? Status::Ok() : WriteNow(data);
}

Status OutputFile::WriteNow(std::string_view data) {
  if (!paced_ && !socket_) {
    if (int err = WriteAll(fd_, data); err != 0) return WriteError(err);
    return Status::Ok();
  }
  while (!data.empty()) {
    ssize_t n = socket_ ? ::send(fd_, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                        : ::write(fd_, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (int err = WaitWritable(); err != 0) return WriteError(err);
    } else if (n < 0 && errno != EINTR) {
      return WriteError(errno);
    }
  }
  return Status::Ok();
}

Status OutputFile::WriteError(int err) {
  if (err == EPIPE) reader_closed_ = true;
  std::string shown = path_.empty() ? "stdout" : name_;
  if (err == ECANCELED) {
    stopped_ = true;
    return Status::Error("writing output '" + shown + "' was interrupted");
  }
  return Status::Error("cannot write output '" + shown + "': " + std::strerror(err));
}

Status OutputFile::Commit() {
  if (done_) return Status::Ok();
  Status flushed = Flush();
  if (!flushed.ok()) {
    Discard();
    return flushed;
  }
  done_ = true;
  if (path_.empty()) {  // stdout
    CloseOwn();
    return Status::Ok();
  }
  int fd = fd_;
  fd_ = -1;
  // A duplicate keeps the temporary's lock (shared by both descriptors) until the rename:
  // close() reports a deferred write error on the first one.
  int lock = temp_.empty() ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (::close(fd) != 0) {
    int err = errno;
    if (!temp_.empty()) ::unlink(temp_.c_str());
    if (lock >= 0) ::close(lock);
    return Status::Error("cannot write output '" + name_ + "': " + std::strerror(err));
  }
  if (temp_.empty()) return Status::Ok();  // written in place
  int renamed = ::rename(temp_.c_str(), path_.c_str());
  int err = errno;
  if (renamed != 0) ::unlink(temp_.c_str());
  if (lock >= 0) ::close(lock);
  if (renamed != 0) {
    return Status::Error("cannot rename output into '" + name_ + "': " + std::strerror(err));
  }
  return Status::Ok();
}

void OutputFile::Discard() {
  if (done_) return;
  // What was written to stdout or a device so far has been streaming: its tail goes out
  // too. A temporary file's bytes are thrown away with it.
  if (temp_.empty()) (void)Flush();
  buffer_.clear();
  done_ = true;
  if (!temp_.empty()) ::unlink(temp_.c_str());  // before the close releases its lock
  CloseOwn();
}

}  // namespace fanout
