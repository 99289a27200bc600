// Dispatcher: the dispatch policy beside the Scheduler. The Scheduler decides which chunk
// an attempt runs; the Dispatcher decides when a worker gets one: how many attempts it may
// hold (its slots plus a prefetch depth that follows measured durations), whether a
// prefetch would starve an idle worker elsewhere (a worker not yet joined counts with all
// its slots), and when an idle worker takes back an attempt waiting, not started, in
// another worker's queue (work stealing; Scheduler::Steal keeps exactly-once).
// Pure: no socket, clock or process; time comes in as arguments, so the event loop
// (dispatch.cc) and the simulator (bench/simulate.cc) drive the same code.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "engine/scheduler.h"

namespace fanout {

struct DispatchOptions {
  // Attempts queued on a worker beyond its slots. Only chunks under pipeline/max_prefetch
  // (4 us, the median) reach it: no-op chunks went 2.5x faster with 1024 than with 64 (a
  // round trip of wake-ups hides behind more of them). The job's reorder window still bounds what
  // is in flight (8 MiB of input, 4096 chunks: engine/job.cc WithWindow).
  uint32_t max_prefetch = 1024;
  Micros pipeline{4000};  // of work queued per slot when chunks are short
  // Attempts go several to a TASKS message when the median attempt is under this.
  Micros batch_below{500};
  // Idle workers steal only while attempts take at least this (or nothing is measured),
  // at the median or the mean (a heavy tail): shorter ones are batched and deeply
  // prefetched, where a steal costs more than it saves.
  Micros steal_above{500};
};

// The other workers of a job, as a worker's dispatch weighs them (Dispatcher::Next).
struct Elsewhere {
  uint64_t idle = 0;   // their free slots, counting workers expected, not joined yet
  uint64_t slots = 0;  // all their slots, busy or free, joined or expected (0: not known)
  uint64_t live = 0;   // the job's attempts they hold, running or queued
};

// One decision for a worker: an attempt to send, and the attempt it was stolen from
// (which must be CANCELled on its worker), if any.
struct Dispatch {
  Assignment assignment;
  std::optional<CancelOrder> stolen_from;
};

class Dispatcher {
 public:
  explicit Dispatcher(Scheduler& scheduler, DispatchOptions options = {})
      : scheduler_(scheduler), options_(options) {}

  // The next attempt for `worker` (`slots` running slots), or nothing. `elsewhere`
  // returns the job's other workers; it is called only when a prefetch is considered. A
  // prefetch is taken while there is more work than idle slots elsewhere, and, when their
  // slots are known, while this worker holds less than its share of the job's attempts
  // left (queued and held everywhere; its slots over all slots): the first of several
  // workers to report a short chunk must not take the rest while the others idle (short
  // chunks are not stolen back). `others`: attempts of other jobs (other Schedulers) on
  // the worker, which take its slots and credits as this job's own do. Call repeatedly
  // until nothing comes back. All attempts must be issued through here (not
  // Scheduler::Next directly).
  std::optional<Dispatch> Next(WorkerIndex worker, uint32_t slots, TimePoint now,
                               const std::function<Elsewhere()>& elsewhere, uint32_t others = 0);

  // Whether a round of Next for `worker` is worth starting now: always while one of its
  // slots is idle or short chunks are not batched; while they are, once half its prefetch
  // depth is free, so its TASKS messages carry many attempts. Refilled as each RESULTS
  // freed credits, the batches stayed as small as the results that freed them: two
  // workers of no-op chunks settled at a few attempts a message (280,000 chunks/s) until a
  // stall let both drain (850,000 chunks/s after). The other half still covers half the
  // pipeline's time at the median. `others` as in Next.
  bool Refill(WorkerIndex worker, uint32_t slots, uint32_t others = 0);
  // Attempts a worker with `slots` may queue beyond them: slots until something is
  // measured, then enough to cover `pipeline` of work per slot at the median attempt time
  // (at most max_prefetch).
  uint32_t PrefetchDepth(uint32_t slots);
  // Whether short chunks go several to a message (median measured and under batch_below).
  bool Batching();
  // Whether an idle worker steals (nothing measured yet, or median or mean >= steal_above).
  bool Stealing();
  // The median attempt time as last read from the scheduler (0 before any).
  Micros median() { return Observe(), median_; }
  uint64_t steals() const { return steals_; }

 private:
  // Re-reads the scheduler's median as the job doubles its finished chunks, then every 1024.
  void Observe();

  Scheduler& scheduler_;
  DispatchOptions options_;
  uint64_t checked_at_ = 0;  // chunks done when median_ was last read; 0: never
  Micros median_{0};
  Micros mean_{0};  // the mean attempt time as last read (>= median_)
  uint64_t steals_ = 0;
  // False once a steal found nothing, until the next prefetch: an attempt waits behind a
  // worker's running slots only if it was sent as a prefetch (positions only move up), so
  // idle workers do not scan every worker again and again (Scheduler::Steal is O(workers)).
  // Every attempt must go out through Next for this to hold.
  bool maybe_waiting_ = true;
};

}  // namespace fanout
