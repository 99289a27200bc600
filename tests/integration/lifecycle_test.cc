// Lifecycle (issue #14, items 11 and 13): nothing outlives the coordinator (kill -9,
// SIGHUP), the next run cleans up what a killed run left, background grandchildren of
// `exec` do not leak, and waits that nothing can end fail with a reason instead of hanging.
// (Item 14, many workers on a busy machine: busy_machine_test.cc.)
// FANOUT_TEST_BIN_DIR, if set, replaces the built binaries (to run these against another
// build, e.g. the original code).
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Waits up to `timeout` for `done()`, checking every 10 ms; returns its last value.
template <typename F>
bool WaitUntil(F done, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

// Entries of `dir` whose name starts with `prefix`.
std::vector<std::string> Entries(const std::string& dir, const std::string& prefix = "") {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.starts_with(prefix)) names.push_back(name);
  }
  return names;
}

// The pids the commands wrote into `dir` (files pid-*).
std::vector<pid_t> CommandPids(const std::string& dir) {
  std::vector<pid_t> pids;
  for (const std::string& name : Entries(dir, "pid-")) {
    pid_t pid = static_cast<pid_t>(std::atoi(ReadFile(dir + "/" + name).c_str()));
    if (pid > 0) pids.push_back(pid);
  }
  return pids;
}

// Runs argv to its end (killed after `timeout`); `env` adds NAME=VALUE entries.
RunResult RunFor(const std::vector<std::string>& argv, milliseconds timeout,
                 std::vector<std::string> env = {}) {
  RunOptions options;
  options.timeout = timeout;
  options.env = std::move(env);
  return fanout::testing::Run(argv, options);
}

// "run --mode MODE" and, for processes mode, the worker binary to start.
std::vector<std::string> RunMode(const std::string& mode) {
  std::vector<std::string> argv = {FanoutBin(), "run", "--mode", mode};
  if (mode == "processes") argv.insert(argv.end(), {"--worker-bin", WorkerBin()});
  return argv;
}

// `head` followed by `tail`.
std::vector<std::string> Cat(std::vector<std::string> head, const std::vector<std::string>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

std::string Lines(int n) {
  std::string text;
  for (int i = 1; i <= n; ++i) text += std::to_string(i) + "\n";
  return text;
}

// A job of `chunks` chunks whose commands write their pid to DIR/pid-CHUNK and then block:
// `sleeper` runs in place of the chunk's shell (exec), or with `grandchild` as the shell's
// child (which the parent-death signal of the command itself does not reach).
std::vector<std::string> BlockingJob(const TempDir& dir, const std::string& mode, int chunks,
                                     const std::string& sleeper, bool grandchild = false) {
  WriteFile(dir.File("in"), Lines(chunks));
  return Cat(
      {"/usr/bin/env", "TMPDIR=" + dir.File("tmp")},
      Cat(RunMode(mode), {"-j", std::to_string(chunks), "--chunks", std::to_string(chunks), "-i",
                          dir.File("in"), "-o", dir.File("out/result"), "exec", "--", "sh", "-c",
                          "echo $$ > \"$0/pid-$FANOUT_CHUNK\"; " +
                              std::string(grandchild ? "" : "exec ") + sleeper + "; cat",
                          dir.File("pids")}));
}

class LifecycleTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    for (const char* sub : {"pids", "tmp", "out"}) {
      ASSERT_EQ(mkdir(dir_.File(sub).c_str(), 0700), 0);
    }
  }
  // Starts the blocking job and waits until all its commands run.
  void StartBlocking(std::unique_ptr<Child>& job, const std::string& sleeper, int chunks = 2,
                     bool grandchild = false) {
    std::string mode = GetParam();
    job = std::make_unique<Child>(BlockingJob(dir_, mode, chunks, sleeper, grandchild), "",
                                  dir_.File("err"));
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto pids = CommandPids(dir_.File("pids"));
          if (pids.size() < static_cast<size_t>(chunks)) return false;
          for (pid_t p : pids) {
            if (!ProcessesMatching(sleeper).empty() && Running(p)) continue;
            return false;
          }
          return true;
        },
        milliseconds(20000)))
        << "the commands did not start: " << ReadFile(dir_.File("err"));
  }
  // Fails for every command process still running `timeout` from now.
  void ExpectCommandsGone(const std::string& sleeper, milliseconds timeout) {
    WaitUntil([&] { return ProcessesMatching(sleeper).empty(); }, timeout);
    for (pid_t p : ProcessesMatching(sleeper)) {
      ADD_FAILURE() << "a command outlived the coordinator: pid " << p;
      kill(p, SIGKILL);
    }
  }
  TempDir dir_;
};

TEST_P(LifecycleTest, CoordinatorKill9LeavesNoCommandRunning) {
  std::string sleeper = "sleep 59.1" + std::to_string(GetParam().size());
  std::unique_ptr<Child> job;
  ASSERT_NO_FATAL_FAILURE(StartBlocking(job, sleeper));
  job->Signal(SIGKILL);
  EXPECT_EQ(job->Wait(milliseconds(5000)), 128 + SIGKILL);
  ExpectCommandsGone(sleeper, milliseconds(10000));
  EXPECT_TRUE(WaitUntil(
      [&] {
        return ProcessesMatching(WorkerBin() + " --connect ipc://" + dir_.File("tmp")).empty();
      },
      milliseconds(10000)))
      << "a worker outlived the coordinator";
}

// The shell of `sh -c 'sleep ...; cat'` dies with the coordinator (its parent-death
// signal), but its `sleep` would not: the coordinator's group guard kills the group.
TEST_P(LifecycleTest, CoordinatorKill9LeavesNoGrandchildRunning) {
  std::string sleeper = "sleep 59.5" + std::to_string(GetParam().size());
  std::unique_ptr<Child> job;
  ASSERT_NO_FATAL_FAILURE(StartBlocking(job, sleeper, 2, /*grandchild=*/true));
  std::vector<pid_t> guards;  // this job's guard (other tests may run guards of their own)
  for (pid_t p : ProcessesMatching("fanout: group guard")) {
    if (ParentOf(p) == job->pid()) guards.push_back(p);
  }
  EXPECT_EQ(guards.size(), 1u);
  job->Signal(SIGKILL);
  EXPECT_EQ(job->Wait(milliseconds(5000)), 128 + SIGKILL);
  ExpectCommandsGone(sleeper, milliseconds(10000));
  for (pid_t g : guards) {
    EXPECT_TRUE(WaitUntil([&] { return !Running(g); }, milliseconds(10000)))
        << "the group guard outlived its work";
  }
}

TEST_P(LifecycleTest, SighupStopsTheJobLikeSigterm) {
  std::string sleeper = "sleep 59.2" + std::to_string(GetParam().size());
  std::unique_ptr<Child> job;
  ASSERT_NO_FATAL_FAILURE(StartBlocking(job, sleeper));
  job->Signal(SIGHUP);
  EXPECT_EQ(job->Wait(milliseconds(10000)), 130) << ReadFile(dir_.File("err"));
  EXPECT_NE(ReadFile(dir_.File("err")).find("interrupted by SIGHUP"), std::string::npos)
      << ReadFile(dir_.File("err"));
  EXPECT_TRUE(Entries(dir_.File("out")).empty());
  ExpectCommandsGone(sleeper, milliseconds(5000));
}

TEST_P(LifecycleTest, NextRunRemovesWhatAKilledRunLeft) {
  std::string sleeper = "sleep 59.3" + std::to_string(GetParam().size());
  std::unique_ptr<Child> job;
  ASSERT_NO_FATAL_FAILURE(StartBlocking(job, sleeper));
  auto dead_temp = Entries(dir_.File("out"), ".result.fanout-");
  ASSERT_EQ(dead_temp.size(), 1u);
  auto dead_dir = Entries(dir_.File("tmp"), "fanout-");
  ASSERT_EQ(dead_dir.size(), GetParam() == "processes" ? 1u : 0u);
  job->Signal(SIGKILL);
  EXPECT_EQ(job->Wait(milliseconds(5000)), 128 + SIGKILL);
  ExpectCommandsGone(sleeper, milliseconds(10000));

  // A live run's files are kept: this one (same output, same TMPDIR) blocks while the
  // next run cleans up.
  TempDir live_dir;
  ASSERT_EQ(mkdir(live_dir.File("pids").c_str(), 0700), 0);
  std::string live_sleeper = "sleep 59.4" + std::to_string(GetParam().size());
  WriteFile(live_dir.File("in"), "1\n");
  Child live({"/usr/bin/env",
              "TMPDIR=" + dir_.File("tmp"),
              FanoutBin(),
              "run",
              "--mode",
              "processes",
              "-j",
              "1",
              "--worker-bin",
              WorkerBin(),
              "-i",
              live_dir.File("in"),
              "-o",
              dir_.File("out/result"),
              "exec",
              "--",
              "sh",
              "-c",
              "echo $$ > \"$0/pid-0\"; exec " + live_sleeper,
              live_dir.File("pids")},
             "", live_dir.File("err"));
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto pids = CommandPids(live_dir.File("pids"));
        return !pids.empty() && Running(pids[0]);
      },
      milliseconds(20000)))
      << ReadFile(live_dir.File("err"));

  WriteFile(dir_.File("in2"), Lines(100));
  RunResult next = RunFor(Cat(RunMode(GetParam()), {"-j", "2", "-i", dir_.File("in2"), "-o",
                                                    dir_.File("out/result"), "exec", "--", "cat"}),
                          milliseconds(30000), {"TMPDIR=" + dir_.File("tmp")});
  EXPECT_EQ(next.exit_code, 0) << next.err;
  EXPECT_EQ(ReadFile(dir_.File("out/result")), Lines(100));
  auto temps = Entries(dir_.File("out"), ".result.fanout-");
  EXPECT_EQ(std::count(temps.begin(), temps.end(), dead_temp[0]), 0)
      << "the killed run's temporary output is left";
  EXPECT_EQ(temps.size(), 1u) << "the live run's temporary output must stay";
  auto dirs = Entries(dir_.File("tmp"), "fanout-");
  if (!dead_dir.empty()) {
    EXPECT_EQ(std::count(dirs.begin(), dirs.end(), dead_dir[0]), 0)
        << "the killed run's socket directory is left";
  }
  EXPECT_EQ(dirs.size(), 1u) << "the live run's socket directory must stay";
  live.Signal(SIGTERM);
  EXPECT_EQ(live.Wait(milliseconds(10000)), 130);
  EXPECT_TRUE(Entries(dir_.File("tmp")).empty());
}

TEST_P(LifecycleTest, BackgroundGrandchildIsGoneAfterTheJob) {
  std::string sleeper = "sleep 1000.5" + std::to_string(GetParam().size());
  WriteFile(dir_.File("in"), Lines(4));
  RunResult r = RunFor(Cat(RunMode(GetParam()), {"-j", "2", "--chunks", "2", "-i", dir_.File("in"),
                                                 "exec", "--", "sh", "-c", sleeper + " & cat"}),
                       milliseconds(20000));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, Lines(4));
  ExpectCommandsGone(sleeper, milliseconds(5000));
}

INSTANTIATE_TEST_SUITE_P(Modes, LifecycleTest, ::testing::Values("threads", "processes"));

// A worker started by hand (e.g. over ssh) whose session ends gets SIGHUP: it stops like
// on SIGTERM, killing its command's process group first.
TEST(WorkerSignalTest, SighupKillsTheRunningCommand) {
  TempDir dir;
  WriteFile(dir.File("in"), "1\n");
  std::string sleeper = "sleep 59.71";  // as the command runs it: not the job's command line
  std::string endpoint = "ipc://" + dir.File("sock");
  Child job({FanoutBin(), "run", "--mode", "processes", "--listen", endpoint, "-j", "0", "-i",
             dir.File("in"), "exec", "--", "sh", "-c", "exec sleep 59.7$0", "1"},
            "", dir.File("job.err"));
  Child worker({WorkerBin(), "--connect", endpoint}, "", dir.File("worker.err"));
  ASSERT_TRUE(WaitUntil([&] { return !ProcessesMatching(sleeper).empty(); }, milliseconds(20000)))
      << ReadFile(dir.File("job.err")) << ReadFile(dir.File("worker.err"));
  worker.Signal(SIGHUP);
  EXPECT_EQ(worker.Wait(milliseconds(10000)), 128 + SIGHUP);
  WaitUntil([&] { return ProcessesMatching(sleeper).empty(); }, milliseconds(5000));
  for (pid_t p : ProcessesMatching(sleeper)) {
    ADD_FAILURE() << "the command outlived its worker: pid " << p;
    kill(p, SIGKILL);
  }
}

TEST(SilentWaitTest, MinWorkersBeyondLocalWorkersIsAUsageError) {
  TempDir dir;
  WriteFile(dir.File("in"), Lines(10));
  RunResult r = RunFor({FanoutBin(), "run", "--mode", "processes", "-j", "2", "--min-workers", "3",
                        "-i", dir.File("in"), "exec", "--", "cat"},
                       milliseconds(10000));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--min-workers"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(SilentWaitTest, LastWorkerLostWithNoneToComeFailsAfterTheWaitTimeout) {
  TempDir dir;
  WriteFile(dir.File("in"), Lines(10));
  auto start = Clock::now();
  // The only worker dies (its command kills it) and may not be replaced.
  RunResult r = RunFor({FanoutBin(),
                        "run",
                        "--mode",
                        "processes",
                        "--listen",
                        "ipc://" + dir.File("sock"),
                        "-j",
                        "1",
                        "--max-respawns",
                        "0",
                        "--wait-timeout",
                        "3s",
                        "--worker-bin",
                        WorkerBin(),
                        "-i",
                        dir.File("in"),
                        "exec",
                        "--",
                        "sh",
                        "-c",
                        "kill -9 $PPID; sleep 5"},
                       milliseconds(30000));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("no worker left"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--wait-timeout"), std::string::npos) << r.err;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(20));
}

TEST(SilentWaitTest, WaitTimeoutHasADefault) {
  RunResult r = RunFor({FanoutBin(), "run", "--help"}, milliseconds(10000));
  auto at = r.out.find("--wait-timeout");
  ASSERT_NE(at, std::string::npos) << r.out;
  auto line = r.out.substr(at, r.out.find("\n  -", at + 1) - at);
  EXPECT_NE(line.find("5m"), std::string::npos) << line;
}

}  // namespace
}  // namespace fanout::testing
