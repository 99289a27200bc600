// The async forms of sleep and exec (TaskDef::start_async) and the Command state machine
// under them, driven by a small poll loop the way the worker's event loop drives them:
// same output and errors as the blocking forms, many at once on one thread, and Cancel
// kills a command's child without blocking.
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/command.h"
#include "common/exec_task.h"
#include "common/task.h"
#include "tasks/builtin_tasks.h"
#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

class AsyncTaskTest : public ::testing::Test {
 protected:
  void SetUp() override { RegisterBuiltinTasks(TaskRegistry::Global()); }

  std::unique_ptr<AsyncAttempt> Start(const std::string& task, std::vector<std::string> args,
                                      const ChunkInput& chunk) {
    const TaskDef* def = TaskRegistry::Global().Find(task);
    EXPECT_NE(def, nullptr);
    EXPECT_TRUE(def && def->start_async) << task << " has no async form";
    if (!def || !def->start_async) return nullptr;
    args_ = std::move(args);
    auto attempt = def->start_async(chunk, args_);
    EXPECT_TRUE(attempt.ok()) << attempt.status().message();
    return attempt.ok() ? std::move(attempt).value() : nullptr;
  }

  // Runs every attempt to completion on this thread with one poll loop (as the worker
  // loop does); fails the test after `timeout`.
  static std::vector<AsyncOutcome> Drive(std::vector<AsyncAttempt*> attempts,
                                         milliseconds timeout = milliseconds(20000)) {
    std::vector<AsyncOutcome> outcomes(attempts.size());
    std::vector<bool> done(attempts.size(), false);
    auto give_up = Clock::now() + timeout;
    for (;;) {
      auto now = Clock::now();
      size_t left = 0;
      std::vector<pollfd> fds;
      auto wake = now + milliseconds(100);
      for (size_t i = 0; i < attempts.size(); ++i) {
        if (done[i]) continue;
        if (attempts[i]->Advance(now)) {
          done[i] = true;
          outcomes[i] = attempts[i]->Take();
          continue;
        }
        ++left;
        attempts[i]->AppendFds(fds);
        if (auto d = attempts[i]->deadline()) wake = std::min(wake, *d);
      }
      if (left == 0) return outcomes;
      if (now > give_up) {
        ADD_FAILURE() << left << " attempts still running after " << timeout.count() << " ms";
        return outcomes;
      }
      auto ms = std::chrono::ceil<milliseconds>(wake - Clock::now()).count();
      poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(ms, 0)));
    }
  }
  static AsyncOutcome Drive(AsyncAttempt& attempt) { return Drive({&attempt})[0]; }

  // The blocking form's status message for the same chunk.
  static std::string SyncError(const std::string& task, std::vector<std::string> args,
                               const ChunkInput& chunk) {
    std::string out;
    return RunTask(*TaskRegistry::Global().Find(task), chunk, args, out, {}).message();
  }

  std::vector<std::string> args_;
};

ChunkInput Chunk(std::string_view data) {
  ChunkInput c;
  c.data = data;
  c.chunk_id = 7;
  c.attempt = 2;
  c.worker_id = "w9";
  return c;
}

TEST_F(AsyncTaskTest, SleepWaitsForItsDeadlineAndReturnsTheRecords) {
  auto start = Clock::now();
  auto attempt = Start("sleep", {"40"}, Chunk("a\nb\n"));  // 2 records × 40 ms
  ASSERT_TRUE(attempt);
  ASSERT_TRUE(attempt->deadline());
  EXPECT_GE(*attempt->deadline(), start + milliseconds(80));
  EXPECT_FALSE(attempt->Advance(Clock::now()));
  AsyncOutcome o = Drive(*attempt);
  EXPECT_GE(Clock::now() - start, milliseconds(80));
  EXPECT_TRUE(o.status.ok()) << o.status.message();
  EXPECT_EQ(o.output, "a\nb\n");
}

TEST_F(AsyncTaskTest, SleepOfARangeReturnsItsMaterializedRecords) {
  ChunkInput c;
  c.range = IntRange{3, 6};
  auto attempt = Start("sleep", {"0"}, c);
  ASSERT_TRUE(attempt);
  AsyncOutcome o = Drive(*attempt);
  EXPECT_EQ(o.output, "3\n4\n5\n");
}

TEST_F(AsyncTaskTest, CancelledSleepEndsAtOnceAsCancelled) {
  auto attempt = Start("sleep", {"3600000"}, Chunk("x\n"));
  ASSERT_TRUE(attempt);
  attempt->Cancel();
  AsyncOutcome o = Drive(*attempt);
  EXPECT_EQ(o.status.message(), "cancelled");
}

TEST_F(AsyncTaskTest, ExecOutputAndVariablesMatchTheBlockingForm) {
  std::vector<std::string> args = {"sh", "-c",
                                   "tr a-z A-Z; echo $FANOUT_CHUNK $FANOUT_ATTEMPT $FANOUT_WORKER"};
  ChunkInput c = Chunk("abc\n");
  auto attempt = Start("exec", args, c);
  ASSERT_TRUE(attempt);
  AsyncOutcome o = Drive(*attempt);
  ASSERT_TRUE(o.status.ok()) << o.status.message();
  EXPECT_EQ(o.output, "ABC\n7 2 w9\n");
  std::string sync;
  ASSERT_TRUE(RunTask(*TaskRegistry::Global().Find("exec"), c, args, sync, {}).ok());
  EXPECT_EQ(o.output, sync);
}

TEST_F(AsyncTaskTest, ExecStreamsInputLargerThanPipeBuffers) {
  std::string big;
  for (int i = 0; big.size() < 8u << 20; ++i) big += std::to_string(i) + "\n";
  auto attempt = Start("exec", {"cat"}, Chunk(big));
  ASSERT_TRUE(attempt);
  AsyncOutcome o = Drive(*attempt);
  ASSERT_TRUE(o.status.ok()) << o.status.message();
  EXPECT_TRUE(o.output == big) << "output of " << o.output.size() << " bytes differs";
}

TEST_F(AsyncTaskTest, ExecErrorsMatchTheBlockingForm) {
  std::vector<std::string> args = {"sh", "-c", "echo first >&2; echo oops >&2; exit 3"};
  auto attempt = Start("exec", args, Chunk("x\n"));
  ASSERT_TRUE(attempt);
  AsyncOutcome o = Drive(*attempt);
  EXPECT_EQ(o.status.message(), "exec: 'sh' exited with status 3: first | oops");
  EXPECT_EQ(o.status.message(), SyncError("exec", args, Chunk("x\n")));
}

TEST_F(AsyncTaskTest, ExecThatCannotStartFailsBeforeItStarts) {
  const TaskDef* def = TaskRegistry::Global().Find("exec");
  std::vector<std::string> args = {"fanout-no-such-command"};
  auto attempt = def->start_async(Chunk("x\n"), args);
  ASSERT_FALSE(attempt.ok());
  EXPECT_EQ(attempt.status().message(),
            "exec: cannot start 'fanout-no-such-command': No such file or directory");
}

TEST_F(AsyncTaskTest, CancelledExecKillsItsChildWithoutWaitingForIt) {
  // The sleep's argument is computed, so only the child itself matches the needle.
  auto attempt = Start("exec", {"sh", "-c", "exec sleep $((39+0)).17"}, Chunk(""));
  ASSERT_TRUE(attempt);
  auto deadline = Clock::now() + milliseconds(10000);
  while (ProcessesMatching("sleep 39.17").empty() && Clock::now() < deadline) {
    std::vector<pollfd> fds;
    attempt->AppendFds(fds);
    poll(fds.data(), fds.size(), 10);
    ASSERT_FALSE(attempt->Advance(Clock::now()));
  }
  ASSERT_FALSE(ProcessesMatching("sleep 39.17").empty());
  auto before = Clock::now();
  attempt->Cancel();
  EXPECT_LT(Clock::now() - before, milliseconds(500));
  AsyncOutcome o = Drive(*attempt);
  EXPECT_EQ(o.status.message(), "cancelled");
  EXPECT_TRUE(ProcessesMatching("sleep 39.17").empty());
}

TEST_F(AsyncTaskTest, FiftyCommandsRunConcurrentlyOnOneThread) {
  std::vector<std::unique_ptr<AsyncAttempt>> owned;
  std::vector<AsyncAttempt*> attempts;
  std::vector<std::string> inputs(50);
  for (int i = 0; i < 50; ++i) inputs[i] = std::to_string(i) + "\n";
  auto start = Clock::now();
  for (int i = 0; i < 50; ++i) {
    owned.push_back(Start("exec", {"sh", "-c", "sleep 0.5; cat"}, Chunk(inputs[i])));
    ASSERT_TRUE(owned.back());
    attempts.push_back(owned.back().get());
  }
  std::vector<AsyncOutcome> outcomes = Drive(attempts);
  EXPECT_LT(Clock::now() - start, milliseconds(10000));  // one after another: 25 s
  for (int i = 0; i < 50; ++i) {
    EXPECT_TRUE(outcomes[i].status.ok()) << outcomes[i].status.message();
    EXPECT_EQ(outcomes[i].output, inputs[i]);
  }
}

TEST(CommandTest, WaitsOnPipesThenOnTheChildAndReportsItsCpuTime) {
  std::string input = "hello\n";
  auto started = Command::Start(
      {"sh", "-c", "cat; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"}, input, {});
  ASSERT_TRUE(started.ok()) << started.status().message();
  Command& command = **started;
  std::vector<pollfd> fds;
  command.AppendFds(fds);
  EXPECT_EQ(fds.size(), 3u);  // stdin, stdout, stderr
  while (!command.Advance()) {
    fds.clear();
    command.AppendFds(fds);
    ASSERT_FALSE(fds.empty() && command.deadline()) << "waits on fds or a deadline, not both";
    poll(fds.data(), fds.size(), 100);
  }
  fds.clear();
  command.AppendFds(fds);
  EXPECT_TRUE(fds.empty());
  EXPECT_TRUE(command.status().ok()) << command.status().message();
  EXPECT_EQ(command.output(), "hello\n");
  EXPECT_GT(command.child_cpu_seconds(), 0.0);
}

}  // namespace
}  // namespace fanout::testing
