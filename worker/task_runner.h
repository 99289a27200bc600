// TaskRunner: runs a worker's chunk attempts, at most `slots` at once, in arrival order.
// Attempts of tasks with an async form (sleep, exec) run on the loop thread itself
// (AsyncRunner: their fds join the loop's poll); the others run on runner threads, which
// are started lazily, only as many as such attempts need (at most `slots`). Owned by the
// worker loop, which submits attempts and cancels them; threads' finished attempts are
// queued and signalled on an eventfd (fd()) that the loop polls next to its socket, so the
// loop never blocks on a task. Every public method is called from the loop thread; the
// threads' queue is guarded by one mutex.
#pragma once

#include <atomic>
#include <chrono>
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
#include "worker/async_runner.h"

namespace fanout {

// One finished attempt: its RESULT header and, when ok, its output: `output`, or, when a
// pass-through task (TaskDef::run_view) returned its whole input, the TASK's payload frame
// itself (`shared`, sharing the frame's bytes: sent back without a copy).
struct FinishedAttempt {
  ResultMsg result;
  std::string output;
  std::optional<zmq::message_t> shared = std::nullopt;

  std::string_view bytes() const {
    if (shared) return {static_cast<const char*>(shared->data()), shared->size()};
    return output;
  }
  void ClearOutput() {
    std::string().swap(output);
    shared.reset();
  }
};

// Runs one attempt of `task` on the calling thread, with the TASK's payload as its input:
// its RESULT header and output (cleared when it failed). Used by the runner's threads and
// by the loop for the quick attempts it runs inline. `thread_cpu` and `mark` as in
// MeasuredRun.
FinishedAttempt RunAttempt(const TaskDef& def, const TaskMsg& task,
                           const std::optional<zmq::message_t>& payload,
                           const std::string& worker_name, std::stop_token stop,
                           bool thread_cpu = true, uint64_t max_output = 0,
                           std::chrono::steady_clock::time_point* mark = nullptr);

class TaskRunner {
 public:
  TaskRunner(uint32_t slots, std::string worker_name);
  ~TaskRunner();  // cancels everything and joins the threads
  TaskRunner(const TaskRunner&) = delete;
  TaskRunner& operator=(const TaskRunner&) = delete;

  // Queues an attempt of a resolved task. `payload` (the chunk's bytes) is kept, not copied.
  void Submit(const TaskDef* def, TaskMsg task, std::optional<zmq::message_t> payload);
  // Drops a queued attempt, or stops a running one; no result is produced for it. A slot
  // it frees is filled by the next Advance, not at once.
  void Cancel(uint64_t chunk, uint32_t attempt);
  void CancelAll();
  // Removes the attempts that wait for a slot (none of them started) and returns their
  // (chunk, attempt) in arrival order: a draining worker hands them back.
  std::vector<std::pair<uint64_t, uint32_t>> TakeWaiting();
  // Readable (eventfd) when finished attempts of runner threads are waiting.
  int fd() const { return event_fd_; }
  // The loop's poll: async attempts' items and deadline, then Advance after the poll
  // (see AsyncRunner), which also starts waiting attempts. Starting async attempts (a
  // spawn each, for exec) gets a time budget per loop iteration, so a burst of TASKs
  // cannot hold up heartbeats; NextDeadline is then "now". Advance returns true when
  // TakeFinished has results.
  void AppendPollItems(std::vector<zmq::pollitem_t>& items) { async_.AppendPollItems(items); }
  std::optional<AsyncRunner::TimePoint> NextDeadline() const;
  bool Advance(std::span<const zmq::pollitem_t> items, AsyncRunner::TimePoint now);
  // Finished attempts (threads' and async ones); starts waiting attempts in freed slots.
  std::vector<FinishedAttempt> TakeFinished();
  size_t in_progress() const;
  size_t threads() const { return threads_.size(); }
  // The --max-message limit on outputs (ChunkInput::max_output) of attempts started from
  // now on; 0 = none.
  void SetOutputLimit(uint64_t bytes);
  // With `on`, attempts are remembered as they enter a slot (on the loop or a thread) for
  // TakeStarted; a thread that starts one makes fd() readable if nothing else is waiting.
  void ReportStarts(bool on);
  // The (chunk, attempt) of attempts started since the last call, in start order.
  std::vector<std::pair<uint64_t, uint32_t>> TakeStarted();

 private:
  struct Attempt {
    const TaskDef* def = nullptr;
    TaskMsg task;
    std::optional<zmq::message_t> payload;
  };
  using Key = std::pair<uint64_t, uint32_t>;

  void Work(std::stop_token thread_stop);
  // Hands waiting sync attempts to the threads' queue (the threads, at most `slots`, bound
  // how many run) and starts waiting async attempts while fewer than `slots` run.
  void Dispatch();
  // Hands an attempt to the threads, starting one if none is free.
  void ToThreads(Attempt attempt);
  size_t ThreadAttempts() const;  // queued for or running on threads

  uint32_t slots_;
  std::string worker_name_;
  AsyncRunner async_;
  std::deque<Attempt> waiting_;  // loop thread only: async ones over `slots`, in arrival order
  AsyncRunner::TimePoint start_budget_end_{};  // async starts stop here until next Advance
  bool fd_starved_ = false;  // an async start lacked fds: wait until an attempt ends
  int event_fd_ = -1;
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Attempt> queue_;
  // Running attempts with a serial number, so a cancelled attempt that finishes late can
  // never be mistaken for a newer attempt with the same key (e.g. after a reconnect).
  std::map<Key, std::pair<uint64_t, std::stop_source>> running_;
  uint64_t serial_ = 0;
  std::vector<FinishedAttempt> finished_;
  std::atomic<uint64_t> max_output_{0};
  std::atomic<bool> report_starts_{false};
  std::vector<Key> started_;           // guarded by mu_; see TakeStarted
  size_t busy_ = 0;                    // threads running an attempt (Invariant: <= threads_.size())
  std::vector<std::jthread> threads_;  // last: joined before the state above goes away
};

}  // namespace fanout
