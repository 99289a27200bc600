// The Scheduler, driven without sockets, processes or clocks: time is passed in, so every
// decision about attempts, retries, timeouts, speculation and lost workers is checked
// exactly (STYLE.md §1). A randomized simulation at the end checks the invariants of
// scheduler.h under a mix of all of them.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

namespace fanout {
namespace {

using std::chrono::milliseconds;
using Ids = std::vector<uint64_t>;

class SchedulerTest : public ::testing::Test {
 protected:
  static TimePoint At(int64_t ms) { return TimePoint{} + milliseconds(1000000 + ms); }
  // Options with `retries` task retries (the default is none).
  static SchedulerOptions Retrying(uint32_t retries = 2) {
    SchedulerOptions o;
    o.retries = retries;
    return o;
  }
  // Takes every assignment `worker` can get now.
  static std::vector<Assignment> Drain(Scheduler& s, WorkerIndex worker, int64_t ms) {
    std::vector<Assignment> out;
    while (auto a = s.Next(worker, At(ms))) out.push_back(*a);
    return out;
  }
  static Ids Chunks(const std::vector<Assignment>& as) {
    Ids out;
    for (const auto& a : as) out.push_back(a.chunk);
    return out;
  }
  static Verdict Ok(Scheduler& s, WorkerIndex w, const Assignment& a, int64_t ms) {
    return s.OnResult(w, a.chunk, a.attempt, true, "", At(ms)).verdict;
  }
  static Verdict Fail(Scheduler& s, WorkerIndex w, const Assignment& a, int64_t ms,
                      const std::string& why = "boom") {
    return s.OnResult(w, a.chunk, a.attempt, false, why, At(ms)).verdict;
  }
};

// ---- dispatch and capacity ------------------------------------------------------------

TEST_F(SchedulerTest, DispatchesInChunkOrderAsFirstAttempts) {
  Scheduler s(5, {});
  s.AddWorker(0, 5, 5);
  auto as = Drain(s, 0, 0);
  EXPECT_EQ(Chunks(as), (Ids{0, 1, 2, 3, 4}));
  for (const auto& a : as) {
    EXPECT_EQ(a.attempt, 1u);
    EXPECT_FALSE(a.speculative);
  }
  EXPECT_EQ(s.counters().attempts, 5u);
  EXPECT_FALSE(s.Next(0, At(0))) << "nothing left to dispatch";
}

TEST_F(SchedulerTest, CapacityBoundsLiveAttemptsAndAResultFreesOneCredit) {
  Scheduler s(10, {});
  s.AddWorker(0, 2, 4);
  EXPECT_EQ(Chunks(Drain(s, 0, 0)), (Ids{0, 1, 2, 3}));
  EXPECT_EQ(s.live_attempts(0), 4u);
  EXPECT_EQ(s.OnResult(0, 2, 1, true, "", At(5)).verdict, Verdict::kAccepted);
  EXPECT_EQ(s.live_attempts(0), 3u);
  EXPECT_EQ(Chunks(Drain(s, 0, 5)), (Ids{4}));
  EXPECT_EQ(s.live_attempts(0), 4u);
}

TEST_F(SchedulerTest, CapacityIsAtLeastTheSlotsAndSlotsAtLeastOne) {
  Scheduler s(10, {});
  s.AddWorker(0, 0, 0);
  EXPECT_EQ(Drain(s, 0, 0).size(), 1u);
  s.AddWorker(1, 3, 1);
  EXPECT_EQ(Drain(s, 1, 0).size(), 3u);
}

TEST_F(SchedulerTest, WorkersShareTheQueueAndEachChunkIsIssuedOnce) {
  Scheduler s(6, {});
  s.AddWorker(0, 1, 2);
  s.AddWorker(1, 1, 2);
  s.AddWorker(2, 1, 2);
  std::vector<Assignment> all;
  for (int round = 0; round < 2; ++round)
    for (WorkerIndex w = 0; w < 3; ++w) all.push_back(*s.Next(w, At(0)));
  EXPECT_EQ(Chunks(all), (Ids{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(s.worker_count(), 3u);
  EXPECT_TRUE(s.HasWorker(2));
  EXPECT_FALSE(s.HasWorker(3));
}

TEST_F(SchedulerTest, UnknownWorkerGetsNothing) {
  Scheduler s(3, {});
  EXPECT_FALSE(s.Next(7, At(0)));
  EXPECT_EQ(s.live_attempts(7), 0u);
  EXPECT_TRUE(s.RemoveWorker(7, "never joined", At(0)).empty());
  EXPECT_EQ(s.counters().workers_lost, 0u);
}

TEST_F(SchedulerTest, NoChunksMeansFinishedAtOnce) {
  Scheduler s(0, {});
  s.AddWorker(0, 1, 1);
  EXPECT_TRUE(s.Finished());
  EXPECT_FALSE(s.Aborted());
  EXPECT_FALSE(s.Next(0, At(0)));
  EXPECT_FALSE(s.NextDeadline());
}

// ---- results --------------------------------------------------------------------------

TEST_F(SchedulerTest, FinishesWhenEveryChunkIsAccepted) {
  Scheduler s(3, {});
  s.AddWorker(0, 3, 3);
  for (const auto& a : Drain(s, 0, 0)) {
    EXPECT_FALSE(s.Finished());
    ResultOutcome o = s.OnResult(0, a.chunk, a.attempt, true, "", At(5));
    EXPECT_EQ(o.verdict, Verdict::kAccepted);
    EXPECT_TRUE(o.cancel.empty());
  }
  EXPECT_TRUE(s.Finished());
  EXPECT_FALSE(s.Aborted());
  EXPECT_EQ(s.chunks_done(), 3u);
  EXPECT_TRUE(s.failed_chunks().empty());
  EXPECT_EQ(s.counters().attempts, 3u);
  EXPECT_EQ(s.live_attempts(0), 0u);
}

TEST_F(SchedulerTest, ResultsMayArriveInAnyOrder) {
  Scheduler s(4, {});
  s.AddWorker(0, 4, 4);
  auto as = Drain(s, 0, 0);
  for (int i : {3, 1, 0, 2}) EXPECT_EQ(Ok(s, 0, as[i], 10), Verdict::kAccepted);
  EXPECT_TRUE(s.Finished());
}

TEST_F(SchedulerTest, ResultsForChunksOrAttemptsNeverIssuedAreUnknown) {
  Scheduler s(2, {});
  s.AddWorker(0, 1, 1);
  s.Next(0, At(0));
  EXPECT_EQ(s.OnResult(0, 99, 1, true, "", At(1)).verdict, Verdict::kUnknown);
  EXPECT_EQ(s.OnResult(0, 2, 1, true, "", At(1)).verdict, Verdict::kUnknown);
  EXPECT_EQ(s.OnResult(0, UINT64_MAX, 1, true, "", At(1)).verdict, Verdict::kUnknown);
  EXPECT_EQ(s.OnResult(0, 0, 7, true, "", At(1)).verdict, Verdict::kUnknown);
  EXPECT_EQ(s.OnResult(0, 0, 0, true, "", At(1)).verdict, Verdict::kUnknown);
  EXPECT_EQ(s.OnResult(0, 1, 1, true, "", At(1)).verdict, Verdict::kUnknown)
      << "chunk 1 was never issued";
  EXPECT_EQ(s.counters().unknown_results, 6u);
  EXPECT_EQ(s.counters().late_duplicates, 0u);
  // None of that disturbed the real attempt.
  EXPECT_EQ(s.OnResult(0, 0, 1, true, "", At(2)).verdict, Verdict::kAccepted);
}

TEST_F(SchedulerTest, ResultFromAWorkerThatDoesNotHoldTheAttemptIsNotAccepted) {
  Scheduler s(1, {});
  s.AddWorker(0, 1, 1);
  s.AddWorker(1, 1, 1);
  ASSERT_TRUE(s.Next(0, At(0)));
  EXPECT_EQ(s.OnResult(1, 0, 1, true, "", At(1)).verdict, Verdict::kLateDuplicate);
  EXPECT_EQ(s.chunks_done(), 0u);
  EXPECT_EQ(s.OnResult(0, 0, 1, true, "", At(1)).verdict, Verdict::kAccepted);
}

TEST_F(SchedulerTest, SecondResultForADoneChunkIsALateDuplicate) {
  Scheduler s(1, {});
  s.AddWorker(0, 1, 1);
  auto a = s.Next(0, At(0));
  EXPECT_EQ(Ok(s, 0, *a, 1), Verdict::kAccepted);
  EXPECT_EQ(Ok(s, 0, *a, 2), Verdict::kLateDuplicate);
  EXPECT_EQ(Fail(s, 0, *a, 3), Verdict::kLateDuplicate);
  EXPECT_EQ(s.chunks_done(), 1u);
  EXPECT_EQ(s.counters().late_duplicates, 2u);
  EXPECT_TRUE(s.failures_of(0).empty());
}

// ---- failures and retries -------------------------------------------------------------

TEST_F(SchedulerTest, FailedAttemptIsRetriedThenTheChunkFails) {
  SchedulerOptions o;
  o.retries = 2;
  Scheduler s(1, o);
  s.AddWorker(0, 1, 1);
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    auto a = s.Next(0, At(attempt));
    ASSERT_TRUE(a);
    EXPECT_EQ(a->attempt, attempt);
    auto verdict = Fail(s, 0, *a, attempt, "boom " + std::to_string(attempt));
    EXPECT_EQ(verdict, attempt < 3 ? Verdict::kRetrying : Verdict::kChunkFailed);
  }
  EXPECT_TRUE(s.Aborted());
  EXPECT_TRUE(s.Finished());
  EXPECT_EQ(s.failed_chunks(), (Ids{0}));
  const auto& failures = s.failures_of(0);
  ASSERT_EQ(failures.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(failures[i].attempt, i + 1);
    EXPECT_EQ(failures[i].worker, 0u);
    EXPECT_EQ(failures[i].reason, "boom " + std::to_string(i + 1));
  }
  EXPECT_EQ(s.counters().retries, 2u);
  EXPECT_EQ(s.counters().attempts, 3u);
  EXPECT_FALSE(s.Next(0, At(10)));
}

TEST_F(SchedulerTest, ZeroRetriesFailsOnTheFirstFailure) {
  SchedulerOptions o;
  o.retries = 0;
  Scheduler s(2, o);
  s.AddWorker(0, 1, 1);
  auto a = s.Next(0, At(0));
  EXPECT_EQ(Fail(s, 0, *a, 1), Verdict::kChunkFailed);
  EXPECT_EQ(s.counters().retries, 0u);
  EXPECT_TRUE(s.Aborted());
  EXPECT_FALSE(s.Finished());
}

TEST_F(SchedulerTest, AbortStopsDispatchButStillAcceptsOutstandingResults) {
  SchedulerOptions o;
  o.retries = 0;
  Scheduler s(5, o);
  s.AddWorker(0, 2, 2);
  auto as = Drain(s, 0, 0);
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(Fail(s, 0, as[0], 1), Verdict::kChunkFailed);
  EXPECT_TRUE(s.Aborted());
  EXPECT_FALSE(s.Next(0, At(1))) << "no new work once aborted";
  EXPECT_EQ(Ok(s, 0, as[1], 2), Verdict::kAccepted);
  EXPECT_EQ(s.chunks_done(), 1u);
  EXPECT_FALSE(s.Finished());
}

TEST_F(SchedulerTest, KeepGoingFinishesDespiteFailedChunks) {
  SchedulerOptions o;
  o.retries = 1;
  o.keep_going = true;
  Scheduler s(4, o);
  s.AddWorker(0, 1, 1);
  // Chunks 1 and 3 fail every attempt; the others succeed.
  for (int guard = 0; guard < 20 && !s.Finished(); ++guard) {
    auto a = s.Next(0, At(guard));
    ASSERT_TRUE(a) << "stalled";
    if (a->chunk % 2)
      Fail(s, 0, *a, guard);
    else
      Ok(s, 0, *a, guard);
  }
  EXPECT_TRUE(s.Finished());
  EXPECT_FALSE(s.Aborted());
  EXPECT_EQ(s.chunks_done(), 2u);
  EXPECT_EQ(s.failed_chunks(), (Ids{1, 3}));
  EXPECT_EQ(s.failures_of(1).size(), 2u);
  EXPECT_EQ(s.counters().attempts, 6u);
}

TEST_F(SchedulerTest, RetryGoesToTheFrontOfTheQueue) {
  Scheduler s(5, Retrying());
  s.AddWorker(0, 1, 1);
  auto a = s.Next(0, At(0));
  Fail(s, 0, *a, 1);
  auto retry = s.Next(0, At(1));  // one worker: the failed chunk again, before chunk 1
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->chunk, 0u);
  EXPECT_EQ(retry->attempt, 2u);
}

TEST_F(SchedulerTest, RetryPrefersAnotherWorker) {
  Scheduler s(3, Retrying());
  s.AddWorker(0, 1, 1);
  s.AddWorker(1, 1, 1);
  auto a0 = s.Next(0, At(0));
  auto a1 = s.Next(1, At(0));
  ASSERT_TRUE(a0 && a1);
  Fail(s, 0, *a0, 1, "flaky");
  // Worker 0 skips the chunk that just failed on it and takes the next one.
  auto next0 = s.Next(0, At(2));
  ASSERT_TRUE(next0);
  EXPECT_EQ(next0->chunk, 2u);
  Ok(s, 1, *a1, 3);
  auto retry = s.Next(1, At(3));
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->chunk, a0->chunk);
  EXPECT_EQ(retry->attempt, 2u);
}

TEST_F(SchedulerTest, AvoidedChunkWaitsForAnotherWorkerUntilItIsTheOnlyOne) {
  Scheduler s(1, Retrying());
  s.AddWorker(0, 1, 1);
  s.AddWorker(1, 1, 1);
  auto a = s.Next(0, At(0));
  Fail(s, 0, *a, 1);
  EXPECT_FALSE(s.Next(0, At(2))) << "the only queued chunk just failed here";
  s.RemoveWorker(1, "gone", At(3));
  auto retry = s.Next(0, At(3));
  ASSERT_TRUE(retry) << "with one worker left, it takes the chunk anyway";
  EXPECT_EQ(retry->attempt, 2u);
}

TEST_F(SchedulerTest, OnlyTheLastFailureIsAvoided) {
  SchedulerOptions o;
  o.retries = 5;
  Scheduler s(1, o);
  s.AddWorker(0, 1, 1);
  s.AddWorker(1, 1, 1);
  auto a = s.Next(0, At(0));
  Fail(s, 0, *a, 1);
  auto b = s.Next(1, At(1));
  ASSERT_TRUE(b);
  Fail(s, 1, *b, 2);
  auto c = s.Next(0, At(2));
  ASSERT_TRUE(c) << "worker 0 failed earlier, but worker 1 failed last";
  EXPECT_EQ(c->attempt, 3u);
}

// ---- lost workers ---------------------------------------------------------------------

TEST_F(SchedulerTest, LostWorkerRequeuesItsChunksAtTheFrontInChunkOrder) {
  Scheduler s(8, {});
  s.AddWorker(0, 2, 4);
  s.AddWorker(1, 1, 1);
  EXPECT_EQ(Chunks(Drain(s, 0, 0)), (Ids{0, 1, 2, 3}));
  EXPECT_EQ(Chunks(Drain(s, 1, 0)), (Ids{4}));
  auto failed = s.RemoveWorker(0, "killed", At(5));
  EXPECT_TRUE(failed.empty());
  EXPECT_EQ(s.counters().workers_lost, 1u);
  EXPECT_FALSE(s.HasWorker(0));
  EXPECT_EQ(s.live_attempts(0), 0u);
  // The two running attempts (the oldest of its two slots) count as failed; the two
  // prefetched ones never started and are re-queued without penalty.
  ASSERT_EQ(s.failures_of(0).size(), 1u);
  EXPECT_EQ(s.failures_of(0)[0].reason, "killed");
  EXPECT_EQ(s.failures_of(0)[0].worker, 0u);
  EXPECT_EQ(s.failures_of(1).size(), 1u);
  EXPECT_TRUE(s.failures_of(2).empty());
  EXPECT_TRUE(s.failures_of(3).empty());
  EXPECT_EQ(s.counters().retries, 2u);
  // Back at the front, in chunk order, then the rest of the queue.
  s.AddWorker(2, 8, 8);
  auto next = Drain(s, 2, 6);
  EXPECT_EQ(Chunks(next), (Ids{0, 1, 2, 3, 5, 6, 7}));
  EXPECT_EQ(next[0].attempt, 2u);
  EXPECT_EQ(next[3].attempt, 2u);
  EXPECT_EQ(next[4].attempt, 1u);
}

TEST_F(SchedulerTest, RunningAttemptsAreTheOldestStillLive) {
  Scheduler s(3, {});
  s.AddWorker(0, 1, 3);
  auto as = Drain(s, 0, 0);
  ASSERT_EQ(as.size(), 3u);
  Ok(s, 0, as[0], 1);  // chunk 1 moves into the running slot
  s.RemoveWorker(0, "lost", At(2));
  EXPECT_EQ(s.failures_of(1).size(), 1u);
  EXPECT_TRUE(s.failures_of(2).empty());
}

TEST_F(SchedulerTest, AWorkerThatReportsStartsIsChargedOnlyForTheAttemptsItStarted) {
  // Four slots and four prefetched: it said it started only chunk 0 when it died.
  Scheduler s(8, {});
  s.AddWorker(0, 4, 8, /*reports_starts=*/true);
  EXPECT_EQ(Chunks(Drain(s, 0, 0)), (Ids{0, 1, 2, 3, 4, 5, 6, 7}));
  s.MarkStarted(0, 0, 1, At(1));
  s.RemoveWorker(0, "killed", At(5));
  ASSERT_EQ(s.failures_of(0).size(), 1u);
  EXPECT_EQ(s.failures_of(0)[0].reason, "killed");
  for (uint64_t c = 1; c < 8; ++c) EXPECT_TRUE(s.failures_of(c).empty()) << c;
  EXPECT_EQ(s.counters().retries, 1u);
  // All back in the queue in chunk order; only chunk 0 used an attempt number that failed.
  s.AddWorker(1, 8, 8, true);
  auto next = Drain(s, 1, 6);
  EXPECT_EQ(Chunks(next), (Ids{0, 1, 2, 3, 4, 5, 6, 7}));
}

// Graceful drain (PROTOCOL.md, LEAVE): handed-back attempts and a goodbye cost nothing.
TEST_F(SchedulerTest, HandedBackAttemptsAndALeavingWorkerCostNothing) {
  Scheduler s(8, {});  // no retries: any charge would fail a chunk
  s.AddWorker(0, 2, 4, /*reports_starts=*/true);
  EXPECT_EQ(Chunks(Drain(s, 0, 0)), (Ids{0, 1, 2, 3}));
  s.MarkStarted(0, 0, 1, At(1));
  s.MarkStarted(0, 1, 1, At(1));
  s.HandBack(0, {{2, 1}, {3, 1}, {5, 1}});  // 5 is not its: ignored
  EXPECT_TRUE(s.Draining(0));
  EXPECT_FALSE(s.Next(0, At(2))) << "a draining worker gets nothing new";
  EXPECT_EQ(s.live_attempts(0), 2u);
  s.AddWorker(1, 2, 2, true);
  EXPECT_FALSE(s.Steal(0, At(2))) << "nor anything stolen";
  EXPECT_EQ(Chunks(Drain(s, 1, 2)), (Ids{2, 3}));      // back at the front, in order
  EXPECT_EQ(Ok(s, 0, {0, 1}, 3), Verdict::kAccepted);  // its running ones still count
  s.LeaveWorker(0);  // chunk 1 was still running on it: re-queued, free
  EXPECT_FALSE(s.HasWorker(0));
  for (uint64_t c = 0; c < 8; ++c) EXPECT_TRUE(s.failures_of(c).empty()) << c;
  EXPECT_EQ(s.counters().retries, 0u);
  EXPECT_EQ(s.counters().crashes, 0u);
  EXPECT_EQ(s.counters().workers_lost, 0u);
  EXPECT_EQ(s.counters().workers_left, 1u);
  EXPECT_TRUE(s.failed_chunks().empty());
  EXPECT_EQ(Ok(s, 1, {2, 2}, 4), Verdict::kAccepted);
  EXPECT_EQ(Ok(s, 1, {3, 2}, 4), Verdict::kAccepted);
  EXPECT_EQ(Chunks(Drain(s, 1, 4)), (Ids{1, 4}));
}

TEST_F(SchedulerTest, AWorkerThatDiedBeforeReportingAnyStartCostsNoRetry) {
  SchedulerOptions o;
  o.retries = 0;
  Scheduler s(4, o);
  s.AddWorker(0, 4, 4, true);
  Drain(s, 0, 0);
  EXPECT_TRUE(s.RemoveWorker(0, "hung", At(5)).empty()) << "no chunk failed";
  EXPECT_FALSE(s.Aborted());
  EXPECT_EQ(s.counters().retries, 0u);
}

TEST_F(SchedulerTest, StartsReportedByAnotherWorkerOrForUnknownAttemptsAreIgnored) {
  Scheduler s(2, {});
  s.AddWorker(0, 2, 2, true);
  s.AddWorker(1, 2, 2, true);
  auto a = s.Next(0, At(0));
  s.MarkStarted(1, a->chunk, a->attempt, At(1));  // not its attempt
  s.MarkStarted(0, a->chunk, 7, At(1));           // never issued
  s.MarkStarted(0, 99, 1, At(1));                 // no such chunk
  s.RemoveWorker(0, "gone", At(2));
  EXPECT_TRUE(s.failures_of(a->chunk).empty());
}

TEST_F(SchedulerTest, AChunkLostUnstartedAgainAndAgainIsChargedInTheEnd) {
  // A worker may die before it could report a start (e.g. a task that crashes it at once):
  // after kFreeLosses such losses the chunk is charged, so it cannot kill workers forever.
  SchedulerOptions o;
  o.crash_limit = 1;
  Scheduler s(1, o);
  for (uint32_t i = 1; i < Scheduler::kFreeLosses; ++i) {
    s.AddWorker(i, 1, 1, true);
    ASSERT_TRUE(s.Next(i, At(i)));
    EXPECT_TRUE(s.RemoveWorker(i, "crashed", At(i)).empty());
  }
  s.AddWorker(9, 1, 1, true);
  ASSERT_TRUE(s.Next(9, At(10)));
  EXPECT_EQ(s.RemoveWorker(9, "crashed", At(10)), (Ids{0}));
}

TEST_F(SchedulerTest, AReportedStartStartsTheDeadlineOfAPrefetchedAttempt) {
  SchedulerOptions o;
  o.timeout = milliseconds(100);
  Scheduler s(2, o);
  s.AddWorker(0, 1, 2, true);
  Drain(s, 0, 0);
  // A worker that reports starts: no deadline runs until it says an attempt started (on a
  // warm worker another job's attempt may hold the slot).
  EXPECT_FALSE(s.NextDeadline());
  s.MarkStarted(0, 0, 1, At(10));
  EXPECT_EQ(*s.NextDeadline(), At(110));
  s.MarkStarted(0, 1, 1, At(30));  // the worker says chunk 1 runs too
  EXPECT_EQ(s.ExpireAttempts(At(110)).size(), 1u);
  EXPECT_EQ(*s.NextDeadline(), At(130));
}

TEST_F(SchedulerTest, AnUnreportedAttemptOfAWorkerThatReportsStartsNeverTimesOut) {
  SchedulerOptions o;
  o.timeout = milliseconds(100);
  Scheduler s(1, o);
  s.AddWorker(0, 1, 1, true);
  Drain(s, 0, 0);
  // It waits behind another job's attempt on the same worker: its time has not begun.
  EXPECT_TRUE(s.ExpireAttempts(At(10000)).empty());
  s.MarkStarted(0, 0, 1, At(10000));
  EXPECT_EQ(s.ExpireAttempts(At(10100)).size(), 1u);
}

TEST_F(SchedulerTest, LostWorkerDoesNotUseTheTasksRetries) {
  SchedulerOptions o;
  o.retries = 1;
  Scheduler s(2, o);
  s.AddWorker(0, 1, 2);
  s.AddWorker(1, 1, 1);
  auto a = s.Next(0, At(0));  // chunk 0
  auto b = s.Next(0, At(0));  // chunk 1, prefetched
  ASSERT_TRUE(a && b);
  Fail(s, 0, *a, 1);  // the task's one failure: --retries 1 allows one more
  auto retry = s.Next(1, At(1));
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->chunk, 0u);
  EXPECT_TRUE(s.RemoveWorker(1, "crashed", At(2)).empty()) << "the machine's fault, not the task's";
  EXPECT_FALSE(s.Aborted());
  ASSERT_EQ(s.failures_of(0).size(), 2u);
  EXPECT_FALSE(s.failures_of(0)[0].lost);
  EXPECT_TRUE(s.failures_of(0)[1].lost);
  EXPECT_EQ(s.counters().crashes, 1u);
  s.AddWorker(2, 1, 1);
  auto third = s.Next(2, At(3));
  ASSERT_TRUE(third);
  EXPECT_EQ(third->chunk, 0u);
  EXPECT_EQ(third->attempt, 3u);
  EXPECT_EQ(Ok(s, 2, *third, 4), Verdict::kAccepted);
}

TEST_F(SchedulerTest, ChunkFailsAfterCrashLimitLostWorkers) {
  SchedulerOptions o;
  o.crash_limit = 3;
  Scheduler s(1, o);
  for (WorkerIndex w = 0; w < 3; ++w) {
    s.AddWorker(w, 1, 1);
    auto a = s.Next(w, At(w));
    ASSERT_TRUE(a);
    EXPECT_EQ(a->attempt, w + 1);
    auto failed = s.RemoveWorker(w, "killed by signal 9", At(w));
    EXPECT_EQ(failed, w < 2 ? Ids{} : Ids{0}) << "loss " << w + 1;
  }
  EXPECT_TRUE(s.Aborted());
  EXPECT_EQ(s.failures_of(0).size(), 3u);
  EXPECT_TRUE(s.failures_of(0).back().lost);
}

TEST_F(SchedulerTest, CrashLimitZeroMeansLostWorkersNeverFailAChunk) {
  SchedulerOptions o;
  o.crash_limit = 0;
  Scheduler s(1, o);
  for (WorkerIndex w = 0; w < 50; ++w) {
    s.AddWorker(w, 1, 1);
    ASSERT_TRUE(s.Next(w, At(w)));
    EXPECT_TRUE(s.RemoveWorker(w, "oom", At(w)).empty());
  }
  s.AddWorker(99, 1, 1);
  auto a = s.Next(99, At(100));
  ASSERT_TRUE(a);
  EXPECT_EQ(Ok(s, 99, *a, 101), Verdict::kAccepted);
}

TEST_F(SchedulerTest, TaskFailureAfterLostWorkersStillFailsByRetries) {
  Scheduler s(1, {});  // --retries 0, --crash-limit 5
  for (WorkerIndex w = 0; w < 2; ++w) {
    s.AddWorker(w, 1, 1);
    ASSERT_TRUE(s.Next(w, At(w)));
    s.RemoveWorker(w, "killed", At(w));
  }
  s.AddWorker(5, 1, 1);
  auto a = s.Next(5, At(5));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->attempt, 3u);
  EXPECT_EQ(Fail(s, 5, *a, 6, "exit 1"), Verdict::kChunkFailed);
}

TEST_F(SchedulerTest, LostWorkerRemovalReportsEveryChunkThatFailedForGood) {
  SchedulerOptions o;
  o.crash_limit = 1;
  o.keep_going = true;
  Scheduler s(4, o);
  s.AddWorker(0, 2, 4);
  Drain(s, 0, 0);
  auto failed = s.RemoveWorker(0, "oom", At(1));
  std::sort(failed.begin(), failed.end());
  EXPECT_EQ(failed, (Ids{0, 1})) << "only the running ones count as attempts";
  EXPECT_FALSE(s.Aborted());
  s.AddWorker(1, 2, 4);
  EXPECT_EQ(Chunks(Drain(s, 1, 2)), (Ids{2, 3}));
}

TEST_F(SchedulerTest, ResultFromARemovedWorkerIsALateDuplicate) {
  Scheduler s(1, {});
  s.AddWorker(0, 1, 1);
  s.AddWorker(1, 1, 1);
  ASSERT_TRUE(s.Next(0, At(0)));
  s.RemoveWorker(0, "presumed dead", At(100));
  auto b = s.Next(1, At(100));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->attempt, 2u);
  EXPECT_EQ(s.OnResult(0, 0, 1, true, "", At(150)).verdict, Verdict::kLateDuplicate);
  EXPECT_EQ(s.OnResult(1, 0, 2, true, "", At(160)).verdict, Verdict::kAccepted);
  EXPECT_EQ(s.OnResult(1, 0, 2, true, "", At(170)).verdict, Verdict::kLateDuplicate);
  EXPECT_EQ(s.counters().late_duplicates, 2u);
}

TEST_F(SchedulerTest, AWorkerIndexReusedAfterRemovalStartsAfresh) {
  Scheduler s(2, {});
  s.AddWorker(0, 1, 1);
  auto a = s.Next(0, At(0));
  s.RemoveWorker(0, "reconnected", At(1));
  s.AddWorker(0, 1, 1);
  EXPECT_EQ(s.live_attempts(0), 0u);
  EXPECT_EQ(Ok(s, 0, *a, 2), Verdict::kLateDuplicate) << "the old incarnation's attempt";
  auto b = s.Next(0, At(2));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->chunk, 0u);
  EXPECT_EQ(b->attempt, 2u);
}

// ---- timeouts -------------------------------------------------------------------------

TEST_F(SchedulerTest, NoTimeoutMeansNoDeadline) {
  Scheduler s(1, {});
  s.AddWorker(0, 1, 1);
  s.Next(0, At(0));
  EXPECT_FALSE(s.NextDeadline());
  EXPECT_TRUE(s.ExpireAttempts(At(1000000000)).empty());
}

TEST_F(SchedulerTest, TimeoutExpiresTheAttemptAndRetriesIt) {
  SchedulerOptions o = Retrying();
  o.timeout = milliseconds(500);
  Scheduler s(1, o);
  s.AddWorker(3, 1, 1);
  EXPECT_FALSE(s.NextDeadline()) << "nothing running";
  s.Next(3, At(0));
  ASSERT_TRUE(s.NextDeadline());
  EXPECT_EQ(*s.NextDeadline(), At(500));
  EXPECT_TRUE(s.ExpireAttempts(At(499)).empty());
  auto cancel = s.ExpireAttempts(At(500));  // the deadline itself is expired
  ASSERT_EQ(cancel.size(), 1u);
  EXPECT_EQ(cancel[0].worker, 3u);
  EXPECT_EQ(cancel[0].chunk, 0u);
  EXPECT_EQ(cancel[0].attempt, 1u);
  EXPECT_EQ(s.counters().timeouts, 1u);
  EXPECT_EQ(s.live_attempts(3), 0u) << "the credit is free again";
  EXPECT_FALSE(s.NextDeadline());
  EXPECT_TRUE(s.ExpireAttempts(At(600)).empty()) << "expired once only";
  ASSERT_EQ(s.failures_of(0).size(), 1u);
  EXPECT_NE(s.failures_of(0)[0].reason.find("timed out after 0.5s"), std::string::npos)
      << s.failures_of(0)[0].reason;
  auto retry = s.Next(3, At(502));
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->attempt, 2u);
  EXPECT_EQ(*s.NextDeadline(), At(1002));
  // The expired attempt's result, crossing the CANCEL on the wire, is not accepted.
  EXPECT_EQ(s.OnResult(3, 0, 1, true, "", At(503)).verdict, Verdict::kLateDuplicate);
  EXPECT_EQ(s.OnResult(3, 0, 2, true, "", At(504)).verdict, Verdict::kAccepted);
}

TEST_F(SchedulerTest, TimeoutsExhaustRetries) {
  SchedulerOptions o;
  o.timeout = milliseconds(100);
  o.retries = 1;
  Scheduler s(1, o);
  s.AddWorker(0, 1, 1);
  s.Next(0, At(0));
  s.ExpireAttempts(At(100));
  s.Next(0, At(100));
  auto cancel = s.ExpireAttempts(At(200));
  EXPECT_EQ(cancel.size(), 1u);
  EXPECT_EQ(s.failed_chunks(), (Ids{0}));
  EXPECT_TRUE(s.Aborted());
  EXPECT_EQ(s.counters().timeouts, 2u);
}

TEST_F(SchedulerTest, NextDeadlineIsTheEarliestAndExpiryTakesOnlyThosePastIt) {
  SchedulerOptions o;
  o.timeout = milliseconds(100);
  o.keep_going = true;
  Scheduler s(3, o);
  s.AddWorker(0, 1, 1);
  s.AddWorker(1, 1, 1);
  s.AddWorker(2, 1, 1);
  s.Next(1, At(30));
  s.Next(0, At(10));
  s.Next(2, At(20));
  EXPECT_EQ(*s.NextDeadline(), At(110));
  auto cancel = s.ExpireAttempts(At(120));
  ASSERT_EQ(cancel.size(), 2u);
  std::set<WorkerIndex> workers{cancel[0].worker, cancel[1].worker};
  EXPECT_EQ(workers, (std::set<WorkerIndex>{0, 2}));
  EXPECT_EQ(*s.NextDeadline(), At(130));
}

TEST_F(SchedulerTest, TimedOutChunksAreRetriedInChunkOrder) {
  SchedulerOptions o = Retrying();
  o.timeout = milliseconds(100);
  Scheduler s(4, o);
  s.AddWorker(0, 3, 3);
  EXPECT_EQ(Chunks(Drain(s, 0, 0)), (Ids{0, 1, 2}));
  EXPECT_EQ(s.ExpireAttempts(At(100)).size(), 3u);
  // Like a lost worker's attempts, they go back to the front lowest chunk first, so the
  // chunk the output is waiting for runs first.
  EXPECT_EQ(Chunks(Drain(s, 0, 100)), (Ids{0, 1, 2}));
}

TEST_F(SchedulerTest, PrefetchedAttemptsStartTheirClockWhenTheyReachASlot) {
  SchedulerOptions o;
  o.timeout = milliseconds(100);
  Scheduler s(3, o);
  s.AddWorker(0, 1, 3);  // one slot, two prefetched
  Drain(s, 0, 0);
  EXPECT_EQ(*s.NextDeadline(), At(100));  // only chunk 0 is running
  EXPECT_EQ(s.ExpireAttempts(At(150)).size(), 1u) << "only the running attempt expires";
  EXPECT_EQ(*s.NextDeadline(), At(250)) << "chunk 1 started when chunk 0 was cancelled";
  s.OnResult(0, 1, 1, true, "", At(200));
  EXPECT_EQ(*s.NextDeadline(), At(300));  // chunk 2 started when chunk 1 finished
}

TEST_F(SchedulerTest, RelativeTimeoutIsAMultipleOfTheMedian) {
  SchedulerOptions o;
  o.timeout_percent = 300;
  Scheduler s(5, o);
  s.AddWorker(0, 1, 1);
  EXPECT_EQ(s.median_attempt_time(), Micros(0));
  for (int i = 0; i < 3; ++i) {
    auto a = s.Next(0, At(i * 100));
    ASSERT_TRUE(a);
    EXPECT_FALSE(s.NextDeadline()) << "no relative limit before three results";
    EXPECT_TRUE(s.ExpireAttempts(At(i * 100 + 99)).empty());
    s.OnResult(0, a->chunk, 1, true, "", At(i * 100 + 100));
  }
  EXPECT_EQ(s.median_attempt_time(), milliseconds(100));
  s.Next(0, At(300));
  ASSERT_TRUE(s.NextDeadline());
  EXPECT_EQ(*s.NextDeadline(), At(300 + 300));  // median 100 ms x 300%
  EXPECT_TRUE(s.ExpireAttempts(At(599)).empty());
  EXPECT_EQ(s.ExpireAttempts(At(600)).size(), 1u);
}

TEST_F(SchedulerTest, RelativeTimeoutDoublesWithEachAttempt) {
  // A chunk legitimately 4x the median with --timeout 300%: attempt 1 is killed at 3x,
  // attempt 2 may run 6x and finishes.
  SchedulerOptions o;
  o.timeout_percent = 300;
  o.retries = 2;
  Scheduler s(5, o);
  s.AddWorker(0, 1, 1);
  for (int i = 0; i < 3; ++i) {
    auto a = s.Next(0, At(i * 100));
    Ok(s, 0, *a, i * 100 + 100);
  }
  auto slow = s.Next(0, At(300));
  ASSERT_EQ(slow->attempt, 1u);
  EXPECT_EQ(*s.NextDeadline(), At(600));
  ASSERT_EQ(s.ExpireAttempts(At(600)).size(), 1u);
  EXPECT_NE(s.failures_of(slow->chunk)[0].reason.find("timed out after 0.3s"), std::string::npos);
  auto retry = s.Next(0, At(600));
  ASSERT_EQ(retry->chunk, slow->chunk);
  ASSERT_EQ(retry->attempt, 2u);
  EXPECT_EQ(*s.NextDeadline(), At(1200)) << "2 x 300% of the median";
  EXPECT_TRUE(s.ExpireAttempts(At(1000)).empty());
  EXPECT_EQ(Ok(s, 0, *retry, 1000), Verdict::kAccepted);
  // A third attempt would get 4 x: check on another chunk failed twice.
  auto c = s.Next(0, At(1000));
  Fail(s, 0, *c, 1001);
  c = s.Next(0, At(1001));
  Fail(s, 0, *c, 1002);
  c = s.Next(0, At(1002));
  ASSERT_EQ(c->attempt, 3u);
  EXPECT_EQ(*s.NextDeadline(), At(1002 + 4 * 300));
}

TEST_F(SchedulerTest, AbsoluteTimeoutIsTheSameForEveryAttempt) {
  SchedulerOptions o = Retrying();
  o.timeout = milliseconds(50);
  Scheduler s(1, o);
  s.AddWorker(0, 1, 1);
  s.Next(0, At(0));
  ASSERT_EQ(s.ExpireAttempts(At(50)).size(), 1u);
  auto retry = s.Next(0, At(60));
  ASSERT_EQ(retry->attempt, 2u);
  EXPECT_EQ(*s.NextDeadline(), At(110));
}

TEST_F(SchedulerTest, RelativeTimeoutHasAFloorOfOneMillisecondTimesThePercent) {
  SchedulerOptions o;
  o.timeout_percent = 500;
  Scheduler s(4, o);
  s.AddWorker(0, 1, 1);
  for (int i = 0; i < 3; ++i) {
    auto a = s.Next(0, At(0));
    s.OnResult(0, a->chunk, 1, true, "", At(0));  // instant attempts: median 0
  }
  s.Next(0, At(0));
  ASSERT_TRUE(s.NextDeadline());
  EXPECT_EQ(*s.NextDeadline(), At(5));
}

TEST_F(SchedulerTest, MedianIsOverAcceptedAttempts) {
  Scheduler s(5, {});
  s.AddWorker(0, 1, 1);
  const int durations[] = {50, 10, 400, 30, 20};
  int64_t t = 0;
  for (int d : durations) {
    auto a = s.Next(0, At(t));
    t += d;
    Ok(s, 0, *a, t);
  }
  EXPECT_EQ(s.median_attempt_time(), milliseconds(30));
}

TEST_F(SchedulerTest, MedianFollowsTheRecentAttemptsWithABoundedSample) {
  // 5000 attempts of 10 ms, then 5000 of 50 ms: the median moves to 50 ms, because only
  // the last 4096 attempts are kept (a job of millions of chunks holds no more).
  const int n = 10000;
  Scheduler s(n, {});
  s.AddWorker(0, 1, 1);
  int64_t t = 0;
  for (int i = 0; i < n; ++i) {
    auto a = s.Next(0, At(t));
    ASSERT_TRUE(a);
    t += i < n / 2 ? 10 : 50;
    Ok(s, 0, *a, t);
    if (i == n / 2 - 1) {
      EXPECT_EQ(s.median_attempt_time(), milliseconds(10));
    }
  }
  EXPECT_EQ(s.median_attempt_time(), milliseconds(50));
}

// ---- speculation ----------------------------------------------------------------------

class SpeculationTest : public SchedulerTest {
 protected:
  // Two workers, three chunks; worker 1 finishes chunks 1 and 2 in 100 ms each while
  // chunk 0 runs on worker 0 from t=0. The median is then 100 ms.
  void SetUp() override {
    SchedulerOptions o;
    o.speculate = true;
    s_.emplace(3, o);
    s_->AddWorker(0, 1, 1);
    s_->AddWorker(1, 1, 1);
    straggler_ = *s_->Next(0, At(0));
    auto b = s_->Next(1, At(0));
    Ok(*s_, 1, *b, 100);
    auto c = s_->Next(1, At(100));
    Ok(*s_, 1, *c, 200);
  }
  std::optional<Scheduler> s_;
  Assignment straggler_;
};

TEST_F(SpeculationTest, AStragglerIsReissuedToAnIdleWorkerAndTheFirstResultWins) {
  EXPECT_FALSE(s_->Next(1, At(200))) << "chunk 0 at 200 ms: not past 2x the median";
  auto spec = s_->Next(1, At(201));
  ASSERT_TRUE(spec);
  EXPECT_TRUE(spec->speculative);
  EXPECT_EQ(spec->chunk, straggler_.chunk);
  EXPECT_EQ(spec->attempt, 2u);
  EXPECT_EQ(s_->counters().speculative, 1u);
  EXPECT_FALSE(s_->Next(1, At(300))) << "worker 1 is busy with it now";
  ResultOutcome won = s_->OnResult(1, 0, 2, true, "", At(260));
  EXPECT_EQ(won.verdict, Verdict::kAccepted);
  ASSERT_EQ(won.cancel.size(), 1u);
  EXPECT_EQ(won.cancel[0].worker, 0u);
  EXPECT_EQ(won.cancel[0].chunk, 0u);
  EXPECT_EQ(won.cancel[0].attempt, 1u);
  EXPECT_EQ(s_->live_attempts(0), 0u) << "the loser's credit is free";
  EXPECT_EQ(s_->OnResult(0, 0, 1, true, "", At(300)).verdict, Verdict::kLateDuplicate);
  EXPECT_TRUE(s_->Finished());
}

TEST_F(SpeculationTest, TheOriginalCanStillWinAndTheCopyIsCancelled) {
  auto spec = s_->Next(1, At(250));
  ASSERT_TRUE(spec);
  ResultOutcome won = s_->OnResult(0, 0, 1, true, "", At(260));
  EXPECT_EQ(won.verdict, Verdict::kAccepted);
  ASSERT_EQ(won.cancel.size(), 1u);
  EXPECT_EQ(won.cancel[0].worker, 1u);
  EXPECT_EQ(won.cancel[0].attempt, 2u);
  EXPECT_EQ(s_->OnResult(1, 0, 2, true, "", At(270)).verdict, Verdict::kLateDuplicate);
}

TEST_F(SpeculationTest, OneCopyFailingLeavesTheOtherRunning) {
  auto spec = s_->Next(1, At(250));
  ASSERT_TRUE(spec);
  EXPECT_EQ(s_->OnResult(1, 0, 2, false, "copy failed", At(260)).verdict, Verdict::kRetrying);
  EXPECT_EQ(s_->failures_of(0).size(), 1u);
  EXPECT_EQ(s_->live_attempts(0), 1u);
  EXPECT_EQ(s_->OnResult(0, 0, 1, true, "", At(270)).verdict, Verdict::kAccepted);
  EXPECT_TRUE(s_->Finished());
}

TEST_F(SpeculationTest, OnlyOneCopyAndNeverOnTheSameWorker) {
  EXPECT_FALSE(s_->Next(0, At(1000))) << "worker 0 runs the original";
  ASSERT_TRUE(s_->Next(1, At(1000)));
  s_->AddWorker(2, 1, 1);
  EXPECT_FALSE(s_->Next(2, At(2000))) << "a chunk gets one speculative copy at most";
}

TEST_F(SchedulerTest, SpeculationIsOffByDefault) {
  Scheduler s(2, {});
  s.AddWorker(0, 1, 1);
  s.AddWorker(1, 1, 1);
  s.Next(0, At(0));
  auto b = s.Next(1, At(0));
  Ok(s, 1, *b, 10);
  EXPECT_FALSE(s.Next(1, At(100000)));
  EXPECT_EQ(s.counters().speculative, 0u);
}

TEST_F(SchedulerTest, OnlyAnIdleWorkerSpeculates) {
  SchedulerOptions o;
  o.speculate = true;
  Scheduler s(3, o);
  s.AddWorker(0, 1, 1);
  s.AddWorker(1, 1, 2);
  s.Next(0, At(0));
  EXPECT_EQ(Chunks(Drain(s, 1, 0)), (Ids{1, 2}));
  s.OnResult(1, 1, 1, true, "", At(10));
  // Worker 1 still holds chunk 2: not idle, so no speculation however slow chunk 0 is.
  EXPECT_FALSE(s.Next(1, At(100000)));
  s.OnResult(1, 2, 1, true, "", At(100000));  // median now ~100 s: 2x is 200 s
  EXPECT_FALSE(s.Next(1, At(150000)));
  auto spec = s.Next(1, At(300000));
  ASSERT_TRUE(spec);
  EXPECT_TRUE(spec->speculative);
}

TEST_F(SchedulerTest, NoSpeculationBeforeAnyAttemptFinished) {
  SchedulerOptions o;
  o.speculate = true;
  Scheduler s(1, o);
  s.AddWorker(0, 1, 1);
  s.AddWorker(1, 1, 1);
  s.Next(0, At(0));
  EXPECT_FALSE(s.Next(1, At(1000000))) << "no median yet";
}

// ---- window ---------------------------------------------------------------------------

TEST_F(SchedulerTest, WindowBoundsHowFarAheadDispatchGoes) {
  SchedulerOptions o;
  o.window = 2;
  Scheduler s(5, o);
  s.AddWorker(0, 4, 4);
  EXPECT_EQ(Chunks(Drain(s, 0, 0)), (Ids{0, 1}));
  s.OnResult(0, 1, 1, true, "", At(1));  // chunk 0 still open: window does not move
  EXPECT_TRUE(Drain(s, 0, 1).empty());
  s.OnResult(0, 0, 1, true, "", At(2));
  EXPECT_EQ(Chunks(Drain(s, 0, 2)), (Ids{2, 3}));
}

TEST_F(SchedulerTest, WindowOfOneIsStrictlySequential) {
  SchedulerOptions o;
  o.window = 1;
  Scheduler s(3, o);
  s.AddWorker(0, 4, 4);
  s.AddWorker(1, 4, 4);
  for (uint64_t c = 0; c < 3; ++c) {
    auto a = Drain(s, 0, c);
    EXPECT_TRUE(Drain(s, 1, c).empty());
    ASSERT_EQ(Chunks(a), Ids{c});
    Ok(s, 0, a[0], c);
  }
  EXPECT_TRUE(s.Finished());
}

TEST_F(SchedulerTest, FailedChunksMoveTheWindowWithKeepGoing) {
  SchedulerOptions o;
  o.window = 1;
  o.retries = 0;
  o.keep_going = true;
  Scheduler s(2, o);
  s.AddWorker(0, 1, 1);
  auto a = s.Next(0, At(0));
  EXPECT_EQ(Fail(s, 0, *a, 1), Verdict::kChunkFailed);
  auto b = s.Next(0, At(1));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->chunk, 1u);
}

TEST_F(SchedulerTest, RetriedChunksInsideTheWindowAreStillDispatched) {
  SchedulerOptions o = Retrying();
  o.window = 2;
  Scheduler s(4, o);
  s.AddWorker(0, 2, 2);
  s.AddWorker(1, 1, 1);
  auto as = Drain(s, 0, 0);
  ASSERT_EQ(Chunks(as), (Ids{0, 1}));
  Fail(s, 0, as[1], 1);  // chunk 1 fails on worker 0 and must go elsewhere
  EXPECT_FALSE(s.Next(0, At(1))) << "chunk 2 is outside the window";
  auto retry = s.Next(1, At(1));
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->chunk, 1u);
}

// ---- randomized simulation ------------------------------------------------------------

// Drives a scheduler with random results, failures, timeouts, lost and new workers, and
// checks the invariants of scheduler.h after every step.
void Simulate(uint32_t seed) {
  std::mt19937 rng(seed);
  auto chance = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
  SchedulerOptions o;
  o.retries = rng() % 4;
  o.crash_limit = rng() % 4;
  o.keep_going = true;
  o.speculate = chance(50);
  o.window = chance(50) ? 0 : 1 + rng() % 8;
  if (chance(50)) o.timeout = milliseconds(50 + rng() % 200);
  const uint64_t kChunks = 40;
  Scheduler s(kChunks, o);

  struct Held {
    WorkerIndex worker;
    uint64_t chunk;
    uint32_t attempt;
  };
  std::vector<Held> held;  // attempts the simulated workers hold
  std::map<WorkerIndex, uint32_t> capacity;
  WorkerIndex next_worker = 0;
  auto add_worker = [&] {
    uint32_t slots = 1 + rng() % 3;
    capacity[next_worker] = 2 * slots;
    s.AddWorker(next_worker++, slots, 2 * slots);
  };
  for (int i = 0; i < 3; ++i) add_worker();
  std::vector<int> accepted(kChunks, 0);
  std::map<uint64_t, uint32_t> last_attempt;
  auto drop = [&](const CancelOrder& c) {
    std::erase_if(held, [&](const Held& h) {
      return h.worker == c.worker && h.chunk == c.chunk && h.attempt == c.attempt;
    });
  };

  int64_t now = 0;
  for (int step = 0; step < 5000 && !s.Finished(); ++step) {
    now += rng() % 20;
    for (auto& [w, cap] : capacity) {
      while (auto a = s.Next(w, TimePoint{} + milliseconds(now))) {
        ASSERT_LT(a->chunk, kChunks);
        ASSERT_EQ(accepted[a->chunk], 0) << "issued a chunk already done";
        ASSERT_GT(a->attempt, last_attempt[a->chunk]) << "attempt numbers only grow";
        last_attempt[a->chunk] = a->attempt;
        for (const Held& h : held)
          ASSERT_FALSE(h.worker == w && h.chunk == a->chunk) << "two attempts on one worker";
        held.push_back({w, a->chunk, a->attempt});
      }
      ASSERT_LE(s.live_attempts(w), cap);
    }
    if (!held.empty() && chance(70)) {
      size_t i = rng() % held.size();
      Held h = held[i];
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
      bool ok = chance(75);
      ResultOutcome out = s.OnResult(h.worker, h.chunk, h.attempt, ok, ok ? "" : "sim failure",
                                     TimePoint{} + milliseconds(now));
      ASSERT_NE(out.verdict, Verdict::kUnknown);
      ASSERT_NE(out.verdict, Verdict::kLateDuplicate) << "the attempt was live";
      if (out.verdict == Verdict::kAccepted) ++accepted[h.chunk];
      ASSERT_LE(accepted[h.chunk], 1) << "exactly-once output";
      for (const auto& c : out.cancel) {
        ASSERT_EQ(c.chunk, h.chunk);
        drop(c);
      }
      // Now and then a cancelled attempt's result crosses the CANCEL on the wire.
      if (!out.cancel.empty() && chance(30)) {
        const auto& c = out.cancel[0];
        ASSERT_EQ(
            s.OnResult(c.worker, c.chunk, c.attempt, true, "", TimePoint{} + milliseconds(now))
                .verdict,
            Verdict::kLateDuplicate);
      }
    }
    if (chance(20)) {
      for (const auto& c : s.ExpireAttempts(TimePoint{} + milliseconds(now))) drop(c);
    }
    if (chance(2) && capacity.size() > 1) {
      auto it = capacity.begin();
      std::advance(it, rng() % capacity.size());
      WorkerIndex gone = it->first;
      capacity.erase(it);
      s.RemoveWorker(gone, "sim lost", TimePoint{} + milliseconds(now));
      std::erase_if(held, [&](const Held& h) { return h.worker == gone; });
      ASSERT_EQ(s.live_attempts(gone), 0u);
      add_worker();
    }
    uint64_t live = 0;
    for (const auto& [w, cap] : capacity) live += s.live_attempts(w);
    ASSERT_EQ(live, held.size()) << "scheduler and workers agree on what is running";
  }
  ASSERT_TRUE(s.Finished()) << "stalled";
  EXPECT_FALSE(s.Aborted());
  uint64_t done = 0;
  for (int a : accepted) done += static_cast<uint64_t>(a);
  EXPECT_EQ(done, s.chunks_done());
  EXPECT_EQ(done + s.failed_chunks().size(), kChunks);
  for (uint64_t c : s.failed_chunks()) {
    EXPECT_EQ(accepted[c], 0);
    uint32_t lost = 0, task = 0;
    for (const AttemptFailure& f : s.failures_of(c)) ++(f.lost ? lost : task);
    EXPECT_TRUE(task > o.retries || (o.crash_limit > 0 && lost >= o.crash_limit));
  }
}

TEST_F(SchedulerTest, RandomizedSimulationKeepsTheInvariants) {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Simulate(seed);
    if (HasFatalFailure()) return;
  }
}

// ---- resume -----------------------------------------------------------------------

TEST_F(SchedulerTest, ChunksMarkedDoneAreNeverDispatchedAndCountAsFinished) {
  SchedulerOptions o;
  o.window = 2;
  Scheduler s(5, o);
  s.MarkDone(0);
  s.MarkDone(3);
  s.AddWorker(0, 5, 5);
  // The window counts from the oldest unfinished chunk (1), so 1 and 2 go out.
  EXPECT_EQ(Chunks(Drain(s, 0, 0)), (Ids{1, 2}));
  EXPECT_EQ(s.chunks_done(), 2u);
  EXPECT_FALSE(s.Finished());
  Scheduler all(2, {});
  all.MarkDone(0);
  all.MarkDone(1);
  all.MarkDone(1);  // twice: no effect
  EXPECT_TRUE(all.Finished());
  EXPECT_EQ(all.chunks_done(), 2u);
}

}  // namespace
}  // namespace fanout
