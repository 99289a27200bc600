#include "worker/task_runner.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

#include "common/command.h"
#include "common/log.h"
#include "common/measured_run.h"

namespace fanout {
namespace {

// Time per loop iteration for starting async attempts (about ten exec spawns).
constexpr std::chrono::milliseconds kStartBudget{10};

}  // namespace

TaskRunner::TaskRunner(uint32_t slots, std::string worker_name)
    : slots_(std::max<uint32_t>(slots, 1)),
      worker_name_(worker_name),
      async_(std::move(worker_name)),
      event_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

TaskRunner::~TaskRunner() {
  CancelAll();
  for (auto& t : threads_) t.request_stop();
  cv_.notify_all();
  threads_.clear();  // joins
  if (event_fd_ >= 0) close(event_fd_);
}

void TaskRunner::Submit(const TaskDef* def, TaskMsg task, std::optional<zmq::message_t> payload) {
  waiting_.push_back(Attempt{def, std::move(task), std::move(payload)});
  Dispatch();
}

size_t TaskRunner::ThreadAttempts() const {
  std::lock_guard lock(mu_);
  return queue_.size() + running_.size();
}

std::optional<AsyncRunner::TimePoint> TaskRunner::NextDeadline() const {
  if (!waiting_.empty() && !fd_starved_ && async_.running() + ThreadAttempts() < slots_) {
    return AsyncRunner::TimePoint{};  // attempts to start once the budget is renewed
  }
  return async_.NextDeadline();
}

bool TaskRunner::Advance(std::span<const zmq::pollitem_t> items, AsyncRunner::TimePoint now) {
  size_t held = async_.held();
  bool finished = async_.Advance(items, now);
  if (async_.held() < held) fd_starved_ = false;
  start_budget_end_ = now + kStartBudget;
  Dispatch();
  return finished;
}

void TaskRunner::Dispatch() {
  while (!waiting_.empty()) {
    if (!waiting_.front().def->start_async) {
      // The threads (at most one per slot) take queued attempts one after another on their
      // own: no hand-off through the loop per attempt, and finished ones are reported
      // together.
      Attempt attempt = std::move(waiting_.front());
      waiting_.pop_front();
      ToThreads(std::move(attempt));
      continue;
    }
    if (async_.running() + ThreadAttempts() >= slots_) return;
    if (std::chrono::steady_clock::now() > start_budget_end_) {
      return;  // the next Advance goes on
    }
    if (fd_starved_) return;  // until an async attempt releases its fds
    Attempt attempt = std::move(waiting_.front());
    waiting_.pop_front();
    Key key{attempt.task.chunk, attempt.task.attempt};
    if (!async_.Start(*attempt.def, attempt.task, attempt.payload)) {
      waiting_.push_front(std::move(attempt));
      fd_starved_ = true;
    } else if (report_starts_) {
      std::lock_guard lock(mu_);
      started_.push_back(key);
    }
  }
}

void TaskRunner::ToThreads(Attempt attempt) {
  bool spawn;
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(attempt));
    spawn = queue_.size() > threads_.size() - busy_ && threads_.size() < slots_;
  }
  if (spawn) {
    threads_.emplace_back([this](std::stop_token st) { Work(st); });
    Log().debug("runner thread {} started", threads_.size());
  } else {
    cv_.notify_one();
  }
}

void TaskRunner::Cancel(uint64_t chunk, uint32_t attempt) {
  std::erase_if(waiting_, [&](const Attempt& a) {
    return a.task.chunk == chunk && a.task.attempt == attempt;
  });
  async_.Cancel(chunk, attempt);
  fd_starved_ = false;  // a cancelled command's pipes are closed at once
  {
    std::lock_guard lock(mu_);
    std::erase_if(queue_, [&](const Attempt& a) {
      return a.task.chunk == chunk && a.task.attempt == attempt;
    });
    if (auto it = running_.find({chunk, attempt}); it != running_.end()) {
      it->second.second.request_stop();
      running_.erase(it);  // its result will be dropped
    }
  }
  // No Dispatch here: the coordinator cancels a job's attempts in a burst, and if a running
  // one's cancel comes before that of one waiting behind it, starting the waiting one in
  // the freed slot now would start a command of a cancelled job. The next Advance starts what still
  // waits (NextDeadline is "now" while a slot is free), after the loop read every message.
}

std::vector<std::pair<uint64_t, uint32_t>> TaskRunner::TakeWaiting() {
  std::vector<Key> taken;
  {
    // The threads' queue first: those arrived before the loop's waiting ones.
    std::lock_guard lock(mu_);
    for (const Attempt& a : queue_) taken.emplace_back(a.task.chunk, a.task.attempt);
    queue_.clear();
  }
  for (const Attempt& a : waiting_) taken.emplace_back(a.task.chunk, a.task.attempt);
  waiting_.clear();
  return taken;
}

void TaskRunner::SetOutputLimit(uint64_t bytes) {
  max_output_ = bytes;
  async_.set_max_output(bytes);
}

void TaskRunner::ReportStarts(bool on) {
  report_starts_ = on;
  std::lock_guard lock(mu_);
  started_.clear();
}

std::vector<std::pair<uint64_t, uint32_t>> TaskRunner::TakeStarted() {
  std::lock_guard lock(mu_);
  return std::exchange(started_, {});
}

void TaskRunner::CancelAll() {
  waiting_.clear();
  async_.CancelAll();
  fd_starved_ = false;
  std::lock_guard lock(mu_);
  queue_.clear();
  for (auto& [key, entry] : running_) entry.second.request_stop();
  running_.clear();
  finished_.clear();
  started_.clear();
}

std::vector<FinishedAttempt> TaskRunner::TakeFinished() {
  uint64_t count;
  [[maybe_unused]] ssize_t n = read(event_fd_, &count, sizeof count);
  std::vector<FinishedAttempt> done = async_.TakeFinished();
  {
    std::lock_guard lock(mu_);
    if (done.empty()) {
      done = std::exchange(finished_, {});
    } else {
      for (FinishedAttempt& f : finished_) done.push_back(std::move(f));
      finished_.clear();
    }
  }
  Dispatch();
  return done;
}

size_t TaskRunner::in_progress() const {
  return waiting_.size() + async_.running() + ThreadAttempts();
}

FinishedAttempt RunAttempt(const TaskDef& def, const TaskMsg& task,
                           const std::optional<zmq::message_t>& payload,
                           const std::string& worker_name, std::stop_token stop, bool thread_cpu,
                           uint64_t max_output, std::chrono::steady_clock::time_point* mark) {
  ChunkInput input;
  if (payload) {
    input.data = std::string_view(static_cast<const char*>(payload->data()), payload->size());
  }
  input.range = task.range;
  input.chunk_id = task.chunk;
  input.attempt = task.attempt;
  input.worker_id = worker_name;
  OkExitScope ok(task.ok_exit);  // the job's --ok-exit, for the command the task starts
  input.max_output = max_output;
  FinishedAttempt done;
  Measured m;
  if (def.run_view && payload && !task.range) {
    std::string_view view;
    m = MeasuredView(def, input, task.args, view, thread_cpu, mark);
    if (view.data() == input.data.data() && view.size() == input.data.size()) {
      done.shared.emplace();
      // Shares the bytes: zmq_msg_copy only counts one more reference to them.
      done.shared->copy(const_cast<zmq::message_t&>(*payload));
    } else {
      done.output.assign(view);
    }
  } else {
    m = MeasuredRun(def, input, task.args, done.output, std::move(stop), thread_cpu, mark);
  }
  done.result = ResultMsg{task.chunk,         task.attempt,  m.status.ok(),
                          m.status.message(), m.cpu_seconds, m.wall_seconds};
  if (!done.result.ok) done.ClearOutput();
  return done;
}

void TaskRunner::Work(std::stop_token thread_stop) {
  // Attempts that queue back to back are measured from where the last one ended (the
  // steady clock is read once an attempt), and the thread's CPU clock, a system call here
  // rather than a vDSO read, only after an attempt of kCpuReadAfter or more: a quicker one
  // is charged its wall time, and the next read charges the rest of what the thread used
  // since the last (so the total stays the thread's own). Reading both clocks twice a
  // no-op attempt was about half of a worker's samples over 100,000 one-record chunks
  // (BENCHMARKS.md).
  // After a wait for work the clocks are read afresh, so no attempt is charged the wait.
  constexpr double kCpuReadAfter = 0.00005;
  bool fresh = true;    // the marks below are to be read before the next attempt
  double cpu_mark = 0;  // the thread's CPU seconds at the last read
  double charged = 0;   // CPU seconds charged since, without a read (quick attempts' walls)
  std::chrono::steady_clock::time_point mark;
  for (;;) {
    Attempt attempt;
    std::stop_source stop;
    uint64_t serial;
    bool wake;
    {
      std::unique_lock lock(mu_);
      if (queue_.empty()) fresh = true;
      if (!cv_.wait(lock, thread_stop, [&] { return !queue_.empty(); })) return;
      attempt = std::move(queue_.front());
      queue_.pop_front();
      serial = ++serial_;
      ++busy_;
      running_[{attempt.task.chunk, attempt.task.attempt}] = {serial, stop};
      // The loop is woken for the first start it has not seen, unless results wake it.
      wake = report_starts_ && started_.empty() && finished_.empty();
      if (report_starts_) started_.emplace_back(attempt.task.chunk, attempt.task.attempt);
    }
    if (wake) {
      uint64_t one = 1;
      [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof one);
    }
    const TaskMsg& t = attempt.task;
    Log().debug("chunk {} attempt {}: started", t.chunk, t.attempt);
    if (fresh) {
      cpu_mark = ThreadCpuSeconds();
      charged = 0;
      mark = std::chrono::steady_clock::now();
      fresh = false;
    }
    FinishedAttempt done = RunAttempt(*attempt.def, t, attempt.payload, worker_name_,
                                      stop.get_token(), /*thread_cpu=*/false, max_output_, &mark);
    // Added to its reaped children's CPU time, if any.
    if (done.result.wall_seconds < kCpuReadAfter) {
      done.result.cpu_seconds += done.result.wall_seconds;
      charged += done.result.wall_seconds;
    } else {
      double cpu_now = ThreadCpuSeconds();
      done.result.cpu_seconds += std::max(0.0, cpu_now - cpu_mark - charged);
      cpu_mark = cpu_now;
      charged = 0;
    }
    Log().debug("chunk {} attempt {}: {}", t.chunk, t.attempt,
                done.result.ok ? "ok" : done.result.error);
    bool first;  // the loop is told once per batch: later ones ride along unsignalled
    {
      std::lock_guard lock(mu_);
      --busy_;
      auto it = running_.find({t.chunk, t.attempt});
      if (it == running_.end() || it->second.first != serial) continue;  // cancelled
      running_.erase(it);
      first = finished_.empty();
      finished_.push_back(std::move(done));
    }
    if (!first) continue;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof one);
  }
}

}  // namespace fanout
