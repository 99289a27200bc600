#include "engine/scheduler.h"

#include <algorithm>
#include <cstdio>

namespace fanout {

Scheduler::Scheduler(uint64_t num_chunks, SchedulerOptions options)
    : options_(options), chunks_(num_chunks) {
  for (uint64_t i = 0; i < num_chunks; ++i) queue_.push_back(i);
}

void Scheduler::LiveAttempts::push_back(const Live& l) {
  if (many_.empty() && !has_one_) {
    one_ = l;
    has_one_ = true;
    return;
  }
  if (many_.empty()) {
    many_.reserve(2);
    many_.push_back(one_);
    has_one_ = false;
  }
  many_.push_back(l);
}

void Scheduler::LiveAttempts::erase(const Live* at) {
  if (many_.empty()) {
    has_one_ = false;
    return;
  }
  many_.erase(many_.begin() + (at - many_.data()));
  if (many_.size() == 1) {
    one_ = many_[0];
    has_one_ = true;
    many_ = {};
  }
}

void Scheduler::AddWorker(WorkerIndex worker, uint32_t slots, uint32_t capacity,
                          bool reports_starts) {
  Worker& w = workers_[worker];
  w.slots = std::max<uint32_t>(1, slots);
  w.capacity = std::max(w.slots, capacity);
  w.reports_starts = reports_starts;
}

void Scheduler::MarkStarted(WorkerIndex worker, uint64_t chunk, uint32_t attempt, TimePoint now) {
  if (chunk >= chunks_.size()) return;
  Live* l = FindLive(chunk, attempt);
  if (!l || l->worker != worker) return;
  l->reported = true;
  l->reported_at = now;
  if (!l->started) l->started = now;
}

std::optional<TimePoint> Scheduler::DeadlineStart(const Live& l) const {
  auto w = workers_.find(l.worker);
  return w != workers_.end() && w->second.reports_starts ? l.reported_at : l.started;
}

void Scheduler::MarkDone(uint64_t chunk) {
  if (chunk >= chunks_.size() || chunks_[chunk].state != State::kQueued) return;
  if (chunks_[chunk].attempts_issued != 0) return;
  chunks_[chunk].state = State::kDone;
  ++done_;
  if (!queue_.empty() && queue_.front() == chunk) {
    queue_.pop_front();  // the usual case: a prefix of the plan, in order
  } else {
    std::erase(queue_, chunk);
  }
  while (low_water_ < chunks_.size() && chunks_[low_water_].state == State::kDone) ++low_water_;
}

void Scheduler::MarkRun(uint64_t chunk) {
  if (chunk >= chunks_.size() || chunks_[chunk].state != State::kQueued) return;
  if (chunks_[chunk].attempts_issued != 0) return;
  MarkDone(chunk);
  chunks_[chunk].attempts_issued = 1;
  ++counters_.attempts;
}

void Scheduler::ReleaseAttempt(uint64_t chunk, uint32_t attempt) {
  if (chunk >= chunks_.size() || !FindLive(chunk, attempt)) return;
  FailAttempt(chunk, attempt, "", Charge::kNone);
}

uint32_t Scheduler::live_attempts(WorkerIndex worker) const {
  auto it = workers_.find(worker);
  return it == workers_.end() ? 0 : static_cast<uint32_t>(it->second.live.size());
}

std::vector<uint64_t> Scheduler::RemoveWorker(WorkerIndex worker, const std::string& reason,
                                              TimePoint now,
                                              std::vector<std::pair<uint64_t, uint32_t>>* charged) {
  now_ = now;
  std::vector<uint64_t> failed_now;
  auto it = workers_.find(worker);
  if (it == workers_.end()) return failed_now;
  ++counters_.workers_lost;
  auto live = std::move(it->second.live);
  uint32_t running = it->second.slots;
  bool reports_starts = it->second.reports_starts;
  workers_.erase(it);
  // Re-queue in descending chunk order at the front so the queue stays ascending.
  std::vector<std::pair<std::pair<uint64_t, uint32_t>, bool>> ended;
  uint32_t n = 0;
  for (auto& la : live) {
    bool started = n++ < running;
    if (reports_starts) {
      const Live* l = FindLive(la.first, la.second);
      started = l && l->reported;
    }
    if (reports_starts && !started && ++chunks_[la.first].free_losses >= kFreeLosses) {
      started = true;
    }
    ended.push_back({la, started});
  }
  std::sort(ended.begin(), ended.end(),
            [](const auto& a, const auto& b) { return a.first.first > b.first.first; });
  for (auto& [la, started] : ended) {
    if (started && charged) charged->push_back(la);
    if (started) ++counters_.crashes;
    if (FailAttempt(la.first, la.second, reason, started ? Charge::kLost : Charge::kNone) ==
        Verdict::kChunkFailed)
      failed_now.push_back(la.first);
  }
  return failed_now;
}

void Scheduler::HandBack(WorkerIndex worker,
                         const std::vector<std::pair<uint64_t, uint32_t>>& attempts) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  it->second.draining = true;
  std::vector<std::pair<uint64_t, uint32_t>> back;
  for (const auto& la : attempts) {
    if (la.first >= chunks_.size()) continue;
    const Live* l = FindLive(la.first, la.second);
    if (l && l->worker == worker) back.push_back(la);
  }
  // Re-queue in descending chunk order at the front so the queue stays ascending.
  std::sort(back.begin(), back.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [chunk, attempt] : back) {
    FailAttempt(chunk, attempt, "handed back", Charge::kNone);
  }
}

void Scheduler::LeaveWorker(WorkerIndex worker) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  std::vector<std::pair<uint64_t, uint32_t>> held(it->second.live.begin(), it->second.live.end());
  HandBack(worker, held);
  workers_.erase(worker);
  ++counters_.workers_left;
}

Scheduler::Live* Scheduler::FindLive(uint64_t chunk, uint32_t attempt) {
  for (Live& l : chunks_[chunk].live)
    if (l.attempt == attempt) return &l;
  return nullptr;
}

const Scheduler::Live* Scheduler::FindLive(uint64_t chunk, uint32_t attempt) const {
  for (const Live& l : chunks_[chunk].live)
    if (l.attempt == attempt) return &l;
  return nullptr;
}

uint32_t Scheduler::waiting_attempts(WorkerIndex worker) const {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return 0;
  const Worker& w = it->second;
  uint32_t n = 0;
  for (size_t i = w.slots; i < w.live.size(); ++i) {
    const Live* l = FindLive(w.live[i].first, w.live[i].second);
    if (l && !l->reported) ++n;
  }
  return n;
}

std::optional<Scheduler::Stolen> Scheduler::Steal(WorkerIndex thief, TimePoint now) {
  auto t = workers_.find(thief);
  if (t == workers_.end() || Aborted() || t->second.draining ||
      t->second.live.size() >= t->second.capacity) {
    return std::nullopt;
  }
  // The victim: the worker with the most attempts waiting behind its running slots. A
  // worker runs its attempts in arrival order, so one at position >= slots of its queue
  // has not started unless it said so (MarkStarted).
  std::optional<WorkerIndex> victim;
  size_t most = 0;
  for (const auto& [index, w] : workers_) {
    if (index == thief || w.live.size() <= w.slots || w.live.size() - w.slots <= most) continue;
    uint32_t waiting = waiting_attempts(index);
    if (waiting > most) {
      most = waiting;
      victim = index;
    }
  }
  if (!victim) return std::nullopt;
  const Worker& v = workers_[*victim];
  for (size_t i = v.live.size(); i-- > v.slots;) {
    auto [chunk, attempt] = v.live[i];
    const Live* l = FindLive(chunk, attempt);
    if (!l || l->reported) continue;
    now_ = now;
    DropLive(chunk, attempt);  // ends without penalty: it never started
    // It keeps its number (it never ran, so it is the same attempt, and FANOUT_ATTEMPT,
    // the joblog and "attempt k of n" stay as the user counts): results and starts are
    // matched by worker too, so the old worker's are late duplicates.
    chunks_[chunk].live.push_back({attempt, thief, std::nullopt, false, std::nullopt});
    t->second.live.emplace_back(chunk, attempt);
    PromoteRunning(thief);
    return Stolen{{*victim, chunk, attempt}, {chunk, attempt, false}};
  }
  return std::nullopt;
}

void Scheduler::PromoteRunning(WorkerIndex worker) {
  auto w = workers_.find(worker);
  if (w == workers_.end()) return;
  uint32_t n = 0;
  for (const auto& [chunk, attempt] : w->second.live) {
    if (n++ >= w->second.slots) break;
    Live* l = FindLive(chunk, attempt);
    if (l && !l->started) l->started = now_;
  }
}

void Scheduler::DropLive(uint64_t chunk, uint32_t attempt) {
  Chunk& c = chunks_[chunk];
  auto it = std::find_if(c.live.begin(), c.live.end(),
                         [&](const Live& l) { return l.attempt == attempt; });
  if (it == c.live.end()) return;
  WorkerIndex worker = it->worker;
  c.live.erase(it);
  auto w = workers_.find(worker);
  if (w != workers_.end()) {
    // Results come back mostly in dispatch order: the entry is found at or near the front.
    auto& q = w->second.live;
    if (auto at = std::find(q.begin(), q.end(), std::make_pair(chunk, attempt)); at != q.end()) {
      q.erase(at);
    }
    PromoteRunning(worker);
  }
}

Verdict Scheduler::FailAttempt(uint64_t chunk, uint32_t attempt, const std::string& reason,
                               Charge charge) {
  Chunk& c = chunks_[chunk];
  WorkerIndex worker = 0;
  for (const Live& l : c.live)
    if (l.attempt == attempt) worker = l.worker;
  DropLive(chunk, attempt);
  bool counts_as_failure = charge != Charge::kNone;
  if (counts_as_failure) c.failures.push_back({attempt, worker, reason, charge == Charge::kLost});
  if (charge == Charge::kTask) ++c.task_failures;
  if (charge == Charge::kLost) ++c.crashes;
  if (!c.live.empty()) return Verdict::kRetrying;  // another attempt is still running
  bool crashed_out = options_.crash_limit > 0 && c.crashes >= options_.crash_limit;
  if (c.task_failures > options_.retries || crashed_out) {
    c.state = State::kFailed;
    failed_.push_back(chunk);
    while (low_water_ < chunks_.size() && (chunks_[low_water_].state == State::kDone ||
                                           chunks_[low_water_].state == State::kFailed))
      ++low_water_;
    return Verdict::kChunkFailed;
  }
  c.state = State::kQueued;
  queue_.push_front(chunk);
  if (counts_as_failure) ++counters_.retries;
  return Verdict::kRetrying;
}

uint64_t Scheduler::LiveEnd() const {
  if (options_.window == 0) return chunks_.size();
  return std::min<uint64_t>(chunks_.size(), low_water_ + options_.window);
}

bool Scheduler::InWindow(uint64_t chunk) const {
  return options_.window == 0 || chunk < low_water_ + options_.window;
}

std::optional<uint64_t> Scheduler::PickQueued(WorkerIndex worker) {
  // Prefer a chunk whose last failure was not on this worker; with one worker, any.
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (!InWindow(*it)) break;  // the queue is ascending apart from re-queued chunks
    const Chunk& c = chunks_[*it];
    bool avoid = workers_.size() > 1 && !c.failures.empty() && c.failures.back().worker == worker;
    if (avoid) continue;
    uint64_t chunk = *it;
    queue_.erase(it);
    return chunk;
  }
  return std::nullopt;
}

Assignment Scheduler::Issue(WorkerIndex worker, uint64_t chunk, TimePoint now, bool speculative) {
  Chunk& c = chunks_[chunk];
  c.state = State::kRunning;
  uint32_t attempt = ++c.attempts_issued;
  c.live.push_back({attempt, worker, std::nullopt, false, std::nullopt});
  workers_[worker].live.emplace_back(chunk, attempt);
  now_ = now;
  PromoteRunning(worker);
  ++counters_.attempts;
  if (speculative) ++counters_.speculative;
  return {chunk, attempt, speculative};
}

std::optional<Assignment> Scheduler::PickStraggler(WorkerIndex worker, TimePoint now) {
  Micros median = median_attempt_time();
  if (median.count() <= 0) return std::nullopt;
  // Only an idle worker speculates, so real work is never delayed by it.
  if (!workers_[worker].live.empty()) return std::nullopt;
  for (uint64_t i = low_water_; i < LiveEnd(); ++i) {
    const Chunk& c = chunks_[i];
    if (c.state != State::kRunning || c.live.size() != 1) continue;
    if (c.live[0].worker == worker || !c.live[0].started) continue;
    if (now - *c.live[0].started > 2 * median) return Issue(worker, i, now, true);
  }
  return std::nullopt;
}

std::optional<Assignment> Scheduler::Next(WorkerIndex worker, TimePoint now) {
  now_ = now;
  auto it = workers_.find(worker);
  if (it == workers_.end() || Aborted() || it->second.draining) return std::nullopt;
  if (it->second.live.size() >= it->second.capacity) return std::nullopt;
  if (auto chunk = PickQueued(worker)) return Issue(worker, *chunk, now, false);
  if (options_.speculate && queue_.empty()) return PickStraggler(worker, now);
  return std::nullopt;
}

ResultOutcome Scheduler::OnResult(WorkerIndex worker, uint64_t chunk, uint32_t attempt, bool ok,
                                  const std::string& error, TimePoint now) {
  now_ = now;
  ResultOutcome out;
  if (chunk >= chunks_.size() || attempt == 0 || attempt > chunks_[chunk].attempts_issued) {
    ++counters_.unknown_results;
    out.verdict = Verdict::kUnknown;
    return out;
  }
  Chunk& c = chunks_[chunk];
  auto live = std::find_if(c.live.begin(), c.live.end(), [&](const Live& l) {
    return l.attempt == attempt && l.worker == worker;
  });
  if (live == c.live.end()) {
    ++counters_.late_duplicates;
    out.verdict = Verdict::kLateDuplicate;
    return out;
  }
  if (!ok) {
    out.verdict = FailAttempt(chunk, attempt, error, Charge::kTask);
    return out;
  }
  if (live->started) {
    Micros took = std::chrono::duration_cast<Micros>(now - *live->started);
    if (durations_.size() < kMedianSample) {
      durations_.push_back(took);
    } else {
      durations_[durations_seen_ % kMedianSample] = took;
    }
    ++durations_seen_;
  }
  DropLive(chunk, attempt);
  for (const Live& other : c.live) out.cancel.push_back({other.worker, chunk, other.attempt});
  for (const CancelOrder& o : out.cancel) DropLive(o.chunk, o.attempt);
  c.state = State::kDone;
  ++done_;
  while (low_water_ < chunks_.size() &&
         (chunks_[low_water_].state == State::kDone || chunks_[low_water_].state == State::kFailed))
    ++low_water_;
  out.verdict = Verdict::kAccepted;
  return out;
}

Micros Scheduler::median_attempt_time() const {
  if (durations_.empty()) return Micros(0);
  // Exact while the sample is small; later recomputed once per 64 new attempts, which
  // moves a median of thousands by little and keeps this off the per-chunk path.
  uint64_t fresh = durations_seen_ - median_seen_;
  if (fresh > 0 && (durations_seen_ <= 256 || fresh >= 64)) {
    std::vector<Micros> d = durations_;
    int64_t sum = 0;
    for (Micros m : d) sum += m.count();
    mean_ = Micros(sum / static_cast<int64_t>(d.size()));
    auto mid = d.begin() + static_cast<std::ptrdiff_t>(d.size() / 2);
    std::nth_element(d.begin(), mid, d.end());
    median_ = *mid;
    median_seen_ = durations_seen_;
  }
  return median_;
}

Micros Scheduler::mean_attempt_time() const {
  median_attempt_time();  // refreshes both
  return mean_;
}

std::optional<Micros> Scheduler::Limit() const {
  if (options_.timeout.count() > 0) return options_.timeout;
  if (options_.timeout_percent > 0) {
    // A relative limit needs a few finished attempts to mean anything.
    if (durations_seen_ < 3) return std::nullopt;
    auto base = std::max(median_attempt_time(), Micros(1000));
    return Micros(
        static_cast<int64_t>(static_cast<double>(base.count()) * options_.timeout_percent / 100.0));
  }
  return std::nullopt;
}

std::optional<Micros> Scheduler::LimitFor(uint32_t attempt) const {
  auto limit = Limit();
  if (!limit || options_.timeout.count() > 0) return limit;
  uint32_t doublings = std::min<uint32_t>(attempt > 0 ? attempt - 1 : 0, 10);
  return *limit * (int64_t{1} << doublings);
}

std::optional<TimePoint> Scheduler::NextDeadline() const {
  auto limit = Limit();
  if (!limit) return std::nullopt;
  std::optional<TimePoint> earliest;
  for (uint64_t i = low_water_; i < LiveEnd(); ++i)
    for (const Live& l : chunks_[i].live) {
      auto from = DeadlineStart(l);
      if (!from) continue;
      TimePoint deadline = *from + *LimitFor(l.attempt);
      if (!earliest || deadline < *earliest) earliest = deadline;
    }
  return earliest;
}

std::vector<CancelOrder> Scheduler::ExpireAttempts(TimePoint now) {
  now_ = now;
  std::vector<CancelOrder> expired;
  if (!Limit()) return expired;
  for (uint64_t i = low_water_; i < LiveEnd(); ++i) {
    for (const Live& l : chunks_[i].live) {
      auto from = DeadlineStart(l);
      if (from && now - *from >= *LimitFor(l.attempt)) expired.push_back({l.worker, i, l.attempt});
    }
  }
  // Highest chunk first: each re-queued chunk goes to the front of the queue, so they end
  // up in chunk order (as in RemoveWorker).
  for (auto o = expired.rbegin(); o != expired.rend(); ++o) {
    ++counters_.timeouts;
    auto secs = std::chrono::duration<double>(*LimitFor(o->attempt)).count();
    char buf[64];
    std::snprintf(buf, sizeof buf, "timed out after %.3gs", secs);
    FailAttempt(o->chunk, o->attempt, buf, Charge::kTask);  // a timeout is the task's
  }
  return expired;
}

}  // namespace fanout
