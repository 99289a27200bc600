#include "engine/warm_processes.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/event_loop.h"

namespace fanout {

struct WarmProcesses::Request {
  const PlannedJob& job;
  Scheduler& scheduler;
  ResultSink& sink;
  RunStats& stats;
  std::stop_token stop;
  ModeResult result;
  bool done = false;
};

WarmProcesses::WarmProcesses(const JobConfig& config, uint32_t workers)
    : config_(config), workers_(workers), wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

WarmProcesses::~WarmProcesses() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  Wake();
  if (thread_.joinable()) thread_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void WarmProcesses::Drain() {
  uint64_t count;
  while (read(wake_fd_, &count, sizeof count) > 0) {
  }
}

void WarmProcesses::Wake() {
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof one);
}

Status WarmProcesses::Open() {
  std::unique_lock lock(mu_);
  if (wake_fd_ < 0) return Status::Error("cannot create an eventfd");
  if (!thread_.joinable()) thread_ = std::thread([this] { Main(); });
  cv_.wait(lock, [&] { return opened_; });
  return broken_ ? Status::Error(broken_why_) : Status::Ok();
}

ModeResult WarmProcesses::Run(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink,
                              RunStats& stats, std::stop_token stop) {
  std::lock_guard turn(turn_);
  Request request{job, scheduler, sink, stats, std::move(stop), {}, false};
  {
    std::unique_lock lock(mu_);
    if (wake_fd_ < 0) return ModeResult::Failed("cannot create an eventfd");
    if (broken_) return ModeResult::Failed(broken_why_);
    request_ = &request;
    if (!thread_.joinable()) thread_ = std::thread([this] { Main(); });
  }
  Wake();
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return request.done; });
  return request.result;
}

void WarmProcesses::Main() {
  internal::EventLoop loop(config_, workers_, /*warm=*/true, wake_fd_);
  Status started = loop.Start();
  std::unique_lock lock(mu_);
  if (!started.ok()) {
    broken_ = true;
    broken_why_ = started.message();
  }
  opened_ = true;
  cv_.notify_all();
  while (!stop_) {
    if (Request* r = request_) {
      lock.unlock();
      Drain();  // the job's wake-up, which must not keep the job's polls awake
      ModeResult result;
      bool broke = false;
      if (!started.ok()) {
        result = ModeResult::Failed(started.message());
      } else {
        try {
          result = loop.RunJob(r->job, r->scheduler, r->sink, r->stats, r->stop);
        } catch (const std::exception& e) {
          // The loop's state is unknown after a throw: it serves no more jobs.
          result = ModeResult::Failed(e.what());
          broke = true;
        }
      }
      lock.lock();
      if (broke) {
        broken_ = true;
        broken_why_ = "the pool's workers stopped after an earlier error: " + result.message;
      }
      r->result = std::move(result);
      r->done = true;
      request_ = nullptr;
      cv_.notify_all();
      if (broke) break;
      continue;
    }
    if (!started.ok()) {
      cv_.wait(lock);  // woken by Run (its request fails at once) or the destructor
      continue;
    }
    lock.unlock();
    loop.Idle([&] {
      Drain();
      std::lock_guard guard(mu_);
      return stop_ || request_ != nullptr;
    });
    lock.lock();
  }
  lock.unlock();
  if (started.ok()) loop.Stop();
}

}  // namespace fanout
