// The worker policy (engine/worker_policy.h) on made-up times: liveness, the respawn
// back-off, and how long a job waits for workers.
#include "engine/worker_policy.h"

#include <gtest/gtest.h>

namespace fanout {
namespace {

using std::chrono::milliseconds;

const Clock::time_point kT0 = Clock::time_point(std::chrono::hours(1));

TEST(LivenessTest, AWorkerIsSilentOnlyAfterLivenessHeartbeats) {
  Liveness l{milliseconds(500), 4};
  EXPECT_EQ(l.Deadline(kT0), kT0 + milliseconds(2000));
  EXPECT_FALSE(l.Silent(kT0, kT0 + milliseconds(2000)));
  EXPECT_TRUE(l.Silent(kT0, kT0 + milliseconds(2001)));
}

TEST(RespawnDelayTest, DoublesFromFiftyMillisecondsUpToEightHundred) {
  EXPECT_EQ(RespawnDelay(1), milliseconds(50));
  EXPECT_EQ(RespawnDelay(2), milliseconds(100));
  EXPECT_EQ(RespawnDelay(5), milliseconds(800));
  EXPECT_EQ(RespawnDelay(500), milliseconds(800));
}

TEST(WaitPolicyTest, NoWorkerWithinTheWaitTimeoutFailsTheJobSayingSo) {
  WaitPolicy wait(milliseconds(1000), 0, /*listening=*/true, kT0);
  WorkerState none;
  EXPECT_EQ(wait.NextDeadline(kT0), kT0 + milliseconds(1000));
  EXPECT_EQ(wait.Expired(kT0 + milliseconds(999), none), "");
  EXPECT_EQ(wait.Expired(kT0 + milliseconds(1000), none),
            "no worker joined within 1000 ms (--wait-timeout)");
  WorkerState one;
  one.joined = 1;
  one.dispatching = true;
  EXPECT_EQ(wait.Expired(kT0 + milliseconds(5000), one), "");
}

TEST(WaitPolicyTest, TooFewWorkersForMinWorkersFailsSayingHowMany) {
  WaitPolicy wait(milliseconds(1000), 3, /*listening=*/true, kT0);
  WorkerState two;
  two.joined = 2;
  EXPECT_EQ(wait.Expired(kT0 + milliseconds(1000), two),
            "only 2 of 3 workers joined within 1000 ms (--min-workers, --wait-timeout)");
}

TEST(WaitPolicyTest, WithoutAWaitTimeoutTheFirstWorkersAreAwaitedForever) {
  WaitPolicy wait(milliseconds(0), 0, /*listening=*/true, kT0);
  EXPECT_EQ(wait.Expired(kT0 + std::chrono::hours(100), WorkerState{}), "");
  EXPECT_EQ(wait.NextDeadline(kT0), std::nullopt);
}

TEST(WaitPolicyTest, AListeningJobLeftWithoutWorkersWaitsForOneThenFails) {
  WaitPolicy wait(milliseconds(0), 0, /*listening=*/true, kT0);
  WorkerState none;
  // Before any loss there is nothing to be stranded from.
  EXPECT_EQ(wait.Stranded(kT0, none, "", "0 respawns"), "");
  bool begun = false;
  EXPECT_EQ(wait.Stranded(kT0, none, "worker w1 left (drained)", "0 respawns", &begun), "");
  EXPECT_TRUE(begun);
  EXPECT_EQ(wait.NextDeadline(kT0), kT0 + kDefaultStrandedWait);
  begun = false;
  EXPECT_EQ(wait.Stranded(kT0 + kDefaultStrandedWait - milliseconds(1), none, "worker w1 left",
                          "0 respawns", &begun),
            "");
  EXPECT_FALSE(begun) << "the wait began twice";
  EXPECT_EQ(wait.Stranded(kT0 + kDefaultStrandedWait, none, "worker w1 left", "0 respawns"),
            "no worker left (worker w1 left; 0 respawns) and none joined within 300000 ms "
            "(--wait-timeout)");
}

TEST(WaitPolicyTest, AWorkerComingBackEndsTheStrandedWait) {
  WaitPolicy wait(milliseconds(1000), 0, /*listening=*/true, kT0);
  WorkerState none, back;
  back.joined = 1;
  wait.Stranded(kT0, none, "worker w1 lost", "0 respawns");
  EXPECT_EQ(wait.Stranded(kT0 + milliseconds(500), back, "worker w1 lost", "0 respawns"), "");
  // Stranded again later: the wait starts over from then.
  EXPECT_EQ(wait.Stranded(kT0 + milliseconds(900), none, "worker w1 lost", "0 respawns"), "");
  EXPECT_EQ(wait.Stranded(kT0 + milliseconds(1899), none, "worker w1 lost", "0 respawns"), "");
  EXPECT_NE(wait.Stranded(kT0 + milliseconds(1900), none, "worker w1 lost", "0 respawns"), "");
}

TEST(WaitPolicyTest, AJobWithoutListenIsNeverStrandedButFailsAtOnceElsewhere) {
  WaitPolicy wait(milliseconds(0), 0, /*listening=*/false, kT0);
  EXPECT_EQ(wait.Stranded(kT0 + std::chrono::hours(1), WorkerState{}, "lost", "0 respawns"), "");
}

TEST(WaitPolicyTest, LocalWorkersStartingOrDueAreWorkersToCome) {
  WaitPolicy wait(milliseconds(1000), 0, /*listening=*/true, kT0);
  WorkerState starting;
  starting.starting = true;
  EXPECT_EQ(wait.Expired(kT0 + milliseconds(5000), starting), "");
  WorkerState due;
  due.respawn_pending = true;
  bool begun = false;
  EXPECT_EQ(wait.Stranded(kT0, due, "worker local-1 lost", "1 respawns", &begun), "");
  EXPECT_FALSE(begun);
}

}  // namespace
}  // namespace fanout
