// CommandPolicy (command.h, issue #14 item 11): with kill_group_on_exit, what a command
// leaves in its process group is killed when it exits (the command's output is complete
// without waiting for it); with a parent-death signal, a command whose starting thread
// dies gets that signal. Exec errors read the same as without a policy.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <stop_token>
#include <string>
#include <thread>

#include "common/command.h"
#include "common/exec_task.h"
#include "tests/support/test_support.h"

namespace fanout {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class CommandPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetCommandPolicy({.parent_death_signal = SIGKILL, .kill_group_on_exit = true});
  }
  void TearDown() override { SetCommandPolicy({}); }
};

TEST_F(CommandPolicyTest, BackgroundProcessOfAnExitedCommandIsKilled) {
  std::string out;
  auto start = Clock::now();
  Status s = RunCommand({"sh", "-c", "sleep 1000.61 & echo done"}, "", {}, out, {});
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(out, "done\n");
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  auto gone_by = Clock::now() + milliseconds(5000);
  while (!testing::ProcessesMatching("sleep 1000.61").empty() && Clock::now() < gone_by) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(testing::ProcessesMatching("sleep 1000.61").empty());
}

TEST_F(CommandPolicyTest, CommandDiesWithTheThreadThatStartedIt) {
  std::unique_ptr<Command> command;
  std::thread([&] {
    auto started = Command::Start({"sleep", "1000.62"}, "", {});
    ASSERT_TRUE(started.ok()) << started.status().message();
    command = std::move(started).value();
  }).join();
  ASSERT_TRUE(command);
  auto deadline = Clock::now() + milliseconds(10000);
  while (!command->Advance() && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_TRUE(command->done());
  EXPECT_NE(command->status().message().find("killed by signal 9"), std::string::npos)
      << command->status().message();
}

TEST_F(CommandPolicyTest, ExecErrorsAreReported) {
  std::string out;
  Status missing = RunCommand({"no-such-command-fanout"}, "", {}, out, {});
  EXPECT_EQ(missing.message(),
            "exec: cannot start 'no-such-command-fanout': No such file or directory");
  Status dir = RunCommand({"/"}, "", {}, out, {});
  EXPECT_EQ(dir.message(), "exec: cannot start '/': Permission denied");
  Status ok = RunCommand({"tr", "a", "b"}, "aaa", {}, out, {});
  EXPECT_TRUE(ok.ok()) << ok.message();
  EXPECT_EQ(out, "bbb");
}

// OkExitScope: the commands a thread starts while it lives succeed on its codes, and only
// they (a worker runs each TASK under its job's --ok-exit).
TEST(OkExitScopeTest, TheScopesCodesDecideForCommandsStartedWithinIt) {
  std::string out;
  EXPECT_FALSE(RunCommand({"sh", "-c", "exit 1"}, "", {}, out, {}).ok());
  {
    OkExitScope ok({0, 1});
    EXPECT_TRUE(RunCommand({"sh", "-c", "exit 1"}, "", {}, out, {}).ok());
    EXPECT_FALSE(RunCommand({"sh", "-c", "exit 2"}, "", {}, out, {}).ok());
    std::thread other([&] {  // another thread keeps the process-wide codes
      std::string o;
      EXPECT_FALSE(RunCommand({"sh", "-c", "exit 1"}, "", {}, o, {}).ok());
    });
    other.join();
  }
  EXPECT_FALSE(RunCommand({"sh", "-c", "exit 1"}, "", {}, out, {}).ok());
  OkExitScope none({});  // an empty list overrides nothing
  EXPECT_TRUE(RunCommand({"sh", "-c", "exit 0"}, "", {}, out, {}).ok());
}

}  // namespace
}  // namespace fanout
