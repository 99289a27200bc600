// A processes-mode Pool keeps its workers across calls (engine/warm_processes.h): calls
// after the first find them connected, so a one-chunk call is a round trip, not a start.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "fanout/fanout.h"

namespace {

using fanout::Pool;
using fanout::PoolMode;
using fanout::PoolOptions;

std::string WorkerBin() { return std::string(FANOUT_BIN_DIR) + "/fanout-worker"; }

PoolOptions Processes(uint32_t workers) {
  return PoolOptions().mode(PoolMode::kProcesses).workers(workers).worker_binary(WorkerBin());
}

// The pid of the worker process that ran the call's one chunk (an exec command's parent).
pid_t WorkerPidOf(Pool& pool) {
  auto out = pool.map("exec", {"x\n"}, {"sh", "-c", "echo $PPID"});
  return static_cast<pid_t>(std::stol(out.at(0)));
}

TEST(WarmPoolTest, HundredOneChunkMapsStartTheWorkersOnce) {
  Pool pool(Processes(2));
  std::set<pid_t> pids;
  for (int i = 0; i < 100; ++i) pids.insert(WorkerPidOf(pool));
  // One chunk at a time needs one worker: it is started once and runs every call.
  EXPECT_EQ(pids.size(), 1u) << "workers started for " << pids.size() << " of 100 calls";

  std::vector<double> ms;
  for (int i = 0; i < 100; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto out = pool.map("identity", {"record " + std::to_string(i) + "\n"});
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
    ASSERT_EQ(out, std::vector<std::string>{"record " + std::to_string(i) + "\n"});
  }
  std::sort(ms.begin(), ms.end());
  std::printf("one-chunk map on warm workers: median %.3f ms, p90 %.3f ms\n", ms[50], ms[90]);
  // A loose sanity bound (a worker start alone takes several ms); BENCHMARKS.md has the
  // figure measured by scripts/bench-warm-pool.
  EXPECT_LT(ms[50], 50.0);
  EXPECT_EQ(WorkerPidOf(pool), *pids.begin());
}

TEST(WarmPoolTest, CallsOfOtherTasksAndArgumentsRunOnTheSameWorkers) {
  Pool pool(Processes(2));
  pid_t first = WorkerPidOf(pool);
  EXPECT_EQ(pool.map("product", {"2\n3\n", "4\n5\n"}), (std::vector<std::string>{"6\n", "20\n"}));
  EXPECT_EQ(pool.map("exec", {"b\n", "a\n"}, {"sort"}), (std::vector<std::string>{"b\n", "a\n"}));
  EXPECT_EQ(pool.map_range("product", 1, 7, 2), (std::vector<std::string>{"6\n", "120\n"}));
  // Two-chunk calls may use both workers (which ones is dispatch's choice): never more.
  std::set<pid_t> pids{first};
  for (int call = 0; call < 10; ++call) {
    for (const std::string& pid : pool.map("exec", {"1\n", "2\n"}, {"sh", "-c", "echo $PPID"}))
      pids.insert(static_cast<pid_t>(std::stol(pid)));
  }
  EXPECT_LE(pids.size(), 2u) << "workers were started again for later calls";
}

TEST(WarmPoolTest, AWorkerKilledBetweenCallsIsReplacedForTheNext) {
  Pool pool(Processes(1));
  pid_t first = WorkerPidOf(pool);
  ASSERT_EQ(kill(first, SIGKILL), 0);
  pid_t second = WorkerPidOf(pool);
  EXPECT_NE(second, first);
  EXPECT_EQ(WorkerPidOf(pool), second);
}

TEST(WarmPoolTest, AFailedCallLeavesTheWorkersWarmForTheNext) {
  Pool pool(Processes(2));
  pid_t first = WorkerPidOf(pool);
  // Chunk 0 fails at once and ends the call (no keep_going) while chunk 1 still sleeps:
  // that attempt is cancelled, and nothing of it reaches the next call.
  EXPECT_THROW(pool.map("exec", {"fail\n", "slow\n"},
                        {"sh", "-c", "read x; [ $x = fail ] && exit 3; sleep 2; echo STALE"}),
               fanout::TaskError);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(pool.map("identity", {"a\n", "b\n"}), (std::vector<std::string>{"a\n", "b\n"}));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2))
      << "the next call waited for the cancelled attempt";
  EXPECT_EQ(WorkerPidOf(pool), first);
}

}  // namespace

int main(int argc, char** argv) {
  fanout::init(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
