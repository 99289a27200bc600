// Cancellation through the public headers: Pool::cancel() from another thread, ~Pool with
// submitted chunks and an early-destroyed CompletionStream each stop long `exec` commands
// promptly in every local mode, the unfinished chunks end with fanout::Cancelled, no
// command is left running, and the pool works on. Each command writes its pid to a file
// before it becomes `sleep`, so the test can wait for it to start and check that it died.
// The binary is its own worker in processes mode (main calls fanout::init).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "fanout/fanout.h"
#include "print_pool_mode.h"

namespace {

using fanout::Pool;
using fanout::PoolMode;
using fanout::PoolOptions;
using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

// A command runs for kSleep; a cancelled call must be back well within kPrompt. Loose on
// purpose: a loaded machine is slow, but nowhere near kSleep.
constexpr int kSleepSeconds = 100;
constexpr auto kPrompt = seconds(5);

// A private directory, removed with its files.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "fanout-cancel-XXXXXX");
    path_ = mkdtemp(pattern.data()) ? pattern : "";
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs a chunk as `sleep kSleepSeconds` after appending its pid to `pid_file`, unless the
// chunk's first line is "quick" (then it prints "done").
std::vector<std::string> SleepCommand(const std::string& pid_file) {
  return {"sh", "-c",
          "read x; if [ \"$x\" = quick ]; then echo done; exit 0; fi; echo $$ >> '" + pid_file +
              "'; exec sleep " + std::to_string(kSleepSeconds)};
}

std::vector<pid_t> Pids(const std::string& pid_file) {
  std::vector<pid_t> pids;
  std::ifstream in(pid_file);
  for (pid_t pid; in >> pid;) pids.push_back(pid);
  return pids;
}

bool WaitUntil(const std::function<bool()>& done, Clock::duration limit = seconds(30)) {
  auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// Whether `pid` is no longer running: gone, or a zombie nobody reaped yet.
bool Dead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  size_t paren = line.rfind(')');
  return paren == std::string::npos || line.substr(paren + 2, 1) == "Z";
}

// Every command that started has died (the test waits a little: a killed process takes a
// moment to be reaped).
void ExpectAllDead(const std::string& pid_file) {
  for (pid_t pid : Pids(pid_file)) {
    EXPECT_TRUE(WaitUntil([&] { return Dead(pid); }, seconds(5)))
        << "command pid " << pid << " still runs after the cancel";
  }
}

// The pool runs a normal call after a cancel.
void ExpectWorksOn(Pool& pool) {
  EXPECT_EQ(pool.map("exec", {"a\n", "b\n"}, {"cat"}), (std::vector<std::string>{"a\n", "b\n"}));
}

std::vector<std::string> SlowChunks(int n) { return std::vector<std::string>(n, "slow\n"); }

PoolOptions Options(PoolMode mode) { return PoolOptions().mode(mode).workers(2); }

// How many commands run at once in `mode` with Options().
size_t Running(PoolMode mode) { return mode == PoolMode::kSerial ? 1 : 2; }

// How many of a loop of submits are sure to run at once in `mode`: in processes mode the
// first submitted job may hold just the first chunk (if the loop was slower than the
// pool's coalescing wait), and later jobs wait for it (calls take turns on the workers).
size_t SubmittedRunning(PoolMode mode) { return mode == PoolMode::kProcesses ? 1 : Running(mode); }

class CancelTest : public ::testing::TestWithParam<PoolMode> {};

TEST_P(CancelTest, CancelFromAnotherThreadStopsAMapPromptly) {
  TempDir dir;
  std::string pid_file = dir.path() + "/pids";
  Pool pool(Options(GetParam()));
  std::optional<Clock::time_point> cancelled_at;
  std::thread canceller([&] {
    // Once the commands run (or after a while, so that a failure cannot hang the test).
    EXPECT_TRUE(WaitUntil([&] { return Pids(pid_file).size() >= Running(GetParam()); }));
    cancelled_at = Clock::now();
    pool.cancel();
  });
  try {
    pool.map("exec", SlowChunks(4), SleepCommand(pid_file));
    ADD_FAILURE() << "no exception";
  } catch (const fanout::Cancelled& e) {
    EXPECT_NE(std::string(e.what()).find("cancelled"), std::string::npos) << e.what();
  }
  auto returned = Clock::now();
  canceller.join();
  ASSERT_TRUE(cancelled_at);
  EXPECT_LT(returned - *cancelled_at, kPrompt);
  EXPECT_EQ(Pids(pid_file).size(), Running(GetParam())) << "a chunk started after the cancel";
  ExpectAllDead(pid_file);
  ExpectWorksOn(pool);
}

TEST_P(CancelTest, DestroyingAPoolCancelsItsSubmittedChunks) {
  TempDir dir;
  std::string pid_file = dir.path() + "/pids";
  std::vector<std::future<std::string>> futures;
  std::future<std::string> queued;
  Clock::time_point destroying;
  {
    Pool pool(Options(GetParam()));
    for (int i = 0; i < 4; ++i)
      futures.push_back(pool.submit("exec", "slow\n", SleepCommand(pid_file)));
    ASSERT_TRUE(WaitUntil([&] { return Pids(pid_file).size() >= SubmittedRunning(GetParam()); }));
    // Another task's chunk waits in the queue while the first job runs.
    queued = pool.submit("exec", "x\n", {"cat"});
    destroying = Clock::now();
  }
  EXPECT_LT(Clock::now() - destroying, kPrompt);
  for (auto& f : futures) EXPECT_THROW(f.get(), fanout::Cancelled);
  EXPECT_THROW(queued.get(), fanout::Cancelled);
  ExpectAllDead(pid_file);
}

TEST_P(CancelTest, DestroyingACompletionStreamEarlyCancelsTheRest) {
  TempDir dir;
  std::string pid_file = dir.path() + "/pids";
  Pool pool(Options(GetParam()));
  std::vector<std::string> chunks = {"quick\n", "slow\n", "slow\n", "slow\n"};
  Clock::time_point destroying;
  {
    fanout::CompletionStream stream = pool.as_completed("exec", chunks, SleepCommand(pid_file));
    std::optional<fanout::Completed> first = stream.next();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->index, 0u);
    EXPECT_EQ(first->get(), "done\n");
    ASSERT_TRUE(WaitUntil([&] { return !Pids(pid_file).empty(); }));
    destroying = Clock::now();
  }
  EXPECT_LT(Clock::now() - destroying, kPrompt);
  ExpectAllDead(pid_file);
  ExpectWorksOn(pool);
}

TEST_P(CancelTest, CancelEndsTheStreamsOfThePoolWithCancelled) {
  TempDir dir;
  std::string pid_file = dir.path() + "/pids";
  Pool pool(Options(GetParam()));
  fanout::CompletionStream stream =
      pool.as_completed("exec", SlowChunks(3), SleepCommand(pid_file));
  ASSERT_TRUE(WaitUntil([&] { return !Pids(pid_file).empty(); }));
  auto cancelled_at = Clock::now();
  pool.cancel();
  size_t seen = 0;
  for (const fanout::Completed& done : stream) {
    ++seen;
    EXPECT_THROW(done.get(), fanout::Cancelled) << "chunk " << done.index;
  }
  EXPECT_LT(Clock::now() - cancelled_at, kPrompt);
  EXPECT_EQ(seen, 3u);
  ExpectAllDead(pid_file);
  ExpectWorksOn(pool);
}

// Threads mode with one of its 2 threads held by a slow submitted chunk (its command is
// running when a test starts).
class ThreadsSubmitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    slow_ = pool_->submit("exec", "slow\n", SleepCommand(pid_file_));
    ASSERT_TRUE(WaitUntil([&] { return Pids(pid_file_).size() == 1; }));
  }
  // Cancels the pool: the slow chunk ends with Cancelled and no command is left running.
  void ExpectSlowCancelled() {
    pool_->cancel();
    EXPECT_THROW(slow_.get(), fanout::Cancelled);
    ExpectAllDead(pid_file_);
  }

  TempDir dir_;
  const std::string pid_file_ = dir_.path() + "/pids";
  std::optional<Pool> pool_{std::in_place, Options(PoolMode::kThreads)};  // reset() destroys
  std::future<std::string> slow_;
};

// A chunk submitted while an earlier submitted chunk runs starts at once on a free thread
// (as with concurrent.futures), instead of waiting for the earlier one's job to end.
TEST_F(ThreadsSubmitTest, ASubmitWhileAnotherRunsStartsOnAFreeThread) {
  std::vector<std::future<std::string>> futures;
  futures.push_back(pool_->submit("exec", "slow\n", SleepCommand(pid_file_)));
  EXPECT_TRUE(WaitUntil([&] { return Pids(pid_file_).size() == 2; }))
      << "the second submit waited for the first";
  // Both threads are busy now: a third waits for one of them.
  futures.push_back(pool_->submit("exec", "quick\n", SleepCommand(pid_file_)));
  pool_.reset();
  EXPECT_THROW(slow_.get(), fanout::Cancelled);
  for (auto& f : futures) EXPECT_THROW(f.get(), fanout::Cancelled);
  ExpectAllDead(pid_file_);
}

// Submits spaced out in time use the free thread: with 2 threads, 3 quick
// chunks submitted one after another all finish beside one slow chunk.
TEST_F(ThreadsSubmitTest, ASlowSubmittedChunkLeavesTheOtherThreadToLaterSubmits) {
  std::vector<std::future<std::string>> quick;
  for (int i = 0; i < 3; ++i) {
    quick.push_back(pool_->submit("exec", "quick\n", SleepCommand(pid_file_)));
    ASSERT_EQ(quick.back().wait_for(seconds(30)), std::future_status::ready)
        << "submit " << i << " waited for the slow chunk";
    EXPECT_EQ(quick.back().get(), "done\n");
  }
  EXPECT_EQ(Pids(pid_file_).size(), 1u);
  ExpectSlowCancelled();
}

// Many submits from two threads while one thread is held by a slow chunk: every one comes
// back once, with its own chunk's result (runs under ThreadSanitizer in scripts/test).
TEST_F(ThreadsSubmitTest, ManySubmitsFromTwoThreadsBesideASlowChunkEachComeBackOnce) {
  constexpr int kEach = 200;
  std::vector<std::future<std::string>> futures[2];
  {
    std::jthread a([&] {
      for (int i = 0; i < kEach; ++i)
        futures[0].push_back(pool_->submit("identity", "a" + std::to_string(i) + "\n"));
    });
    std::jthread b([&] {
      for (int i = 0; i < kEach; ++i)
        futures[1].push_back(pool_->submit("identity", "b" + std::to_string(i) + "\n"));
    });
  }
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < kEach; ++i) {
      ASSERT_EQ(futures[t][i].wait_for(seconds(30)), std::future_status::ready) << t << " " << i;
      EXPECT_EQ(futures[t][i].get(), std::string(1, "ab"[t]) + std::to_string(i) + "\n");
    }
  }
  ExpectSlowCancelled();
}

INSTANTIATE_TEST_SUITE_P(Modes, CancelTest,
                         ::testing::Values(PoolMode::kSerial, PoolMode::kThreads,
                                           PoolMode::kProcesses),
                         fanout::LocalModeTestName);

}  // namespace

int main(int argc, char** argv) {
  fanout::init(argc, argv);  // a copy started as a worker serves and exits here
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
