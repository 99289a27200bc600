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
  Request request{job, scheduler, sink, stats, std::move(stop), {}, false};
  {
    std::unique_lock lock(mu_);
    if (wake_fd_ < 0) return ModeResult::Failed("cannot create an eventfd");
    if (broken_) return ModeResult::Failed(broken_why_);
    pending_.push_back(&request);
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
  auto finish = [this](Request* r, ModeResult result) {
    std::lock_guard guard(mu_);
    r->result = std::move(result);
    r->done = true;
    cv_.notify_all();
  };
  if (!started.ok()) {
    // Every request fails at once, until the destructor.
    for (;;) {
      for (Request* r : pending_) {
        r->result = ModeResult::Failed(started.message());
        r->done = true;
      }
      pending_.clear();
      cv_.notify_all();
      if (stop_) return;
      cv_.wait(lock);  // woken by Run or the destructor
    }
  }
  lock.unlock();
  try {
    // Jobs are admitted as they come (woken by wake_fd) and end on their own (Admit's
    // callback); the loop serves the workers throughout, with or without jobs.
    loop.Serve([&] {
      Drain();  // the wake-up, which must not keep the loop's polls awake
      std::vector<Request*> fresh;
      {
        std::lock_guard guard(mu_);
        if (stop_) return true;
        fresh.swap(pending_);
      }
      for (Request* r : fresh) {
        loop.Admit(r->job, r->scheduler, r->sink, r->stats, r->stop,
                   [&finish, r](ModeResult result) { finish(r, std::move(result)); });
      }
      return false;
    });
  } catch (const std::exception& e) {
    // The loop's state is unknown after a throw: its jobs fail and it serves no more.
    ModeResult failed = ModeResult::Failed(e.what());
    loop.Abandon(failed);
    std::lock_guard guard(mu_);
    broken_ = true;
    broken_why_ = std::string("the pool's workers stopped after an earlier error: ") + e.what();
    for (Request* r : pending_) {
      r->result = failed;
      r->done = true;
    }
    pending_.clear();
    cv_.notify_all();
  }
  // Jobs still running when the owner goes (it should have waited for them) end here, so
  // that their callers do not wait forever.
  loop.Abandon(ModeResult::Failed("the workers were stopped"));
  lock.lock();
  for (Request* r : pending_) {
    r->result = ModeResult::Failed("the workers were stopped");
    r->done = true;
  }
  pending_.clear();
  cv_.notify_all();
  lock.unlock();
  if (started.ok()) loop.Stop();
}

}  // namespace fanout
