// The Dispatcher (dispatch_policy.h) over the real Scheduler on a fake clock: a worker not
// yet joined counts with its slots, an idle worker steals attempts waiting (not started)
// elsewhere with exactly-once kept, and the prefetch depth follows measured durations.
#include "engine/dispatch_policy.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <vector>

namespace fanout {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// A fake clock: milliseconds since an arbitrary epoch.
TimePoint At(int64_t ms) { return TimePoint{} + milliseconds(1000000 + ms); }

// Everything `worker` (with `slots`) gets in one dispatch round, given the idle slots of the
// other workers (joined or not).
std::vector<Dispatch> Round(Dispatcher& d, WorkerIndex worker, uint32_t slots, int64_t ms,
                            uint64_t idle_elsewhere) {
  std::vector<Dispatch> out;
  while (auto x =
             d.Next(worker, slots, At(ms), [&] { return Elsewhere{.idle = idle_elsewhere}; })) {
    out.push_back(*x);
  }
  return out;
}

TEST(DispatchPolicy, FirstWorkerLeavesTheSlotsOfWorkersNotJoinedYet) {
  // 10 chunks, 2 workers x 5 slots: the first to join takes 5, not 10 (its slots plus a
  // prefetch), because the one not joined yet counts with its 5 slots.
  Scheduler s(10, {});
  Dispatcher d(s);
  s.AddWorker(0, 5, 5 + 64);
  EXPECT_EQ(Round(d, 0, 5, 0, /*idle_elsewhere=*/5).size(), 5u);
  s.AddWorker(1, 5, 5 + 64);
  EXPECT_EQ(Round(d, 1, 5, 10, 0).size(), 5u);  // the late joiner gets work in its first round
}

TEST(DispatchPolicy, PrefetchesOnlyWhenMoreWorkThanIdleSlotsElsewhere) {
  Scheduler s(20, {});
  Dispatcher d(s);
  s.AddWorker(0, 2, 2 + 64);
  // Nothing measured: a prefetch of `slots` beyond the running ones.
  EXPECT_EQ(Round(d, 0, 2, 0, 0).size(), 4u);
  EXPECT_EQ(d.PrefetchDepth(2), 2u);
}

TEST(DispatchPolicy, OtherJobsAttemptsTakeTheWorkersCredits) {
  // Two jobs (two Schedulers) on one worker with 2 slots: together they hold no more than
  // one job alone would (2 running + a prefetch of 2), not that much each.
  Scheduler first(20, {}), second(20, {});
  Dispatcher d1(first), d2(second);
  first.AddWorker(0, 2, 2 + 64);
  second.AddWorker(0, 2, 2 + 64);
  auto next = [&](Dispatcher& d, Scheduler& mine, Scheduler& other) {
    return d.Next(
                0, 2, At(0), [] { return Elsewhere{}; }, other.live_attempts(0))
               .has_value() &&
           mine.live_attempts(0) > 0;
  };
  EXPECT_TRUE(next(d1, first, second));
  EXPECT_TRUE(next(d2, second, first));
  EXPECT_TRUE(next(d1, first, second));
  EXPECT_TRUE(next(d2, second, first));
  EXPECT_FALSE(next(d1, first, second));
  EXPECT_FALSE(next(d2, second, first));
  EXPECT_EQ(first.live_attempts(0) + second.live_attempts(0), 4u);
}

TEST(DispatchPolicy, LateJoinerStealsWaitingAttemptsInItsFirstRound) {
  // 4 chunks, one worker with 1 slot holds them all (1 running + 3 prefetched, as with a
  // deep prefetch); a worker joining later finds the queue empty and takes back the last
  // one sent.
  Scheduler s(4, {});
  Dispatcher d(s, DispatchOptions{.max_prefetch = 3});
  s.AddWorker(0, 1, 4, /*reports_starts=*/true);
  std::vector<Assignment> held;
  while (auto a = s.Next(0, At(0))) held.push_back(*a);
  ASSERT_EQ(held.size(), 4u);
  s.MarkStarted(0, held[0].chunk, held[0].attempt, At(1));
  s.AddWorker(1, 1, 4, true);
  auto round = Round(d, 1, 1, 5, 0);
  ASSERT_EQ(round.size(), 1u);  // fills its idle slot, no more (no ping-pong)
  ASSERT_TRUE(round[0].stolen_from.has_value());
  EXPECT_EQ(round[0].stolen_from->worker, 0u);
  EXPECT_EQ(round[0].stolen_from->chunk, 3u);  // the most recently sent: the last to run
  EXPECT_EQ(round[0].stolen_from->attempt, 1u);
  EXPECT_EQ(round[0].assignment.chunk, 3u);
  EXPECT_EQ(round[0].assignment.attempt, 1u);  // it never ran: the same attempt, moved
  EXPECT_EQ(s.live_attempts(0), 3u);
  EXPECT_EQ(s.live_attempts(1), 1u);
  EXPECT_EQ(d.steals(), 1u);
  // A third worker steals the next waiting one; the running one (chunk 0) is never taken.
  s.AddWorker(2, 1, 4, true);
  auto third = Round(d, 2, 1, 6, 0);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].assignment.chunk, 2u);
  s.AddWorker(3, 1, 4, true);
  auto fourth = Round(d, 3, 1, 7, 0);
  ASSERT_EQ(fourth.size(), 1u);
  EXPECT_EQ(fourth[0].assignment.chunk, 1u);
  s.AddWorker(4, 1, 4, true);
  EXPECT_TRUE(Round(d, 4, 1, 8, 0).empty());  // only chunk 0 is left, and it runs
}

TEST(DispatchPolicy, StolenAttemptStaysExactlyOnceWhenTheOldWorkerRanItAnyway) {
  Scheduler s(2, {});
  Dispatcher d(s);
  s.AddWorker(0, 1, 2, true);
  auto a0 = s.Next(0, At(0));
  auto a1 = s.Next(0, At(0));
  ASSERT_TRUE(a0 && a1);
  s.AddWorker(1, 1, 2, true);
  auto round = Round(d, 1, 1, 1, 0);
  ASSERT_EQ(round.size(), 1u);
  EXPECT_EQ(round[0].assignment.chunk, a1->chunk);
  // The CANCEL crossed a STARTED and a RESULT of the old attempt: both are ignored.
  s.MarkStarted(0, a1->chunk, a1->attempt, At(2));
  EXPECT_EQ(s.OnResult(0, a1->chunk, a1->attempt, true, "", At(3)).verdict,
            Verdict::kLateDuplicate);
  EXPECT_EQ(s.OnResult(1, a1->chunk, round[0].assignment.attempt, true, "", At(4)).verdict,
            Verdict::kAccepted);
  EXPECT_EQ(s.OnResult(0, a0->chunk, a0->attempt, true, "", At(5)).verdict, Verdict::kAccepted);
  EXPECT_TRUE(s.Finished());
  EXPECT_EQ(s.chunks_done(), 2u);
}

TEST(DispatchPolicy, NeverStealsAnAttemptReportedStarted) {
  // 3 slots, 4 attempts: position 3 waits, but the worker said it started it (a quick one
  // run inline): nothing to steal.
  Scheduler s(4, {});
  Dispatcher d(s);
  s.AddWorker(0, 3, 6, true);
  std::vector<Assignment> held;
  for (int i = 0; i < 4; ++i) held.push_back(*s.Next(0, At(0)));
  s.MarkStarted(0, held[3].chunk, held[3].attempt, At(1));
  s.AddWorker(1, 1, 2, true);
  EXPECT_TRUE(Round(d, 1, 1, 2, 0).empty());
  EXPECT_EQ(s.waiting_attempts(0), 0u);
}

TEST(DispatchPolicy, StealsFromWorkerWithoutStartReportsOnlyBehindItsSlots) {
  Scheduler s(3, {});
  Dispatcher d(s);
  s.AddWorker(0, 2, 4);  // does not report starts: its oldest 2 run
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s.Next(0, At(0)));
  s.AddWorker(1, 1, 2);
  auto round = Round(d, 1, 1, 1, 0);
  ASSERT_EQ(round.size(), 1u);
  EXPECT_EQ(round[0].assignment.chunk, 2u);
}

TEST(DispatchPolicy, PrefetchDepthFollowsMeasuredDurations) {
  // 1 ms chunks: 4 per slot cover the 4 ms pipeline; 100 us chunks: 40; 10 ms: just slots;
  // 1 us: 4000 a slot, the most (max_prefetch).
  constexpr uint32_t kMost = DispatchOptions{}.max_prefetch;
  for (auto [took, want] : std::vector<std::pair<int64_t, uint32_t>>{
           {1000, 8}, {100, 80}, {10000, 2}, {2000, 4}, {1, kMost}}) {
    Scheduler s(100, {});
    Dispatcher d(s);
    s.AddWorker(0, 2, 2 + 64, true);
    auto a = s.Next(0, At(0));
    s.MarkStarted(0, a->chunk, a->attempt, At(0));
    s.OnResult(0, a->chunk, a->attempt, true, "",
               TimePoint{} + milliseconds(1000000) + microseconds(took));
    EXPECT_EQ(d.PrefetchDepth(2), want) << took << " us";
    EXPECT_EQ(d.Batching(), took < 500) << took << " us";
    EXPECT_EQ(d.Stealing(), took >= 500) << took << " us";
  }
}

TEST(DispatchPolicy, ShortChunksRefillAWorkerInHalvesOfItsDepth) {
  // 100 us chunks (batched): one slot, a depth of 40. A result or two freeing a credit or
  // two does not start a round (its message would carry one or two attempts); half the
  // depth free does. An idle slot always does, and so does any free credit while chunks
  // are long (not batched).
  Scheduler s(1000, {});
  Dispatcher d(s);
  s.AddWorker(0, 1, 1 + 1024, true);
  auto first = s.Next(0, At(0));
  s.MarkStarted(0, first->chunk, first->attempt, At(0));
  s.OnResult(0, first->chunk, first->attempt, true, "", At(0) + microseconds(100));
  ASSERT_TRUE(d.Batching());
  ASSERT_EQ(d.PrefetchDepth(1), 40u);
  EXPECT_TRUE(d.Refill(0, 1));  // idle
  std::vector<Dispatch> got = Round(d, 0, 1, 1, 0);
  ASSERT_EQ(got.size(), 41u);  // its slot and the depth
  EXPECT_FALSE(d.Refill(0, 1));
  auto finish = [&](const Assignment& a, int64_t i) {  // one after the other, 100 us each
    s.MarkStarted(0, a.chunk, a.attempt, At(1) + microseconds(100 * i));
    s.OnResult(0, a.chunk, a.attempt, true, "", At(1) + microseconds(100 * (i + 1)));
  };
  for (size_t i = 0; i < 19; ++i) {
    finish(got[i].assignment, static_cast<int64_t>(i));
    EXPECT_FALSE(d.Refill(0, 1)) << i + 1 << " credits free";
  }
  finish(got[19].assignment, 19);
  EXPECT_TRUE(d.Refill(0, 1)) << "20 credits free";
  EXPECT_EQ(Round(d, 0, 1, 2, 0).size(), 20u);
  EXPECT_FALSE(d.Refill(0, 1, /*others=*/0));

  // Long chunks: every free credit is refilled at once.
  Scheduler slow(10, {});
  Dispatcher ds(slow);
  slow.AddWorker(0, 2, 2 + 64, true);
  auto a = slow.Next(0, At(0));
  slow.MarkStarted(0, a->chunk, a->attempt, At(0));
  slow.OnResult(0, a->chunk, a->attempt, true, "", At(10));
  ASSERT_FALSE(ds.Batching());
  std::vector<Dispatch> held = Round(ds, 0, 2, 10, 0);
  ASSERT_EQ(held.size(), 4u);  // 2 slots, 2 queued
  slow.OnResult(0, held[0].assignment.chunk, held[0].assignment.attempt, true, "", At(20));
  EXPECT_TRUE(ds.Refill(0, 2));
}

TEST(DispatchPolicy, AWorkerQueuesOnlyItsShareOfShortChunks) {
  // The range product through a warm server: ten 60 us chunks on two workers of one slot,
  // whose results come back between two turns of the event loop. Once one is measured the
  // prefetch is deep (short chunks), and short chunks are not stolen back: without the
  // others' slots the first worker filled took five of the six left, the other one.
  for (bool shares : {true, false}) {
    Scheduler s(10, {});
    Dispatcher d(s);
    for (WorkerIndex w : {0u, 1u}) s.AddWorker(w, 1, 1 + DispatchOptions{}.max_prefetch, true);
    std::map<WorkerIndex, std::vector<Assignment>> held;
    auto fill = [&](WorkerIndex w, int64_t ms) {
      size_t given = 0;
      WorkerIndex other = 1 - w;
      auto elsewhere = [&] {
        uint32_t live = s.live_attempts(other);
        return Elsewhere{.idle = live < 1 ? 1u - live : 0u,
                         .slots = shares ? 1u : 0u,
                         .live = shares ? live : 0u};
      };
      while (auto x = d.Next(w, 1, At(ms), elsewhere)) {
        held[w].push_back(x->assignment);
        ++given;
      }
      return given;
    };
    // Nothing measured: each runs one and queues one.
    ASSERT_EQ(fill(0, 0), 2u);
    ASSERT_EQ(fill(1, 0), 2u);
    // All four come back (60 us each) before the next turn.
    for (auto& [w, attempts] : held) {
      for (const Assignment& a : attempts) {
        s.MarkStarted(w, a.chunk, a.attempt, At(0));
        s.OnResult(w, a.chunk, a.attempt, true, "", At(0) + microseconds(60));
      }
      attempts.clear();
    }
    size_t first = fill(0, 1), second = fill(1, 1);
    if (shares) {
      EXPECT_EQ(first, 3u);
      EXPECT_EQ(second, 3u);
    } else {
      EXPECT_EQ(first, 5u);  // all but one for the other's idle slot
      EXPECT_EQ(second, 1u);
    }
    EXPECT_EQ(s.queued(), 0u);
  }
}

// Runs 100 attempts on worker 0 of `s`, one a second, attempt i taking took_us(i).
void RunHundred(Scheduler& s, const std::function<int64_t(int)>& took_us) {
  s.AddWorker(0, 1, 1 + DispatchOptions{}.max_prefetch, true);
  for (int i = 0; i < 100; ++i) {
    auto a = s.Next(0, At(i * 1000));
    ASSERT_TRUE(a);
    s.OnResult(0, a->chunk, a->attempt, true, "", At(i * 1000) + microseconds(took_us(i)));
  }
}

TEST(DispatchPolicy, AHeavyTailStealsThoughTheMedianIsQuick) {
  // 99 attempts of 1 us and one of 100 ms: the median is 1 us, so the queue is deep and
  // batched, and a queue of 1024 such attempts holds about ten slow ones. The mean (1 ms)
  // turns stealing on: at the end an idle worker takes them back.
  Scheduler s(200, {});
  Dispatcher d(s);
  RunHundred(s, [](int i) { return i == 50 ? 100000 : 1; });
  EXPECT_EQ(d.median(), Micros(1));
  EXPECT_EQ(d.PrefetchDepth(1), DispatchOptions{}.max_prefetch);
  EXPECT_TRUE(d.Batching());
  EXPECT_TRUE(d.Stealing());
}

TEST(DispatchPolicy, QuickAttemptsWithoutATailDoNotSteal) {
  Scheduler s(200, {});
  Dispatcher d(s);
  RunHundred(s, [](int i) { return i % 2 ? 1 : 3; });
  EXPECT_FALSE(d.Stealing());
}

TEST(DispatchPolicy, AttemptsFasterThanTheClockStillCountAsMeasured) {
  // A first slow attempt (1 ms), then many finished within the same clock reading (0 us, as
  // when one poll wake-up handles several results): the median drops to 0 and the job must
  // go on to batch and prefetch deeply, not keep the first reading.
  Scheduler s(4000, {});
  Dispatcher d(s);
  s.AddWorker(0, 1, 1 + 64, true);
  auto finish = [&](int64_t start_us, int64_t took_us) {
    TimePoint start = At(0) + microseconds(start_us);
    auto a = s.Next(0, start);
    ASSERT_TRUE(a);
    s.OnResult(0, a->chunk, a->attempt, true, "", start + microseconds(took_us));
  };
  finish(0, 1000);
  EXPECT_FALSE(d.Batching());
  for (int i = 0; i < 100; ++i) finish(2000 + i, 0);
  EXPECT_TRUE(d.Batching());
  EXPECT_EQ(d.PrefetchDepth(1), DispatchOptions{}.max_prefetch);
}

TEST(DispatchPolicy, AWorkerWithMoreSlotsThanTheMaximumPrefetchGetsTheMaximum) {
  // 200 slots against a maximum prefetch of 64: the bounds of a clamp would cross.
  Scheduler s(4000, {});
  Dispatcher d(s, DispatchOptions{.max_prefetch = 64});
  s.AddWorker(0, 200, 200 + 64, true);
  for (int i = 0; i < 8; ++i) {
    auto a = s.Next(0, At(i));
    ASSERT_TRUE(a);
    s.OnResult(0, a->chunk, a->attempt, true, "", At(i) + microseconds(10));
  }
  EXPECT_EQ(d.PrefetchDepth(200), 64u);
  EXPECT_EQ(d.PrefetchDepth(64), 64u);
  EXPECT_EQ(d.PrefetchDepth(1), 64u);
}

TEST(DispatchPolicy, ResumedJobIsUnmeasuredNotInfinitelyFast) {
  // Chunks done by an earlier run measured nothing: no deep prefetch, no batching.
  Scheduler s(24, {});
  Dispatcher d(s);
  for (uint64_t c = 0; c < 8; ++c) s.MarkDone(c);
  EXPECT_EQ(d.PrefetchDepth(1), 1u);
  EXPECT_FALSE(d.Batching());
  EXPECT_TRUE(d.Stealing());
  s.AddWorker(0, 1, 65);
  EXPECT_EQ(Round(d, 0, 1, 0, /*idle_elsewhere=*/3).size(), 2u);
}

}  // namespace
}  // namespace fanout
