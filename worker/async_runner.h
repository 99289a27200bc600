// AsyncRunner: the worker's attempts whose task has an async form (TaskDef::start_async),
// run on the worker loop's thread without a thread each, asyncio-style: their fds join the
// loop's zmq::poll next to the socket, the poll timeout honours their nearest deadline,
// and after each poll the ready ones are advanced. A cancelled attempt is killed at once
// and kept only until its child is reaped; it produces no result.
// Thread-safety: none; every method is called from the loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/async_attempt.h"
#include "common/protocol.h"
#include "common/task.h"

namespace fanout {

struct FinishedAttempt;

class AsyncRunner {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit AsyncRunner(std::string worker_name);
  ~AsyncRunner();  // kills and reaps what is still running

  // Starts an attempt of `def` (which has start_async), taking `task` and `payload`. A
  // start failure becomes a finished, failed attempt, except one for lack of fds while
  // other attempts hold some (HitFdLimit): then it returns false and takes nothing, for
  // the caller to try again once an attempt has ended.
  bool Start(const TaskDef& def, TaskMsg& task, std::optional<zmq::message_t>& payload);
  // The output limit (ChunkInput::max_output) of attempts started from now on.
  void set_max_output(uint64_t bytes) { max_output_ = bytes; }
  // Stops an attempt without blocking; no result is produced for it.
  void Cancel(uint64_t chunk, uint32_t attempt);
  // Stops every attempt and waits for their children (killed, so this is quick).
  void CancelAll();

  // Appends the poll items of every attempt; the next Advance gets them back in order.
  void AppendPollItems(std::vector<zmq::pollitem_t>& items);
  // The nearest attempt deadline, if any; the distant past while results are waiting.
  std::optional<TimePoint> NextDeadline() const;
  // Advances the attempts whose items are ready or whose deadline has passed. `items` is
  // the whole array that AppendPollItems appended to, after the poll (revents set). Returns true if
  // any attempt finished (see TakeFinished).
  bool Advance(std::span<const zmq::pollitem_t> items, TimePoint now);
  std::vector<FinishedAttempt> TakeFinished();

  size_t running() const { return running_; }      // started, not finished nor cancelled
  size_t held() const { return entries_.size(); }  // running or cancelled, not yet reaped

 private:
  struct Entry;

  // Moves a done attempt to finished_ (or drops it if cancelled).
  void Finish(Entry& entry, TimePoint now);

  std::string worker_name_;
  uint64_t max_output_ = 0;
  std::vector<std::unique_ptr<Entry>> entries_;  // running and cancelled-but-unreaped
  std::vector<FinishedAttempt> finished_;
  size_t polled_ = 0;        // entries_ covered by the last AppendPollItems
  size_t running_ = 0;       // entries_ not cancelled
  std::vector<pollfd> fds_;  // scratch
};

}  // namespace fanout
