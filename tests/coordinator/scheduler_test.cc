// The Scheduler, driven without sockets, processes or clocks: time is passed in, so every
// decision about attempts, retries, timeouts, speculation and lost workers is checked
// exactly (STYLE.md §1).
#include "coordinator/scheduler.h"

#include <gtest/gtest.h>

namespace fanout {
namespace {

using std::chrono::milliseconds;

class SchedulerTest : public ::testing::Test {
 protected:
  TimePoint At(int ms) const { return TimePoint{} + milliseconds(1000000 + ms); }
  // Takes every assignment `worker` can get now.
  std::vector<Assignment> Drain(Scheduler& s, WorkerIndex worker, int ms) {
    std::vector<Assignment> out;
    while (auto a = s.Next(worker, At(ms))) out.push_back(*a);
    return out;
  }
  static std::vector<uint64_t> Chunks(const std::vector<Assignment>& as) {
    std::vector<uint64_t> out;
    for (const auto& a : as) out.push_back(a.chunk);
    return out;
  }
};

TEST_F(SchedulerTest, DispatchesInOrderUpToCapacity) {
  Scheduler s(5, {});
  s.AddWorker(0, 1, 2);
  auto first = Drain(s, 0, 0);
  EXPECT_EQ(Chunks(first), (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(first[0].attempt, 1u);
  EXPECT_EQ(s.live_attempts(0), 2u);
  EXPECT_EQ(s.OnResult(0, 0, 1, true, "", At(10)).verdict, Verdict::kAccepted);
  EXPECT_EQ(Chunks(Drain(s, 0, 10)), (std::vector<uint64_t>{2}));
}

TEST_F(SchedulerTest, FinishesWhenEveryChunkIsAccepted) {
  Scheduler s(3, {});
  s.AddWorker(0, 3, 3);
  for (const auto& a : Drain(s, 0, 0)) s.OnResult(0, a.chunk, a.attempt, true, "", At(5));
  EXPECT_TRUE(s.Finished());
  EXPECT_FALSE(s.Aborted());
  EXPECT_EQ(s.chunks_done(), 3u);
  EXPECT_EQ(s.counters().attempts, 3u);
}

TEST_F(SchedulerTest, FailedAttemptIsRetriedThenTheChunkFails) {
  SchedulerOptions o;
  o.retries = 2;
  Scheduler s(1, o);
  s.AddWorker(0, 1, 1);
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    auto a = s.Next(0, At(attempt));
    ASSERT_TRUE(a);
    EXPECT_EQ(a->attempt, attempt);
    auto verdict = s.OnResult(0, 0, attempt, false, "boom", At(attempt)).verdict;
    EXPECT_EQ(verdict, attempt < 3 ? Verdict::kRetrying : Verdict::kChunkFailed);
  }
  EXPECT_TRUE(s.Aborted());
  EXPECT_EQ(s.failed_chunks(), (std::vector<uint64_t>{0}));
  ASSERT_EQ(s.failures_of(0).size(), 3u);
  EXPECT_EQ(s.failures_of(0)[2].reason, "boom");
  EXPECT_EQ(s.counters().retries, 2u);
  EXPECT_FALSE(s.Next(0, At(10)));  // nothing more once aborted
}

TEST_F(SchedulerTest, KeepGoingFinishesDespiteAFailedChunk) {
  SchedulerOptions o;
  o.retries = 0;
  o.keep_going = true;
  Scheduler s(2, o);
  s.AddWorker(0, 2, 2);
  ASSERT_EQ(Drain(s, 0, 0).size(), 2u);
  s.OnResult(0, 0, 1, false, "bad", At(1));
  s.OnResult(0, 1, 1, true, "", At(1));
  EXPECT_TRUE(s.Finished());
  EXPECT_FALSE(s.Aborted());
  EXPECT_EQ(s.failed_chunks(), (std::vector<uint64_t>{0}));
}

TEST_F(SchedulerTest, RetryPrefersAnotherWorker) {
  Scheduler s(2, {});
  s.AddWorker(0, 1, 1);
  s.AddWorker(1, 1, 1);
  auto a0 = s.Next(0, At(0));
  auto a1 = s.Next(1, At(0));
  ASSERT_TRUE(a0 && a1);
  s.OnResult(1, a1->chunk, 1, true, "", At(1));
  s.OnResult(0, a0->chunk, 1, false, "flaky", At(1));
  // The chunk failed on worker 0, so the retry goes to worker 1.
  auto retry = s.Next(1, At(2));
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->chunk, a0->chunk);
  EXPECT_EQ(retry->attempt, 2u);
}

TEST_F(SchedulerTest, LostWorkerRequeuesItsChunksAtTheFront) {
  Scheduler s(6, {});
  s.AddWorker(0, 1, 3);
  s.AddWorker(1, 1, 3);
  EXPECT_EQ(Chunks(Drain(s, 0, 0)), (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(Chunks(Drain(s, 1, 0)), (std::vector<uint64_t>{3, 4, 5}));
  auto failed = s.RemoveWorker(0, "killed", At(5));
  EXPECT_TRUE(failed.empty());
  EXPECT_EQ(s.counters().workers_lost, 1u);
  // Only the running attempt (chunk 0, the oldest of its one slot) counts as failed.
  EXPECT_EQ(s.failures_of(0).size(), 1u);
  EXPECT_EQ(s.failures_of(1).size(), 0u);
  s.OnResult(1, 3, 1, true, "", At(6));
  auto next = s.Next(1, At(6));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->chunk, 0u);  // back at the front, in chunk order
  EXPECT_EQ(next->attempt, 2u);
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

TEST_F(SchedulerTest, ResultsForChunksOrAttemptsNeverIssuedAreUnknown) {
  Scheduler s(2, {});
  s.AddWorker(0, 1, 1);
  s.Next(0, At(0));
  EXPECT_EQ(s.OnResult(0, 99, 1, true, "", At(1)).verdict, Verdict::kUnknown);
  EXPECT_EQ(s.OnResult(0, 0, 7, true, "", At(1)).verdict, Verdict::kUnknown);
  EXPECT_EQ(s.OnResult(0, 0, 0, true, "", At(1)).verdict, Verdict::kUnknown);
  EXPECT_EQ(s.counters().unknown_results, 3u);
}

TEST_F(SchedulerTest, TimeoutExpiresTheAttemptAndRetriesIt) {
  SchedulerOptions o;
  o.timeout = milliseconds(500);
  Scheduler s(1, o);
  s.AddWorker(0, 1, 1);
  s.Next(0, At(0));
  ASSERT_TRUE(s.NextDeadline());
  EXPECT_EQ(*s.NextDeadline(), At(500));
  EXPECT_TRUE(s.ExpireAttempts(At(499)).empty());
  auto cancel = s.ExpireAttempts(At(501));
  ASSERT_EQ(cancel.size(), 1u);
  EXPECT_EQ(cancel[0].chunk, 0u);
  EXPECT_EQ(cancel[0].attempt, 1u);
  EXPECT_EQ(s.counters().timeouts, 1u);
  auto retry = s.Next(0, At(502));
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->attempt, 2u);
  EXPECT_NE(s.failures_of(0)[0].reason.find("timed out"), std::string::npos);
}

TEST_F(SchedulerTest, PrefetchedAttemptsStartTheirClockWhenTheyReachASlot) {
  SchedulerOptions o;
  o.timeout = milliseconds(100);
  Scheduler s(2, o);
  s.AddWorker(0, 1, 2);  // one slot, one prefetched
  Drain(s, 0, 0);
  EXPECT_EQ(*s.NextDeadline(), At(100));  // only chunk 0 is running
  s.OnResult(0, 0, 1, true, "", At(80));
  EXPECT_EQ(*s.NextDeadline(), At(180));  // chunk 1 started when chunk 0 finished
}

TEST_F(SchedulerTest, RelativeTimeoutIsAMultipleOfTheMedian) {
  SchedulerOptions o;
  o.timeout_percent = 300;
  Scheduler s(5, o);
  s.AddWorker(0, 1, 1);
  for (int i = 0; i < 3; ++i) {
    auto a = s.Next(0, At(i * 100));
    ASSERT_TRUE(a);
    EXPECT_FALSE(s.NextDeadline()) << "no relative limit before three results";
    s.OnResult(0, a->chunk, 1, true, "", At(i * 100 + 100));
  }
  s.Next(0, At(300));
  ASSERT_TRUE(s.NextDeadline());
  EXPECT_EQ(*s.NextDeadline(), At(300 + 300));  // median 100 ms x 300%
}

TEST_F(SchedulerTest, SpeculationReissuesAStragglerAndTheFirstResultWins) {
  SchedulerOptions o;
  o.speculate = true;
  Scheduler s(3, o);
  s.AddWorker(0, 1, 1);
  s.AddWorker(1, 1, 1);
  auto a = s.Next(0, At(0));  // chunk 0: the straggler
  auto b = s.Next(1, At(0));
  s.OnResult(1, b->chunk, 1, true, "", At(100));
  auto c = s.Next(1, At(100));
  s.OnResult(1, c->chunk, 1, true, "", At(200));  // median 100 ms
  EXPECT_FALSE(s.Next(1, At(200)));               // chunk 0 at 200 ms: not past 2x median
  auto spec = s.Next(1, At(250));
  ASSERT_TRUE(spec);
  EXPECT_TRUE(spec->speculative);
  EXPECT_EQ(spec->chunk, a->chunk);
  EXPECT_EQ(spec->attempt, 2u);
  ResultOutcome won = s.OnResult(1, 0, 2, true, "", At(260));
  EXPECT_EQ(won.verdict, Verdict::kAccepted);
  ASSERT_EQ(won.cancel.size(), 1u);
  EXPECT_EQ(won.cancel[0].worker, 0u);
  EXPECT_EQ(won.cancel[0].attempt, 1u);
  EXPECT_EQ(s.OnResult(0, 0, 1, true, "", At(300)).verdict, Verdict::kLateDuplicate);
  EXPECT_TRUE(s.Finished());
  EXPECT_EQ(s.counters().speculative, 1u);
}

TEST_F(SchedulerTest, WindowBoundsHowFarAheadDispatchGoes) {
  SchedulerOptions o;
  o.window = 2;
  Scheduler s(5, o);
  s.AddWorker(0, 4, 4);
  EXPECT_EQ(Chunks(Drain(s, 0, 0)), (std::vector<uint64_t>{0, 1}));
  s.OnResult(0, 1, 1, true, "", At(1));  // chunk 0 still open: window does not move
  EXPECT_TRUE(Drain(s, 0, 1).empty());
  s.OnResult(0, 0, 1, true, "", At(2));
  EXPECT_EQ(Chunks(Drain(s, 0, 2)), (std::vector<uint64_t>{2, 3}));
}

}  // namespace
}  // namespace fanout
