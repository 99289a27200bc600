// LocalWorkers (engine/local_workers.h) on a fake launcher and a fake clock: how many
// workers start, when dead ones are replaced, when replacing stops and why, and what
// happens to a worker that never joins. No process is started.
#include "engine/local_workers.h"

#include <gtest/gtest.h>
#include <signal.h>

#include "tests/support/fake_clock.h"
#include "tests/support/fake_launcher.h"

namespace fanout {
namespace {

using std::chrono::milliseconds;
using testing::FakeClock;
using testing::FakeLauncher;

class LocalWorkersTest : public ::testing::Test {
 protected:
  LocalWorkers Make(uint64_t max_respawns = UINT64_MAX, uint64_t no_progress = 100) {
    return LocalWorkers(launcher, clock, max_respawns, no_progress);
  }
  FakeLauncher launcher;
  FakeClock clock;
};

TEST_F(LocalWorkersTest, StartsWhatTheJobWantsAndNeverMoreForASmallerOne) {
  LocalWorkers w = Make();
  w.BeginJob(3);
  EXPECT_EQ(w.NextDeadline(clock.Now()), clock.Now());  // workers wait to start: now
  ASSERT_TRUE(w.SpawnSome().ok());
  EXPECT_EQ(launcher.spawned, (std::vector<std::string>{"local-1", "local-2", "local-3"}));
  w.BeginJob(1);  // a warm loop keeps what it has
  ASSERT_TRUE(w.SpawnSome().ok());
  EXPECT_EQ(launcher.alive(), 3u);
  w.BeginJob(4);
  ASSERT_TRUE(w.SpawnSome().ok());
  EXPECT_EQ(launcher.alive(), 4u);
  EXPECT_EQ(launcher.spawned.back(), "local-4");
}

TEST_F(LocalWorkersTest, ADeadWorkerIsReplacedAfterABackOffThatDoublesWithDeathsInARow) {
  LocalWorkers w = Make();
  w.BeginJob(1);
  ASSERT_TRUE(w.SpawnSome().ok());
  for (int delay : {50, 100, 200, 400, 800, 800}) {
    pid_t pid = launcher.pids().at(0);
    launcher.Exit(pid);
    w.Exited(pid, clock.Now());
    EXPECT_TRUE(w.respawn_pending());
    EXPECT_EQ(w.NextDeadline(clock.Now()), clock.Now() + milliseconds(delay));
    clock.Advance(milliseconds(delay - 1));
    EXPECT_EQ(w.Respawn(clock.Now()), 0u) << "replaced before its back-off of " << delay;
    clock.Advance(milliseconds(1));
    EXPECT_EQ(w.Respawn(clock.Now()), 1u) << "not replaced after " << delay << " ms";
    EXPECT_EQ(launcher.alive(), 1u);
  }
  // A chunk accepted: the next death waits the shortest back-off again.
  w.Progress();
  pid_t pid = launcher.pids().at(0);
  launcher.Exit(pid);
  w.Exited(pid, clock.Now());
  EXPECT_EQ(w.NextDeadline(clock.Now()), clock.Now() + milliseconds(50));
}

TEST_F(LocalWorkersTest, ReplacingStopsWithNoProgressAndSaysWhy) {
  LocalWorkers w = Make(UINT64_MAX, /*no_progress=*/3);
  w.BeginJob(1);
  ASSERT_TRUE(w.SpawnSome().ok());
  for (int death = 1; death <= 3; ++death) {
    pid_t pid = launcher.pids().at(0);
    launcher.Exit(pid);
    w.Exited(pid, clock.Now());
    clock.Advance(milliseconds(1000));
    w.Respawn(clock.Now());
  }
  EXPECT_FALSE(w.MayRespawn());
  EXPECT_FALSE(w.respawn_pending());
  EXPECT_EQ(launcher.alive(), 0u);
  EXPECT_EQ(w.Ended(), "3 workers died in a row with no chunk finished; not respawning");
  // The next job starts over: a fresh budget, and the lost worker is started again.
  w.BeginJob(1);
  EXPECT_TRUE(w.MayRespawn());
  ASSERT_TRUE(w.SpawnSome().ok());
  EXPECT_EQ(launcher.alive(), 1u);
}

TEST_F(LocalWorkersTest, ReplacingStopsAtMaxRespawnsAndSaysWhy) {
  LocalWorkers w = Make(/*max_respawns=*/2);
  w.BeginJob(1);
  ASSERT_TRUE(w.SpawnSome().ok());
  for (int death = 1; death <= 3; ++death) {
    w.Progress();  // chunks are accepted in between: only the budget ends it
    pid_t pid = launcher.pids().at(0);
    launcher.Exit(pid);
    w.Exited(pid, clock.Now());
    clock.Advance(milliseconds(1000));
    w.Respawn(clock.Now());
  }
  EXPECT_EQ(launcher.spawned.size(), 3u);  // the first and 2 replacements
  EXPECT_EQ(launcher.alive(), 0u);
  EXPECT_EQ(w.Ended(), "2 respawns used of 2, see --max-respawns");
}

TEST_F(LocalWorkersTest, AWorkerThatDoesNotJoinWithinTheGraceIsKilled) {
  LocalWorkers w = Make();
  w.BeginJob(2);
  ASSERT_TRUE(w.SpawnSome().ok());
  std::vector<pid_t> pids = launcher.pids();
  w.Joined(pids[0]);
  EXPECT_EQ(w.NextDeadline(clock.Now()), clock.Now() + kJoinGrace);
  clock.Advance(kJoinGrace - milliseconds(1));
  w.CheckJoins(clock.Now());
  EXPECT_TRUE(launcher.killed.empty());
  clock.Advance(milliseconds(1));
  w.CheckJoins(clock.Now());
  EXPECT_EQ(launcher.killed, (std::vector<std::pair<pid_t, int>>{{pids[1], SIGKILL}}));
  // One that lost its connection gets the grace again to say HELLO once more.
  w.Rejoining(pids[0], clock.Now());
  clock.Advance(kJoinGrace);
  w.CheckJoins(clock.Now());
  EXPECT_EQ(launcher.killed.back(), (std::pair<pid_t, int>{pids[0], SIGKILL}));
}

TEST_F(LocalWorkersTest, AWorkerThatCannotBeExecutedIsAnErrorAndStopsTheStarts) {
  LocalWorkers w = Make();
  launcher.fail_spawns = true;
  w.BeginJob(3);
  Status s = w.SpawnSome();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot execute"), std::string::npos) << s.message();
  EXPECT_EQ(w.to_spawn(), 0u);
  EXPECT_FALSE(w.starting());
}

}  // namespace
}  // namespace fanout
