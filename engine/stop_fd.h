// StopFd: a job's std::stop_token made pollable, so an event loop that sleeps in poll()
// wakes the moment another thread asks the job to stop (the library's Pool::cancel), as it
// wakes for Ctrl-C through Interrupt::fd() (engine/interrupt.h). fd() is an eventfd that
// becomes readable once stop is requested and stays readable. Owned by one thread; the
// request may come from any thread.
#pragma once

#include <optional>
#include <stop_token>

namespace fanout {

class StopFd {
 public:
  // A token that can never stop (the default std::stop_token, as `fanout run` passes)
  // makes no descriptor: fd() is -1 and requested() always false.
  explicit StopFd(std::stop_token token);
  ~StopFd();
  StopFd(const StopFd&) = delete;
  StopFd& operator=(const StopFd&) = delete;

  int fd() const { return fd_; }
  bool requested() const { return token_.stop_requested(); }

 private:
  struct Wake {
    int fd;
    void operator()() const;
  };

  std::stop_token token_;
  int fd_ = -1;
  // Declared last: unregistered before fd_ is closed.
  std::optional<std::stop_callback<Wake>> callback_;
};

}  // namespace fanout
