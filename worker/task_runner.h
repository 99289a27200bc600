// TaskRunner: runs a worker's chunk attempts on `slots` threads, in arrival order.
// Owned by the worker loop, which submits attempts and cancels them; finished attempts
// are queued for the loop and signalled on an eventfd (fd()) that the loop polls next
// to its socket, so the loop never blocks on a task. Submit/Cancel/TakeFinished are
// called from the loop thread; the internal queue is guarded by one mutex.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "common/protocol.h"
#include "common/task.h"

namespace fanout {

// One finished attempt: its RESULT header and, when ok, its output.
struct FinishedAttempt {
  ResultMsg result;
  std::string output;
};

// Runs one attempt of `task` on the calling thread, with the TASK's payload as its input:
// its RESULT header and output (cleared when it failed). Used by the runner's threads and
// by the loop for the quick attempts it runs inline.
FinishedAttempt RunAttempt(const TaskDef& def, const TaskMsg& task,
                           const std::optional<zmq::message_t>& payload,
                           const std::string& worker_name, std::stop_token stop);

class TaskRunner {
 public:
  TaskRunner(uint32_t slots, std::string worker_name);
  ~TaskRunner();  // cancels everything and joins the threads
  TaskRunner(const TaskRunner&) = delete;
  TaskRunner& operator=(const TaskRunner&) = delete;

  // Queues an attempt of a resolved task. `payload` (the chunk's bytes) is kept, not copied.
  void Submit(const TaskDef* def, TaskMsg task, std::optional<zmq::message_t> payload);
  // Drops a queued attempt, or stops a running one; no result is produced for it.
  void Cancel(uint64_t chunk, uint32_t attempt);
  void CancelAll();
  // Readable (eventfd) when finished attempts are waiting.
  int fd() const { return event_fd_; }
  std::vector<FinishedAttempt> TakeFinished();
  size_t in_progress() const;

 private:
  struct Attempt {
    const TaskDef* def = nullptr;
    TaskMsg task;
    std::optional<zmq::message_t> payload;
  };
  using Key = std::pair<uint64_t, uint32_t>;

  void Work(std::stop_token thread_stop);

  std::string worker_name_;
  int event_fd_ = -1;
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Attempt> queue_;
  // Running attempts with a serial number, so a cancelled attempt that finishes late can
  // never be mistaken for a newer attempt with the same key (e.g. after a reconnect).
  std::map<Key, std::pair<uint64_t, std::stop_source>> running_;
  uint64_t serial_ = 0;
  std::vector<FinishedAttempt> finished_;
  std::vector<std::jthread> threads_;  // last: joined before the state above goes away
};

}  // namespace fanout
