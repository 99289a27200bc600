// Tests for WarmSpares (warm_task.h) with real warm processes: the spares start at once
// (their start-up overlaps whatever the caller does next), the kept ones serve the pool's
// next chunks without another start, and the ones not kept are killed, having run nothing.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/warm_task.h"
#include "tests/support/test_support.h"
#include "tests/support/warm_script.h"

namespace fanout {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

class WarmSparesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteFile(dir_.File("warm.py"), testing::kWarmUpperScript);
    setenv("WARM_DIR", dir_.path().c_str(), 1);  // the script's `starts` file goes there
  }

  std::vector<std::string> Args() const {
    return {"--warm", "--", "/usr/bin/python3", dir_.File("warm.py")};
  }
  // The pids of the processes started so far, in order.
  std::vector<pid_t> Starts() const {
    std::vector<pid_t> pids;
    std::istringstream in(testing::ReadFile(dir_.File("starts")));
    for (std::string line; std::getline(in, line);) pids.push_back(std::stoi(line));
    return pids;
  }
  template <typename Pred>
  static bool WaitFor(Pred done) {
    auto deadline = Clock::now() + seconds(30);
    while (!done()) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }

  testing::TempDir dir_;
};

TEST_F(WarmSparesTest, KeptSparesServeTheNextChunksAndTheOthersAreKilled) {
  // A worker name of its own: the test's processes are alone under their pool key.
  const std::string worker = "spares-test-" + std::to_string(getpid());
  const std::vector<std::string> args = Args();
  std::vector<pid_t> spare_pids;
  {
    WarmSpares spares(args, worker, 3);
    ASSERT_EQ(spares.size(), 3u);
    // Started without a chunk sent: each runs its start-up on its own.
    ASSERT_TRUE(WaitFor([&] { return Starts().size() == 3; }));
    spare_pids = Starts();
    spares.Keep(1);
    EXPECT_EQ(spares.size(), 2u);
  }
  // Two were not kept: killed, though they were alive and idle; the kept one lives on.
  auto gone = [&] {
    size_t n = 0;
    for (pid_t pid : spare_pids) n += testing::Running(pid) ? 0 : 1;
    return n;
  };
  EXPECT_TRUE(WaitFor([&] { return gone() == 2; })) << gone() << " of 3 gone";

  // The kept one serves two chunks in a row: no further start.
  TaskDef warm = WithWarmForm(TaskDef{});
  for (uint64_t id = 0; id < 2; ++id) {
    ChunkInput chunk;
    chunk.data = "abc\n";
    chunk.chunk_id = id;
    chunk.attempt = 1;
    chunk.worker_id = worker;
    std::string out;
    Status s = warm.run(chunk, args, out, {});
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(out, "ABC\n");
  }
  EXPECT_EQ(Starts().size(), 3u);
}

TEST_F(WarmSparesTest, ACommandThatIsNotWarmStartsNothing) {
  WarmSpares spares(std::vector<std::string>{"--", "cat"}, "spares-test", 2);
  EXPECT_EQ(spares.size(), 0u);
  spares.Keep(2);  // nothing to keep: no effect
  EXPECT_EQ(spares.size(), 0u);
}

}  // namespace
}  // namespace fanout
