#include "worker/async_runner.h"

#include <algorithm>

#include "common/command.h"
#include "common/log.h"
#include "worker/task_runner.h"

namespace fanout {

struct AsyncRunner::Entry {
  TaskMsg task;
  std::optional<zmq::message_t> payload;  // the chunk's bytes, viewed by the attempt
  std::unique_ptr<AsyncAttempt> attempt;
  TimePoint started;
  bool cancelled = false;
  bool done = false;
  size_t first_item = 0;  // its items in the last AppendPollItems
  size_t item_count = 0;
};

AsyncRunner::AsyncRunner(std::string worker_name) : worker_name_(std::move(worker_name)) {}

AsyncRunner::~AsyncRunner() { CancelAll(); }

bool AsyncRunner::Start(const TaskDef& def, TaskMsg& task, std::optional<zmq::message_t>& payload) {
  auto entry = std::make_unique<Entry>();
  entry->task = std::move(task);
  entry->payload = std::move(payload);
  entry->started = std::chrono::steady_clock::now();
  ChunkInput input;
  if (entry->payload) {
    input.data =
        std::string_view(static_cast<const char*>(entry->payload->data()), entry->payload->size());
  }
  const TaskMsg& t = entry->task;
  input.range = t.range;
  input.chunk_id = t.chunk;
  input.attempt = t.attempt;
  input.worker_id = worker_name_;
  input.max_output = max_output_;
  OkExitScope ok(t.ok_exit);  // the job's --ok-exit, for the command it starts
  auto attempt = def.start_async(input, t.args);
  if (!attempt.ok() && HitFdLimit(attempt.status()) && !entries_.empty()) {
    Log().debug("chunk {} attempt {}: held back until an attempt releases its fds", t.chunk,
                t.attempt);
    task = std::move(entry->task);
    payload = std::move(entry->payload);
    return false;
  }
  if (!attempt.ok()) {
    Log().debug("chunk {} attempt {}: {}", t.chunk, t.attempt, attempt.status().message());
    finished_.push_back(FinishedAttempt{
        ResultMsg{t.chunk, t.attempt, false, attempt.status().message(), 0, 0}, {}});
    return true;
  }
  Log().debug("chunk {} attempt {}: started on the event loop", t.chunk, t.attempt);
  entry->attempt = std::move(attempt).value();
  entries_.push_back(std::move(entry));
  ++running_;
  return true;
}

void AsyncRunner::Cancel(uint64_t chunk, uint32_t attempt) {
  std::erase_if(finished_, [&](const FinishedAttempt& f) {
    return f.result.chunk == chunk && f.result.attempt == attempt;
  });
  for (auto& entry : entries_) {
    if (entry->cancelled || entry->task.chunk != chunk || entry->task.attempt != attempt) continue;
    entry->cancelled = true;
    entry->attempt->Cancel();
    --running_;
  }
}

void AsyncRunner::CancelAll() {
  for (auto& entry : entries_) entry->attempt->Cancel();
  entries_.clear();  // each destructor reaps its killed child
  finished_.clear();
  polled_ = 0;
  running_ = 0;
}

void AsyncRunner::AppendPollItems(std::vector<zmq::pollitem_t>& items) {
  for (auto& entry : entries_) {
    fds_.clear();
    entry->attempt->AppendFds(fds_);
    entry->first_item = items.size();
    entry->item_count = fds_.size();
    for (const pollfd& p : fds_) {
      short events = static_cast<short>(((p.events & POLLIN) ? ZMQ_POLLIN : 0) |
                                        ((p.events & POLLOUT) ? ZMQ_POLLOUT : 0));
      items.push_back({nullptr, p.fd, events, 0});
    }
  }
  polled_ = entries_.size();
}

std::optional<AsyncRunner::TimePoint> AsyncRunner::NextDeadline() const {
  if (!finished_.empty()) return TimePoint{};  // results to send: do not wait
  std::optional<TimePoint> nearest;
  for (const auto& entry : entries_) {
    auto d = entry->attempt->deadline();
    if (d && (!nearest || *d < *nearest)) nearest = d;
  }
  return nearest;
}

bool AsyncRunner::Advance(std::span<const zmq::pollitem_t> items, TimePoint now) {
  // Entries started after the last poll have no items yet: advancing them is harmless.
  for (size_t i = 0; i < entries_.size(); ++i) {
    Entry& entry = *entries_[i];
    bool due = i >= polled_;
    if (!due && entry.item_count > 0) {
      for (size_t k = 0; k < entry.item_count && !due; ++k) {
        size_t index = entry.first_item + k;
        due = index < items.size() && items[index].revents != 0;
      }
    }
    if (!due) {
      auto d = entry.attempt->deadline();
      due = d && *d <= now;
    }
    if (due && entry.attempt->Advance(now)) entry.done = true;
  }
  for (auto& entry : entries_) {
    if (entry->done) Finish(*entry, now);
  }
  std::erase_if(entries_, [](const auto& e) { return e->done; });
  polled_ = 0;
  return !finished_.empty();
}

void AsyncRunner::Finish(Entry& entry, TimePoint now) {
  const TaskMsg& t = entry.task;
  if (entry.cancelled) {
    Log().debug("chunk {} attempt {}: cancelled attempt reaped", t.chunk, t.attempt);
    return;
  }
  --running_;
  AsyncOutcome outcome = entry.attempt->Take();
  double wall = std::chrono::duration<double>(now - entry.started).count();
  FinishedAttempt done{ResultMsg{t.chunk, t.attempt, outcome.status.ok(), outcome.status.message(),
                                 outcome.cpu_seconds, wall},
                       {}};
  if (done.result.ok) done.output = std::move(outcome.output);
  Log().debug("chunk {} attempt {}: {}", t.chunk, t.attempt,
              done.result.ok ? "ok" : done.result.error);
  finished_.push_back(std::move(done));
}

std::vector<FinishedAttempt> AsyncRunner::TakeFinished() { return std::exchange(finished_, {}); }

}  // namespace fanout
