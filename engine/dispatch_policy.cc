#include "engine/dispatch_policy.h"

#include <algorithm>

namespace fanout {

void Dispatcher::Observe() {
  uint64_t done = scheduler_.chunks_done();
  if (done > 0 && (done >= checked_at_ * 2 || done >= checked_at_ + 1024)) {
    // Chunks done by an earlier run (--resume) measured nothing: still unmeasured. Attempts
    // that did finish within the clock's resolution (a median of 0 us) were measured: a
    // median of 0 must not freeze the first reading.
    if (scheduler_.attempts_measured() == 0) return;
    checked_at_ = done;
    median_ = std::max(scheduler_.median_attempt_time(), Micros(1));
    mean_ = std::max(scheduler_.mean_attempt_time(), median_);
  }
}

uint32_t Dispatcher::PrefetchDepth(uint32_t slots) {
  Observe();
  // One round trip hides behind many short chunks, while long chunks keep one queued per
  // slot so that no worker idles waiting for a round trip.
  if (checked_at_ == 0) return slots;  // nothing measured yet
  uint64_t depth = slots * static_cast<uint64_t>(options_.pipeline / std::max(median_, Micros(1)));
  // At least one queued per slot, at most max_prefetch (a worker with more slots than that
  // gets max_prefetch: std::clamp with its bounds crossed would be undefined).
  return static_cast<uint32_t>(
      std::min<uint64_t>(std::max<uint64_t>(depth, slots), options_.max_prefetch));
}

bool Dispatcher::Refill(WorkerIndex worker, uint32_t slots, uint32_t others) {
  uint64_t live = uint64_t{scheduler_.live_attempts(worker)} + others;
  if (live < slots || !Batching()) return true;
  uint64_t depth = PrefetchDepth(slots);
  return slots + depth >= live + (depth + 1) / 2;  // free credits >= half the depth
}

bool Dispatcher::Batching() {
  Observe();
  return checked_at_ > 0 && median_ < options_.batch_below;
}

bool Dispatcher::Stealing() {
  Observe();
  // A heavy tail (a few slow chunks among quick ones: a quick median, a slow mean) steals
  // too: a deep queue of quick chunks then holds some slow ones, and at the end of the
  // job an idle worker must not wait for them behind another's.
  return checked_at_ == 0 || median_ >= options_.steal_above || mean_ >= options_.steal_above;
}

std::optional<Dispatch> Dispatcher::Next(WorkerIndex worker, uint32_t slots, TimePoint now,
                                         const std::function<Elsewhere()>& elsewhere,
                                         uint32_t others) {
  uint32_t mine = scheduler_.live_attempts(worker);
  uint32_t live = mine + others;
  // A prefetch (an attempt queued behind the running ones) only while there is more work
  // than idle slots elsewhere: with few chunks, an idle worker must not wait behind a
  // busy one, nor one still joining behind the first to join. And only below this
  // worker's share of the job's attempts left: ten 60 us chunks on two workers went 2+5
  // and 2+1 (the first to report one took all but one of the rest: short chunks make the
  // prefetch deep), now 2+3 and 2+3.
  bool take = live < slots;
  uint64_t queued = scheduler_.queued();
  if (!take && live < slots + PrefetchDepth(slots) && queued > 0) {
    Elsewhere e = elsewhere();
    uint64_t left = queued + mine + e.live, all = slots + e.slots;
    take = queued > e.idle && (e.slots == 0 || mine * all < left * slots);
  }
  if (take) {
    if (auto a = scheduler_.Next(worker, now)) {
      if (live >= slots) maybe_waiting_ = true;  // a prefetch: it waits on that worker
      return Dispatch{*a, std::nullopt};
    }
  }
  // Nothing queued for it and a slot idle: take back an attempt waiting elsewhere.
  if (live < slots && maybe_waiting_ && Stealing()) {
    if (auto stolen = scheduler_.Steal(worker, now)) {
      ++steals_;
      return Dispatch{stolen->to, stolen->from};
    }
    maybe_waiting_ = false;
  }
  return std::nullopt;
}

}  // namespace fanout
