#include "engine/stop_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace fanout {

void StopFd::Wake::operator()() const {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(fd, &one, sizeof one);
}

StopFd::StopFd(std::stop_token token) : token_(std::move(token)) {
  if (!token_.stop_possible()) return;
  fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  // Without a descriptor requested() still works; only the prompt wake-up is lost.
  if (fd_ >= 0) callback_.emplace(token_, Wake{fd_});
}

StopFd::~StopFd() {
  callback_.reset();  // waits for a Wake running on another thread
  if (fd_ >= 0) close(fd_);
}

}  // namespace fanout
