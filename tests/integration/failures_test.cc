// Workers that fail independently (issue #3), with the real binaries: workers killed or
// stopped mid-chunk, poison chunks, timeouts, and running out of workers. Each test
// checks the output against the input (or the expected subset) byte for byte.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string Lines(int n, const std::string& prefix = "row ") {
  std::string s;
  for (int i = 0; i < n; ++i) s += prefix + std::to_string(i) + "\n";
  return s;
}

// The first "started-PID" marker written into `dir` by a chunk's command, waiting up to
// `timeout` for one to appear. The pid is the worker running that chunk.
std::optional<pid_t> WaitForStartedChunk(const std::string& dir, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (DIR* d = opendir(dir.c_str())) {
      std::optional<pid_t> found;
      while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name.rfind("started-", 0) == 0) found = std::stoi(name.substr(8));
      }
      closedir(d);
      if (found) return found;
    }
    std::this_thread::sleep_for(milliseconds(5));  // polling the file system, with deadline
  }
  return std::nullopt;
}

RunOptions WithTimeout(milliseconds timeout, const std::string& input = "") {
  RunOptions options;
  options.timeout = timeout;
  options.stdin_data = input;
  return options;
}

class FailuresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    markers_ = dir_.File("markers");
    ASSERT_EQ(mkdir(markers_.c_str(), 0755), 0);
    link_ = dir_.File("fanout-worker-under-test");
    ASSERT_EQ(symlink(WorkerBin().c_str(), link_.c_str()), 0);
  }
  void TearDown() override {
    EXPECT_TRUE(ProcessesMatching(link_ + " --connect").empty()) << "worker left";
  }

  std::vector<std::string> Fanout(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {FanoutBin(), "run", "--worker-bin", link_};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  // Starts a processes-mode job whose chunks each mark their start (with the worker's pid)
  // and then take `chunk_seconds`, over `input`; output and stderr go to files.
  std::unique_ptr<Child> StartMarkedJob(const std::string& input, const std::string& chunk_seconds,
                                        std::vector<std::string> extra) {
    WriteFile(dir_.File("in"), input);
    std::vector<std::string> args = {
        "-j", "3", "--chunks", "12", "-i", dir_.File("in"), "-o", dir_.File("out")};
    args.insert(args.end(), extra.begin(), extra.end());
    for (const char* a : {"exec", "--", "sh", "-c"}) args.push_back(a);
    args.push_back("touch \"$0/started-$PPID\"; sleep " + chunk_seconds + "; cat");
    args.push_back(markers_);
    return std::make_unique<Child>(Fanout(args), "", dir_.File("err"));
  }

  TempDir dir_;
  std::string markers_;
  std::string link_;
};

TEST_F(FailuresTest, WorkerKilledMidChunkCostsARetryNotTheJob) {
  std::string input = Lines(120);
  auto job = StartMarkedJob(input, "0.3", {});
  auto victim = WaitForStartedChunk(markers_, milliseconds(10000));
  ASSERT_TRUE(victim);
  ASSERT_EQ(kill(*victim, SIGKILL), 0);
  ASSERT_EQ(job->Wait(milliseconds(30000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), input);
  std::string err = ReadFile(dir_.File("err"));
  EXPECT_NE(err.find("workers_lost=1"), std::string::npos) << err;
  EXPECT_NE(err.find("respawns=1"), std::string::npos) << err;
}

// The killed worker's exec command (and that command's own child) must not live on: the
// coordinator adopts such orphans and kills their process group.
TEST_F(FailuresTest, WorkerKilledMidChunkLeavesNoOrphanedCommand) {
  std::string input = Lines(30);
  WriteFile(dir_.File("in"), input);
  std::string sleeper = "sleep 61.7" + std::to_string(getpid() % 1000);
  auto job = std::make_unique<Child>(
      Fanout({"--mode", "processes", "-j", "2", "--chunks", "4", "-i", dir_.File("in"), "-o",
              dir_.File("out"), "exec", "--", "sh", "-c",
              "if mkdir \"$0/first\" 2>/dev/null; then touch \"$0/started-$PPID\"; " + sleeper +
                  "; fi; cat",
              markers_}),
      "", dir_.File("err"));
  auto victim = WaitForStartedChunk(markers_, milliseconds(10000));
  ASSERT_TRUE(victim);
  auto deadline = Clock::now() + milliseconds(10000);
  while (ProcessesMatching(sleeper).empty() && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));  // the command starts its sleep
  }
  ASSERT_FALSE(ProcessesMatching(sleeper).empty());
  ASSERT_EQ(kill(*victim, SIGKILL), 0);
  ASSERT_EQ(job->Wait(milliseconds(30000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), input);
  EXPECT_TRUE(ProcessesMatching(sleeper).empty()) << "the dead worker's command lives on";
}

TEST_F(FailuresTest, StoppedWorkerIsDetectedByHeartbeatAndReplaced) {
  std::string input = Lines(120);
  auto job = StartMarkedJob(input, "0.3", {"--heartbeat", "100ms", "--liveness", "3"});
  auto victim = WaitForStartedChunk(markers_, milliseconds(10000));
  ASSERT_TRUE(victim);
  ASSERT_EQ(kill(*victim, SIGSTOP), 0);
  int code = job->Wait(milliseconds(30000));
  kill(*victim, SIGCONT);  // in case it was not replaced (the test then fails anyway)
  ASSERT_EQ(code, 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), input);
  std::string err = ReadFile(dir_.File("err"));
  EXPECT_NE(err.find("presumed hung"), std::string::npos) << err;
  EXPECT_NE(err.find("workers_lost=1"), std::string::npos) << err;
}

// A command that kills the worker running it whenever its chunk holds POISON.
const char* kKillsWorkerOnPoison =
    "d=$(cat); case \"$d\" in *POISON*) kill -9 $PPID; sleep 5;; esac; printf '%s\\n' \"$d\"";

TEST_F(FailuresTest, PoisonChunkFailsTheJobNamingChunkAndAttempts) {
  std::string input = Lines(10) + "POISON\n" + Lines(9, "more ");  // 20 lines, 4 chunks of 5
  WriteFile(dir_.File("in"), input);
  RunResult r = fanout::testing::Run(
      Fanout({"-j", "2", "--chunks", "4", "-i", dir_.File("in"), "-o", dir_.File("out"), "exec",
              "--", "sh", "-c", kKillsWorkerOnPoison}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("chunk 2 (lines 11-15) failed on worker"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("5 workers lost under it, --crash-limit 5"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("killed by signal 9"), std::string::npos) << r.err;
  EXPECT_FALSE(FileExists(dir_.File("out")));
}

TEST_F(FailuresTest, PoisonChunkWithKeepGoingWritesEverythingElseAndExitsThree) {
  std::string before = Lines(10), poison = "POISON\n" + Lines(4, "bad "), after = Lines(5, "z ");
  WriteFile(dir_.File("in"), before + poison + after);
  RunResult r = fanout::testing::Run(
      Fanout({"-j", "2", "--chunks", "4", "--keep-going", "-i", dir_.File("in"), "-o",
              dir_.File("out"), "exec", "--", "sh", "-c", kKillsWorkerOnPoison}));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(ReadFile(dir_.File("out")), before + after);
  EXPECT_NE(r.err.find("1 of 4 chunks failed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("chunk 2 (lines 11-15)"), std::string::npos) << r.err;
}

TEST_F(FailuresTest, TimeoutKillsTheAttemptAndTheRetrySucceeds) {
  std::string input = Lines(40);
  WriteFile(dir_.File("in"), input);
  // Chunk 1's first attempt hangs; the retry (FANOUT_ATTEMPT=2) is instant.
  auto start = Clock::now();
  RunResult r = fanout::testing::Run(
      Fanout({"-j", "2", "--chunks", "4", "--timeout", "700ms", "--retries", "1", "-i",
              dir_.File("in"), "-o", dir_.File("out"), "exec", "--", "sh", "-c",
              "[ \"$FANOUT_CHUNK$FANOUT_ATTEMPT\" = 11 ] && sleep 60; cat"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(ReadFile(dir_.File("out")), input);
  EXPECT_NE(r.err.find("timeouts=1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("workers_lost=0"), std::string::npos) << r.err;
}

TEST_F(FailuresTest, RelativeTimeoutIsAMultipleOfTheMedianChunkTime) {
  std::string input = Lines(40);
  WriteFile(dir_.File("in"), input);
  auto start = Clock::now();
  RunResult r = fanout::testing::Run(
      Fanout({"-j", "2", "--chunks", "8", "--timeout", "300%", "--retries", "1", "-i",
              dir_.File("in"), "-o", dir_.File("out"), "exec", "--", "sh", "-c",
              "[ \"$FANOUT_CHUNK$FANOUT_ATTEMPT\" = 51 ] && sleep 60; sleep 0.2; cat"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(ReadFile(dir_.File("out")), input);
  EXPECT_EQ(r.err.find("timeouts=0"), std::string::npos) << r.err;
}

TEST_F(FailuresTest, SpeculationReissuesAStragglerAndTheFirstResultWins) {
  std::string input = Lines(60);
  WriteFile(dir_.File("in"), input);
  auto start = Clock::now();
  // Chunk 5's first attempt would take a minute; its speculative copy is instant.
  RunResult r = fanout::testing::Run(Fanout(
      {"-j", "2", "--chunks", "6", "--speculate", "-i", dir_.File("in"), "-o", dir_.File("out"),
       "exec", "--", "sh", "-c", "[ \"$FANOUT_CHUNK$FANOUT_ATTEMPT\" = 51 ] && sleep 60; cat"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(ReadFile(dir_.File("out")), input);
  EXPECT_NE(r.err.find("speculated=1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("retries=0"), std::string::npos) << r.err;
}

TEST_F(FailuresTest, ChunkTimingOutEveryAttemptIsReported) {
  WriteFile(dir_.File("in"), Lines(8));
  RunResult r =
      fanout::testing::Run(Fanout({"-j", "2", "--chunks", "2", "--timeout", "300ms", "--retries",
                                   "1", "-i", dir_.File("in"), "-o", dir_.File("out"), "exec", "--",
                                   "sh", "-c", "[ \"$FANOUT_CHUNK\" = 1 ] && sleep 60; cat"}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("chunk 1 (lines 5-8)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("timed out"), std::string::npos) << r.err;
}

TEST_F(FailuresTest, AllWorkersGoneFailsClearlyInsteadOfHanging) {
  WriteFile(dir_.File("in"), Lines(8));
  RunResult r =
      fanout::testing::Run(Fanout({"-j", "2", "--chunks", "4", "--max-respawns", "1", "--retries",
                                   "10", "-i", dir_.File("in"), "-o", dir_.File("out"), "exec",
                                   "--", "sh", "-c", "kill -9 $PPID; sleep 5"}),
                           WithTimeout(milliseconds(20000)));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("no worker left"), std::string::npos) << r.err;
  EXPECT_FALSE(FileExists(dir_.File("out")));
}

TEST_F(FailuresTest, WorkerBinaryThatCannotRunFailsClearly) {
  RunResult r = fanout::testing::Run(
      {FanoutBin(), "run", "--worker-bin", "/bin/false", "-j", "2", "identity"},
      WithTimeout(milliseconds(20000), "x\n"));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("no worker left"), std::string::npos) << r.err;
}

TEST_F(FailuresTest, WorkersOutliveACoordinatorAndServeItsReplacement) {
  std::string endpoint = "ipc://" + dir_.File("coordinator.sock");
  std::string input = Lines(60);
  WriteFile(dir_.File("in"), input);
  Child worker(
      {link_, "--connect", endpoint, "--name", "survivor", "--heartbeat", "100ms", "--once"});
  auto job_args = [&](const std::string& out) {
    return Fanout({"--listen", endpoint, "--heartbeat", "100ms", "--liveness", "3", "--chunks", "6",
                   "-i", dir_.File("in"), "-o", out, "exec", "--", "sh", "-c",
                   "touch \"$0/started-$PPID\"; sleep 0.3; cat", markers_});
  };
  {
    Child first(job_args(dir_.File("out1")), "", dir_.File("err1"));
    ASSERT_TRUE(WaitForStartedChunk(markers_, milliseconds(10000)));
    first.Signal(SIGKILL);  // the coordinator dies mid-job; the worker must not
    EXPECT_EQ(first.Wait(milliseconds(5000)), 128 + SIGKILL);
  }
  EXPECT_EQ(ProcessesMatching(link_ + " --connect").size(), 1u);
  RunResult second = fanout::testing::Run(job_args(dir_.File("out2")));
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(ReadFile(dir_.File("out2")), input);
  EXPECT_EQ(worker.Wait(milliseconds(5000)), 0);  // SHUTDOWN at the end of the second job
}

}  // namespace
}  // namespace fanout::testing
