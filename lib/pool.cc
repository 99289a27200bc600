// Pool (fanout/pool.h): map, map_range, submit and as_completed on top of RunBatch.
// submit() queues chunks for one dispatcher thread, which runs the chunks submitted close
// together (same task and arguments) as one job. In threads mode the submitted jobs share
// the pool's `workers` threads: a job starts as soon as one is free (on as many as are
// free), so submissions spaced out in time still run side by side, as with
// concurrent.futures. In serial mode, and in processes and remote mode (whose calls take
// turns on the warm workers anyway), one submitted job runs at a time. as_completed runs
// its job on a thread of its own that feeds a queue. All shared state is guarded by one
// mutex per object.
// Cancellation: every job takes the stop token of the pool's current stop source when it
// starts; cancel() requests that source's stop and puts a fresh one in its place, so later
// calls run normally. A stream's job has a stop source of its own, linked to the pool's.
#include "fanout/pool.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <stop_token>
#include <thread>
#include <utility>

#include "lib/batch.h"
#include "lib/pool_settings.h"

namespace fanout {

// ---- CompletionStream ------------------------------------------------------------------

// Hidden, unlike the exported class around it: nothing outside the library uses it.
struct __attribute__((visibility("hidden"))) CompletionStream::State {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Completed> ready;
  bool done = false;
  std::stop_source stop;  // this job's: requested by the destructor or the pool's cancel()
  std::jthread thread;    // runs the job; joined by the stream's destructor
};

CompletionStream::CompletionStream(std::shared_ptr<State> state) : state_(std::move(state)) {}
CompletionStream::CompletionStream(CompletionStream&&) noexcept = default;
CompletionStream::~CompletionStream() {
  if (!state_) return;          // moved from
  state_->stop.request_stop();  // nothing left to cancel once the job ended
  if (state_->thread.joinable()) state_->thread.join();
}

std::optional<Completed> CompletionStream::next() {
  std::unique_lock lock(state_->mu);
  state_->cv.wait(lock, [&] { return !state_->ready.empty() || state_->done; });
  if (state_->ready.empty()) return std::nullopt;
  Completed c = std::move(state_->ready.front());
  state_->ready.pop_front();
  return c;
}

// ---- Pool ------------------------------------------------------------------------------

namespace {

// How long the dispatcher waits for more submissions before starting a job, so a loop of
// submit() calls becomes one job instead of one job per chunk.
constexpr auto kCoalesce = std::chrono::milliseconds(2);

struct Submission {
  uint64_t number;  // 0-based, in submission order over the pool's life
  std::string task;
  std::vector<std::string> args;
  std::string chunk;
  std::promise<std::string> promise;
};

}  // namespace

// Hidden, unlike the exported class around it: nothing outside the library uses it.
struct __attribute__((visibility("hidden"))) Pool::Impl {
  explicit Impl(PoolOptions o) : options(std::move(o)) {}

  void Dispatch(std::stop_token stop);
  void RunGroup(std::vector<Submission>& group, const PoolSettings& settings,
                std::stop_token cancel);
  // How many submitted chunks may run at once: the threads (or workers) a job of this
  // pool would use.
  uint32_t Capacity() const;
  // The stop token jobs starting now take (cancelled by the next cancel()).
  std::stop_token CancelToken() {
    std::lock_guard lock(mu);
    return cancel.get_token();
  }

  PoolOptions options;
  std::mutex mu;
  std::condition_variable_any cv;
  std::deque<Submission> pending;
  uint64_t submitted = 0;
  uint32_t busy = 0;        // threads mode: threads the submitted jobs running now hold
  std::stop_source cancel;  // the current generation's: replaced by cancel()
  std::jthread dispatcher;  // started by the first submit
  // Processes and remote mode: the workers every call runs on (batch.h).
  std::shared_ptr<WarmWorkers> warm = std::make_shared<WarmWorkers>();
};

uint32_t Pool::Impl::Capacity() const {
  return options.mode() == PoolMode::kSerial ? 1 : WorkersOf(SettingsOf(options));
}

void Pool::Impl::Dispatch(std::stop_token stop) {
  // Threads mode: each submitted job runs on a thread of its own (its `runner`), holding
  // `threads` of the pool's Capacity() until it ends. Other modes run their jobs here.
  struct Runner {
    std::jthread thread;
    bool done = false;  // guarded by mu
  };
  std::list<Runner> runners;  // joined when Dispatch returns
  const bool side_by_side = options.mode() == PoolMode::kThreads;
  const uint32_t capacity = Capacity();
  std::unique_lock lock(mu);
  for (;;) {
    std::erase_if(runners, [](const Runner& r) { return r.done; });  // ended: joins at once
    cv.wait(lock, stop, [&] { return !pending.empty() && busy < capacity; });
    if (pending.empty() || busy >= capacity) break;  // stopped
    // Let a burst of submissions arrive (a bounded wait; stop ends it early).
    size_t seen = 0;
    while (seen != pending.size() && !stop.stop_requested()) {
      seen = pending.size();
      cv.wait_for(lock, stop, kCoalesce, [&] { return pending.size() != seen; });
    }
    if (pending.empty()) continue;  // cancelled meanwhile
    // The group: the oldest submission's task and arguments. With threads busy, only the
    // free threads' share of what is queued, so that the rest can start on threads that
    // free up meanwhile (a thread that is busy for long does not hold back the others).
    const uint32_t free_threads = capacity - busy;
    const size_t share = std::max<size_t>(1, (pending.size() + capacity - 1) / capacity);
    const size_t limit = busy == 0 ? pending.size() : free_threads * share;
    std::vector<Submission> group;
    std::stop_token cancel_token = cancel.get_token();  // with the group: a cancel() takes both
    const std::string task = pending.front().task;
    const std::vector<std::string> args = pending.front().args;
    for (auto it = pending.begin(); it != pending.end() && group.size() < limit;) {
      if (it->task == task && it->args == args) {
        group.push_back(std::move(*it));
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    PoolSettings settings = SettingsOf(options);
    if (!side_by_side) {
      lock.unlock();
      RunGroup(group, settings, cancel_token);
      lock.lock();
      continue;
    }
    const auto threads = static_cast<uint32_t>(std::min<size_t>(group.size(), free_threads));
    settings.workers = threads;
    busy += threads;
    Runner& runner = runners.emplace_back();
    runner.thread = std::jthread([this, &runner, threads, settings = std::move(settings),
                                  group = std::move(group), cancel_token]() mutable {
      RunGroup(group, settings, cancel_token);
      std::lock_guard done_lock(mu);
      busy -= threads;
      runner.done = true;
      cv.notify_all();
    });
  }
  lock.unlock();
  runners.clear();  // joins the jobs still running (a cancel() stopped them)
}

void Pool::Impl::RunGroup(std::vector<Submission>& group, const PoolSettings& settings,
                          std::stop_token cancel_token) {
  BatchSpec spec;
  spec.task = group.front().task;
  spec.args = group.front().args;
  spec.keep_going = true;
  for (Submission& s : group) {
    spec.chunks.push_back(std::move(s.chunk));
    spec.ids.push_back(s.number);
  }
  // Each promise is set once: a second set_value/set_exception would throw future_error
  // out of the dispatcher thread and end the program.
  std::vector<bool> settled(group.size(), false);
  BatchCallbacks callbacks;
  callbacks.on_result = [&](uint64_t c, std::string out) {
    if (c >= group.size() || settled[c]) return;
    settled[c] = true;
    group[c].promise.set_value(std::move(out));
  };
  callbacks.on_error = [&](uint64_t c, std::exception_ptr e) {
    if (c >= group.size() || settled[c]) return;
    settled[c] = true;
    group[c].promise.set_exception(std::move(e));
  };
  try {
    RunBatch(settings, spec, callbacks, warm.get(), std::move(cancel_token));
  } catch (...) {
    for (size_t c = 0; c < group.size(); ++c) callbacks.on_error(c, std::current_exception());
  }
}

Pool::Pool(PoolOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Pool::Pool(PoolMode mode, uint32_t workers) : Pool(PoolOptions().mode(mode).workers(workers)) {}

Pool::~Pool() {
  cancel();  // queued submissions get Cancelled now, the running group once it stops
  if (impl_->dispatcher.joinable()) {
    impl_->dispatcher.request_stop();
    impl_->dispatcher.join();
  }
}

void Pool::cancel() {
  std::deque<Submission> dropped;
  {
    std::lock_guard lock(impl_->mu);
    impl_->cancel.request_stop();
    impl_->cancel = std::stop_source();
    dropped.swap(impl_->pending);
  }
  for (Submission& s : dropped) {
    s.promise.set_exception(
        std::make_exception_ptr(Cancelled("chunk " + std::to_string(s.number) + " cancelled")));
  }
}

const PoolOptions& Pool::options() const { return impl_->options; }

namespace {

std::vector<std::string> Collect(const PoolSettings& options, const BatchSpec& spec, size_t count,
                                 WarmWorkers* warm, std::stop_token cancel) {
  std::vector<std::string> results(count);
  std::exception_ptr first_task_error, first_error;
  BatchCallbacks callbacks;
  callbacks.on_result = [&](uint64_t c, std::string out) { results[c] = std::move(out); };
  callbacks.on_error = [&](uint64_t, const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const TaskError&) {
      if (!first_task_error) first_task_error = e;
    } catch (...) {
      if (!first_error) first_error = e;
    }
  };
  RunBatch(options, spec, callbacks, warm, std::move(cancel));
  if (first_task_error) std::rethrow_exception(first_task_error);
  if (first_error) std::rethrow_exception(first_error);
  return results;
}

}  // namespace

std::vector<std::string> Pool::map(std::string_view task, const std::vector<std::string>& chunks,
                                   const std::vector<std::string>& args) {
  BatchSpec spec;
  spec.task = task;
  spec.args = args;
  spec.chunks = chunks;
  return Collect(SettingsOf(impl_->options), spec, chunks.size(), impl_->warm.get(),
                 impl_->CancelToken());
}

std::vector<std::string> Pool::map_range(std::string_view task, int64_t lo, int64_t hi,
                                         uint64_t chunks, const std::vector<std::string>& args) {
  if (hi < lo) throw PoolError("map_range: hi must not be less than lo");
  BatchSpec spec;
  spec.task = task;
  spec.args = args;
  spec.range = NumberRange{lo, hi};
  spec.range_chunks = std::max<uint64_t>(chunks, 1);
  uint64_t count = std::min<uint64_t>(spec.range_chunks, static_cast<uint64_t>(hi - lo));
  return Collect(SettingsOf(impl_->options), spec, count, impl_->warm.get(), impl_->CancelToken());
}

std::future<std::string> Pool::submit(std::string_view task, std::string chunk,
                                      const std::vector<std::string>& args) {
  std::lock_guard lock(impl_->mu);
  Submission s{impl_->submitted++, std::string(task), args, std::move(chunk), {}};
  std::future<std::string> future = s.promise.get_future();
  impl_->pending.push_back(std::move(s));
  if (!impl_->dispatcher.joinable()) {
    impl_->dispatcher =
        std::jthread([impl = impl_.get()](std::stop_token st) { impl->Dispatch(st); });
  }
  impl_->cv.notify_all();
  return future;
}

CompletionStream Pool::as_completed(std::string_view task, std::vector<std::string> chunks,
                                    const std::vector<std::string>& args) {
  auto state = std::make_shared<CompletionStream::State>();
  BatchSpec spec;
  spec.task = task;
  spec.args = args;
  spec.chunks = std::move(chunks);
  spec.keep_going = true;
  state->thread = std::jthread([state_ptr = state.get(), options = SettingsOf(impl_->options),
                                spec = std::move(spec), warm = impl_->warm,
                                pool_cancel = impl_->CancelToken()] {
    auto& st = *state_ptr;
    // The pool's cancel() stops this job too (the stream may outlive the pool).
    std::stop_callback link(pool_cancel, [stop = st.stop]() mutable { stop.request_stop(); });
    auto push = [&](Completed c) {
      std::lock_guard lock(st.mu);
      st.ready.push_back(std::move(c));
      st.cv.notify_all();
    };
    // Each chunk is reported once, also when the job throws after some were reported.
    std::vector<bool> reported(spec.chunks.size(), false);
    BatchCallbacks callbacks;
    callbacks.on_result = [&](uint64_t c, std::string out) {
      if (c >= reported.size() || reported[c]) return;
      reported[c] = true;
      push({c, std::move(out), nullptr});
    };
    callbacks.on_error = [&](uint64_t c, std::exception_ptr e) {
      if (c >= reported.size() || reported[c]) return;
      reported[c] = true;
      push({c, {}, std::move(e)});
    };
    try {
      RunBatch(options, spec, callbacks, warm.get(), st.stop.get_token());
    } catch (...) {
      for (uint64_t c = 0; c < spec.chunks.size(); ++c)
        callbacks.on_error(c, std::current_exception());
    }
    std::lock_guard lock(st.mu);
    st.done = true;
    st.cv.notify_all();
  });
  return CompletionStream(std::move(state));
}

}  // namespace fanout
