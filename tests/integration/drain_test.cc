// Graceful drain (issue #20): a worker sent SIGTERM (Slurm's signal before a time limit, on
// preemption or scancel) takes no new chunks, hands back the ones it has not started,
// finishes or hands back the running ones within --drain-grace, and says goodbye. The
// coordinator re-runs handed-back chunks elsewhere without charging a retry or a crash,
// and reports the worker as left, not lost (PROTOCOL.md, LEAVE).
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;
using Json = nlohmann::json;

class DrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    endpoint_ = "ipc://" + dir_.File("c.sock");
    for (int i = 0; i < 32; ++i) input_ += "line " + std::to_string(i) + "\n";
    WriteFile(dir_.File("in"), input_);
  }
  // A coordinator for remote workers only; each attempt first notes its worker's name in
  // `started`, then runs `command`.
  std::unique_ptr<Child> Coordinator(const std::string& command,
                                     std::vector<std::string> extra = {}) {
    std::string script = "echo \"$FANOUT_WORKER\" >> " + dir_.File("started") + "; " + command;
    std::vector<std::string> argv = {FanoutBin(),    "run",
                                     "--listen",     endpoint_,
                                     "-j",           "0",
                                     "--chunks",     "16",
                                     "-i",           dir_.File("in"),
                                     "-o",           dir_.File("out"),
                                     "--stats-json", dir_.File("s.json")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    for (std::string arg : {"exec", "--", "sh", "-c"}) argv.push_back(arg);
    argv.push_back(script);
    return std::make_unique<Child>(argv, "", dir_.File("err"));
  }
  std::unique_ptr<Child> Worker(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {WorkerBin(), "--connect", endpoint_, "--name",      name,
                                     "--once",    "--slots",   "2",       "--log-level", "info"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<Child>(argv, "", dir_.File(name + ".err"));
  }
  // Waits until worker `name` started an attempt.
  void WaitForStart(const std::string& name) {
    ASSERT_TRUE(WaitForText(dir_.File("started"), name + "\n", milliseconds(20000)))
        << ReadFile(dir_.File("err"));
  }
  // The pids worker a's commands noted in `pids` (each `echo $$` before it execs), once
  // there are `n` of them, or those there are after 10 s.
  std::vector<pid_t> WaitForPids(size_t n) {
    std::vector<pid_t> commands;
    auto deadline = std::chrono::steady_clock::now() + milliseconds(10000);
    while (commands.size() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(5));
      commands.clear();
      std::istringstream pids(ReadFile(dir_.File("pids")));
      for (pid_t pid; pids >> pid;) commands.push_back(pid);
    }
    return commands;
  }
  // The job succeeded byte-identical, charged nothing, and worker "a" left.
  void ExpectCompletedWithALeft(Child& coordinator) {
    ASSERT_EQ(coordinator.Wait(milliseconds(40000)), 0) << ReadFile(dir_.File("err"));
    std::string err = ReadFile(dir_.File("err"));
    EXPECT_EQ(ReadFile(dir_.File("out")), input_);
    Json stats = Json::parse(ReadFile(dir_.File("s.json")));
    EXPECT_EQ(stats["retries"], 0) << stats.dump();
    EXPECT_EQ(stats["timeouts"], 0) << stats.dump();
    EXPECT_EQ(stats["workers_lost"], 0) << stats.dump();
    EXPECT_EQ(stats["workers_left"], 1) << stats.dump();
    EXPECT_TRUE(stats["failed_chunks"].empty()) << stats.dump();
    bool a_seen = false;
    for (const Json& w : stats["per_worker"]) {
      EXPECT_EQ(w["failures"], 0) << w.dump();
      if (w["id"] == "a") {
        a_seen = true;
        EXPECT_TRUE(w["left"].get<bool>()) << w.dump();
      } else {
        EXPECT_FALSE(w["left"].get<bool>()) << w.dump();
      }
    }
    EXPECT_TRUE(a_seen) << stats.dump();
    EXPECT_NE(err.find("workers_lost=0 workers_left=1"), std::string::npos) << err;
    EXPECT_EQ(err.find(" lost"), std::string::npos) << err;  // no "worker a lost"
  }

  TempDir dir_;
  std::string endpoint_;
  std::string input_;
};

TEST_F(DrainTest, SigtermedWorkerFinishesItsRunningChunksAndLeaves) {
  auto coordinator = Coordinator("sleep 0.3; cat");
  auto a = Worker("a");
  WaitForStart("a");  // a holds running and prefetched attempts
  auto b = Worker("b");
  a->Signal(SIGTERM);
  EXPECT_EQ(a->Wait(milliseconds(20000)), 128 + SIGTERM) << ReadFile(dir_.File("a.err"));
  ExpectCompletedWithALeft(*coordinator);
  EXPECT_EQ(b->Wait(milliseconds(10000)), 0);
  std::string a_err = ReadFile(dir_.File("a.err"));
  EXPECT_NE(a_err.find("draining"), std::string::npos) << a_err;
  EXPECT_NE(a_err.find("every running attempt finished"), std::string::npos) << a_err;
  // What it ran before and during the drain counts as its work.
  Json stats = Json::parse(ReadFile(dir_.File("s.json")));
  for (const Json& w : stats["per_worker"]) {
    if (w["id"] == "a") {
      EXPECT_GE(w["chunks"].get<int>(), 1) << w.dump();
    }
  }
}

TEST_F(DrainTest, DrainPastTheGraceHandsRunningChunksBackUncharged) {
  // Worker a's attempts hang; only b's finish.
  auto coordinator = Coordinator("[ \"$FANOUT_WORKER\" = a ] && sleep 60; cat");
  auto a = Worker("a", {"--drain-grace", "300ms"});
  WaitForStart("a");
  auto b = Worker("b");
  a->Signal(SIGTERM);
  EXPECT_EQ(a->Wait(milliseconds(10000)), 128 + SIGTERM) << ReadFile(dir_.File("a.err"));
  EXPECT_NE(ReadFile(dir_.File("a.err")).find("drain grace of 300 ms passed"), std::string::npos)
      << ReadFile(dir_.File("a.err"));
  ExpectCompletedWithALeft(*coordinator);
  EXPECT_EQ(b->Wait(milliseconds(10000)), 0);
}

TEST_F(DrainTest, CommandsSignalledWithTheWorkerAreHandedBackUncharged) {
  // As Slurm does on scancel or a time limit: SIGTERM to the worker and to its commands.
  auto coordinator = Coordinator("[ \"$FANOUT_WORKER\" = a ] && { echo $$ >> " + dir_.File("pids") +
                                 "; exec sleep 60; }; cat");
  auto a = Worker("a");  // the default grace (25 s) would outlast the test's bounds
  WaitForStart("a");
  auto b = Worker("b");
  // Both of a's slots run a command that noted its pid: one started but not yet noted
  // would outlive the signals and hold a's drain for its whole grace.
  std::vector<pid_t> commands = WaitForPids(2);
  ASSERT_EQ(commands.size(), 2u);
  a->Signal(SIGTERM);
  ASSERT_TRUE(WaitForText(dir_.File("a.err"), "draining", milliseconds(10000)));
  for (pid_t pid : commands) kill(pid, SIGTERM);
  EXPECT_EQ(a->Wait(milliseconds(10000)), 128 + SIGTERM) << ReadFile(dir_.File("a.err"));
  EXPECT_NE(ReadFile(dir_.File("a.err")).find("failed while draining"), std::string::npos)
      << ReadFile(dir_.File("a.err"));
  ExpectCompletedWithALeft(*coordinator);
  EXPECT_EQ(b->Wait(milliseconds(10000)), 0);
}

TEST_F(DrainTest, CommandsSignalledJustBeforeTheWorkerAreHandedBackUncharged) {
  // Slurm signals a step's processes in turn, sometimes the commands first: the worker has
  // already reaped them when its own SIGTERM arrives. Their failures must wait for it.
  // Commands a starts once those are killed (as after Slurm's signals) finish at once.
  auto coordinator =
      Coordinator("[ \"$FANOUT_WORKER\" = a ] && [ ! -e " + dir_.File("killed") +
                  " ] && { echo $$ >> " + dir_.File("pids") + "; exec sleep 60; }; cat");
  auto a = Worker("a");
  WaitForStart("a");
  auto b = Worker("b");
  // Both of a's slots run a command.
  std::vector<pid_t> commands = WaitForPids(2);
  ASSERT_EQ(commands.size(), 2u);
  WriteFile(dir_.File("killed"), "");
  for (pid_t pid : commands) kill(pid, SIGTERM);
  // Gone from /proc once the worker reaped it: the worker has seen a command die.
  auto reaped = [&] {
    for (pid_t pid : commands) {
      if (kill(pid, 0) != 0) return true;
    }
    return false;
  };
  auto deadline = std::chrono::steady_clock::now() + milliseconds(10000);
  while (!reaped() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  ASSERT_TRUE(reaped());
  a->Signal(SIGTERM);
  EXPECT_EQ(a->Wait(milliseconds(10000)), 128 + SIGTERM) << ReadFile(dir_.File("a.err"));
  ExpectCompletedWithALeft(*coordinator);
  EXPECT_EQ(b->Wait(milliseconds(10000)), 0);
}

TEST_F(DrainTest, SecondSignalEndsTheDrainAtOnce) {
  auto coordinator = Coordinator("[ \"$FANOUT_WORKER\" = a ] && sleep 60; cat");
  auto a = Worker("a");  // the default grace (25 s) would outlast the test's bounds
  WaitForStart("a");
  auto b = Worker("b");
  a->Signal(SIGTERM);
  ASSERT_TRUE(WaitForText(dir_.File("a.err"), "draining", milliseconds(10000)));
  auto signalled = std::chrono::steady_clock::now();
  a->Signal(SIGINT);
  EXPECT_EQ(a->Wait(milliseconds(10000)), 128 + SIGINT) << ReadFile(dir_.File("a.err"));
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, milliseconds(5000));
  ExpectCompletedWithALeft(*coordinator);
  EXPECT_EQ(b->Wait(milliseconds(10000)), 0);
}

TEST_F(DrainTest, BadDrainGraceIsAUsageError) {
  RunResult r =
      fanout::testing::Run({WorkerBin(), "--connect", endpoint_, "--drain-grace", "soon"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--drain-grace"), std::string::npos) << r.err;
}

TEST_F(DrainTest, AJobWhoseLastWorkerLeftFailsAfterTheWaitTimeout) {
  auto coordinator = Coordinator("sleep 0.3; cat", {"--wait-timeout", "500ms"});
  auto a = Worker("a");
  WaitForStart("a");
  a->Signal(SIGTERM);
  EXPECT_EQ(a->Wait(milliseconds(20000)), 128 + SIGTERM) << ReadFile(dir_.File("a.err"));
  EXPECT_EQ(coordinator->Wait(milliseconds(20000)), 1) << ReadFile(dir_.File("err"));
  EXPECT_NE(ReadFile(dir_.File("err")).find("no worker left (worker a left (drained)"),
            std::string::npos)
      << ReadFile(dir_.File("err"));
  EXPECT_FALSE(FileExists(dir_.File("out")));
}

}  // namespace
}  // namespace fanout::testing
