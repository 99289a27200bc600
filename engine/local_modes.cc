#include "engine/local_modes.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/measured_run.h"
#include "engine/interrupt.h"
#include "engine/stop_alarm.h"

namespace fanout {
namespace {

// A thread takes up to kMaxThreadBatch chunks per round of the job's lock while its chunks
// take under kQuickChunkSeconds each (doubling from one): microsecond chunks then cost a
// lock round per batch, not per chunk; any slower chunk brings it back to one at a time,
// so long chunks are never hoarded by one thread.
constexpr uint32_t kMaxThreadBatch = 512;
constexpr double kQuickChunkSeconds = 0.00005;

// Runs attempt `a` on this thread. A pass-through task (TaskDef::run_view) whose slice
// lies in the job's input mapping is not copied: the output borrows the mapping, which
// outlives the job's results. Everything else is the task's own output bytes.
// The attempt starts at `mark`, which is set to its end (see MeasuredRun).
Measured RunLocal(const PlannedJob& job, const Assignment& a, std::stop_token stop, bool thread_cpu,
                  Clock::time_point& mark, Blob& output) {
  std::string storage;
  ChunkInput in = job.InputFor(a.chunk, a.attempt, "", storage);
  if (job.task.run_view && !in.range) {
    std::string_view view;
    Measured m = MeasuredView(job.task, in, job.config.args, view, thread_cpu, &mark);
    output = Blob::BorrowedIfWithin(view, job.input.view());
    return m;
  }
  std::string out;
  Measured m = MeasuredRun(job.task, in, job.config.args, out, std::move(stop), thread_cpu, &mark);
  output = Blob(std::move(out));
  return m;
}

// An attempt run on this thread, not yet recorded.
struct LocalResult {
  Measured measured;
  Blob output;
  Clock::time_point end;
};

// Records one finished attempt (which ended at `r.end`). Returns false (with `error` set)
// if the job must stop. The caller then syncs failures (ResultSink::SyncFailures), once a
// batch.
bool Finish(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink, RunStats& stats,
            WorkerIndex worker, const Assignment& a, LocalResult& r, std::string& error) {
  Measured& m = r.measured;
  Blob& output = r.output;
  if (m.status.ok()) m.status = sink.Vet(output.view());
  AttemptSpan span = job.SpanAt(stats.telemetry.At(r.end), a.chunk, a.attempt, worker,
                                m.wall_seconds, output.size(), m.status);
  span.cpu_seconds = m.cpu_seconds;
  stats.telemetry.RecordAttempt(std::move(span));
  ResultOutcome outcome =
      scheduler.OnResult(worker, a.chunk, a.attempt, m.status.ok(), m.status.message(), r.end);
  Log().debug("chunk {} attempt {} on thread {}: {}", a.chunk, a.attempt, worker,
              m.status.ok() ? "ok" : m.status.message());
  if (outcome.verdict == Verdict::kRetrying) {
    Log().warn("{} attempt {} failed, retrying: {}", job.Describe(a.chunk), a.attempt,
               LatestFailureNote(scheduler, a.chunk));
  }
  Status s = outcome.verdict == Verdict::kAccepted
                 ? sink.Accept(a.chunk, std::move(output), m.cpu_seconds)
                 : Status::Ok();
  if (!s.ok()) error = s.message();
  return s.ok();
}

// Passes a job's stop request (RunPlannedJob's `stop`) on to the mode's own stop source,
// which its running tasks watch.
struct StopRequester {
  std::stop_source source;
  void operator()() { source.request_stop(); }
};

// Runs the job on the calling thread and `threads` - 1 more, named by `name(i)`. Serial mode
// is one thread: its microsecond chunks are batched as the threads' are (one CPU clock
// read and one write(2) per batch, not per chunk: 5 -> 1 us a no-op chunk).
template <typename Name>
ModeResult RunPool(const PlannedJob& job, uint32_t threads, Name name, Scheduler& scheduler,
                   ResultSink& sink, RunStats& stats, std::stop_token job_stop) {
  std::mutex mu;
  std::condition_variable cv;  // a chunk was re-queued, or the job ended
  std::string error;
  bool stop = false;
  std::stop_source cancel;  // interrupts and `job_stop`: every running task is asked to stop
  StopAlarm on_interrupt(cancel, std::nullopt);  // Ctrl-C cancels running tasks
  std::stop_callback on_stop(job_stop, StopRequester{cancel});
  stats.workers = threads;
  stats.telemetry.workers_running = threads;
  for (uint32_t i = 0; i < threads; ++i) {
    stats.telemetry.SetWorker(i, {name(i), "local"});
    scheduler.AddWorker(i, 1, kMaxThreadBatch);
  }
  auto done = [&] { return stop || scheduler.Finished() || scheduler.Aborted(); };
  uint32_t busy = 0;  // threads running a batch (outside the lock)
  auto body = [&](WorkerIndex me) {
    std::unique_lock lock(mu);
    uint32_t want = 1;  // chunks taken per lock round: grows while chunks are quick
    std::vector<Assignment> batch;
    std::vector<LocalResult> results;
    while (!done()) {
      batch.clear();
      Clock::time_point now = Clock::Steady().Now();
      while (batch.size() < want) {
        auto a = scheduler.Next(me, now);
        if (!a) break;
        batch.push_back(*a);
      }
      if (batch.empty()) {
        // One thread with nothing to run has nothing to wait for (several may: the
        // scheduler keeps a failed chunk's retry from the thread it failed on while
        // another can take it).
        if (threads == 1 && busy == 0) {
          error = "internal error: no runnable chunk, and none running";
          stop = true;
          break;
        }
        // Nothing runnable now; a failing attempt elsewhere may re-queue a chunk.
        cv.wait(lock);
        continue;
      }
      ++busy;
      lock.unlock();
      results.clear();
      bool quick = true;
      // A batch reads the thread's CPU clock once around all its chunks and shares the
      // time out by wall time (see MeasuredRun); a single chunk is measured on its own.
      bool batched = batch.size() > 1;
      // The steady clock is read once an attempt too: each ends where the next starts.
      BatchCpuClock clock;
      if (batched) clock.Start();
      Clock::time_point mark = Clock::Steady().Now();
      for (const Assignment& a : batch) {
        Blob out;
        stats.telemetry.RecordStart(a.chunk, a.attempt, me);
        Measured m = RunLocal(job, a, cancel.get_token(), !batched, mark, out);
        quick = quick && m.wall_seconds < kQuickChunkSeconds;
        clock.AddWall(m.wall_seconds);
        results.push_back({m, std::move(out), mark});
        if (cancel.stop_requested()) break;
      }
      if (batched) {
        clock.Stop();
        for (LocalResult& r : results)
          r.measured.cpu_seconds += clock.Share(r.measured.wall_seconds);
      }
      want = quick ? std::min(want * 2, kMaxThreadBatch) : 1;
      lock.lock();
      --busy;
      if (stop || cancel.stop_requested()) break;
      for (size_t i = 0; i < results.size() && !stop; ++i) {
        if (!Finish(job, scheduler, sink, stats, me, batch[i], results[i], error)) stop = true;
      }
      // Failures are synced (and the input checked) once a batch, then the outputs written.
      Status s = stop ? Status::Ok() : sink.SyncFailures();
      if (Status flushed = sink.Flush(); s.ok()) s = flushed;
      if (!s.ok() && !stop) {
        error = s.message();
        stop = true;
      }
      // A thread waits only for a chunk to run (a retry re-queued, the window moved on) or
      // the end: waking it for anything else cost a futex round and a context switch on
      // each side (22 context switches in a 256-chunk pass-through, 4 in serial mode and 6
      // now: BENCHMARKS.md).
      if (scheduler.queued() > 0 || done()) cv.notify_all();
    }
    cv.notify_all();
  };
  // Ctrl-C or the job's stop: no thread takes another chunk, and those waiting for one wake.
  // It takes `mu`: nothing that holds `mu` may request `cancel` or `job_stop`.
  std::stop_callback wake_on_cancel(cancel.get_token(), [&] {
    std::lock_guard lock(mu);
    stop = true;
    cv.notify_all();
  });
  {
    // The calling thread is worker 0: a pool of N costs N - 1 thread starts (a few hundred
    // microseconds each on a small virtual machine: BENCHMARKS.md, #16's pass-through row).
    std::vector<std::jthread> pool;
    for (uint32_t i = 1; i < threads; ++i) pool.emplace_back(body, i);
    body(0);
  }
  if (Interrupt::Requested() || job_stop.stop_requested()) return ModeResult::Interrupted();
  if (!error.empty()) return ModeResult::Failed(error);
  return ModeResult::Completed();
}

}  // namespace

ModeResult RunSerial(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink, RunStats& stats,
                     std::stop_token stop) {
  return RunPool(
      job, 1, [](uint32_t) { return std::string("serial"); }, scheduler, sink, stats,
      std::move(stop));
}

ModeResult RunThreads(const PlannedJob& job, uint32_t threads, Scheduler& scheduler,
                      ResultSink& sink, RunStats& stats, std::stop_token stop) {
  if (threads == 0) return ModeResult::Failed("internal error: threads mode with no thread");
  return RunPool(
      job, threads, [](uint32_t i) { return "thread-" + std::to_string(i); }, scheduler, sink,
      stats, std::move(stop));
}

}  // namespace fanout
