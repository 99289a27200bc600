// Tests for RunCommand (exec_task.h): real child processes fed and drained concurrently,
// errors that name the cause, cancellation that kills the whole process group, and no
// leaked fds or processes. Waits are on events (files appearing) with deadlines.
#include "common/exec_task.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "common/unique_fd.h"
#include "tests/support/test_support.h"

namespace fanout {
namespace {

using Clock = std::chrono::steady_clock;
using Argv = std::vector<std::string>;
using std::chrono::milliseconds;
using std::chrono::seconds;

// True once `pid` no longer runs (gone, or a zombie awaiting its reaper).
bool ProcessGone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  return paren == std::string::npos || paren + 2 >= text.size() || text[paren + 2] == 'Z';
}

// Polls `done` until it holds or `timeout` passes; returns its last value.
template <typename Pred>
bool WaitFor(Pred done, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));  // polling, with a deadline
  }
  return true;
}

int OpenFdCount() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (readdir(dir) != nullptr) ++count;
    closedir(dir);
  }
  return count;
}

class ExecTaskTest : public ::testing::Test {
 protected:
  Status Exec(const Argv& argv, std::string_view input, std::stop_token stop = {}) {
    out_.clear();
    return RunCommand(argv, input, {{"FANOUT_CHUNK", "7"}}, out_, stop);
  }
  std::string out_;
};

TEST_F(ExecTaskTest, TransformsStdinToStdout) {
  ASSERT_TRUE(Exec({"tr", "a-z", "A-Z"}, "abc\nxyz").ok());
  EXPECT_EQ(out_, "ABC\nXYZ");
  ASSERT_TRUE(Exec({"sort"}, "b\na\nc\n").ok());
  EXPECT_EQ(out_, "a\nb\nc\n");
  ASSERT_TRUE(Exec({"wc", "-l"}, "1\n2\n3\n").ok());
  EXPECT_EQ(out_, "3\n");
}

TEST_F(ExecTaskTest, EmptyInputGivesImmediateEof) {
  ASSERT_TRUE(Exec({"cat"}, "").ok());
  EXPECT_EQ(out_, "");
}

TEST_F(ExecTaskTest, LargeBinaryInputThroughCatIsByteIdentical) {
  std::string big(8u << 20, '\0');
  std::mt19937 rng(42);
  for (char& c : big) c = static_cast<char>(rng());
  ASSERT_TRUE(Exec({"cat"}, big).ok());
  EXPECT_TRUE(out_ == big) << "sizes " << out_.size() << " vs " << big.size();
}

TEST_F(ExecTaskTest, StdinIsSplicedFromTheFileBehindTheBytes) {
  // 3 MiB at an offset into a file (many splices, a full pipe between them); the view
  // passed beside it differs, so the output shows which was read.
  std::string bytes(3u << 20, '\0');
  std::mt19937 rng(7);
  for (char& c : bytes) c = static_cast<char>(rng());
  testing::TempDir dir;
  std::string path = dir.File("input");
  {
    std::ofstream f(path, std::ios::binary);
    f << std::string(1000, 'h') << bytes;
  }
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.open());
  std::string view(bytes.size(), 'v');
  out_.clear();
  ASSERT_TRUE(RunCommand({"cat"}, view, {}, out_, {}, 0, FileBacking{fd.get(), 1000}).ok());
  EXPECT_TRUE(out_ == bytes) << "sizes " << out_.size() << " vs " << bytes.size();
  // A file that ends early (it shrank): the rest comes from the view, whose bytes a
  // guarded mapping would give as zeros.
  out_.clear();
  ASSERT_TRUE(RunCommand({"cat"}, view, {}, out_, {}, 0, FileBacking{fd.get(), 1000 + 1000}).ok());
  EXPECT_TRUE(out_ == bytes.substr(1000) + view.substr(bytes.size() - 1000));
  // A command that stops reading: no error, no hang.
  out_.clear();
  ASSERT_TRUE(
      RunCommand({"head", "-c", "1"}, view, {}, out_, {}, 0, FileBacking{fd.get(), 1000}).ok());
  EXPECT_EQ(out_, bytes.substr(0, 1));
}

TEST(CommandOutputTest, StdoutIsReservedAsBigAsStdinWithinItsLimit) {
  // Grown by doubling, a command that prints what it reads had its output copied about
  // twice into fresh memory: its input's size is reserved once (never past --max-message).
  std::string input(3u << 20, 'x');
  auto started = Command::Start({"true"}, input, {});
  ASSERT_TRUE(started.ok()) << started.status().message();
  EXPECT_GE((*started)->output().capacity(), input.size());
  auto limited = Command::Start({"true"}, input, {}, 1024);
  ASSERT_TRUE(limited.ok()) << limited.status().message();
  EXPECT_LT((*limited)->output().capacity(), 1u << 20);
}

TEST_F(ExecTaskTest, CommandThatStopsReadingEarlyIsFine) {
  std::string big(8u << 20, 'x');
  ASSERT_TRUE(Exec({"head", "-c", "1"}, big).ok());
  EXPECT_EQ(out_, "x");
  Status s = Exec({"true"}, big);
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(ExecTaskTest, ClosingOutputsEarlyStillGetsAllInput) {
  testing::TempDir dir;
  std::string count_file = dir.File("count");
  Status s =
      Exec({"sh", "-c", R"(exec >&- 2>&-; wc -c > "$0")", count_file}, std::string(1u << 20, 'y'));
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(testing::ReadFile(count_file), "1048576\n");
}

TEST_F(ExecTaskTest, StderrAloneIsNotAnError) {
  ASSERT_TRUE(Exec({"sh", "-c", "echo warning >&2; echo ok"}, "").ok());
  EXPECT_EQ(out_, "ok\n");
}

TEST_F(ExecTaskTest, NonZeroExitNamesStatusAndStderr) {
  Status s = Exec({"sh", "-c", "cat >/dev/null; echo one >&2; echo oops >&2; exit 3"}, "in");
  EXPECT_EQ(s.message(), "exec: 'sh' exited with status 3: one | oops");
  s = Exec({"sh", "-c", "exit 4"}, "");
  EXPECT_EQ(s.message(), "exec: 'sh' exited with status 4");
}

TEST_F(ExecTaskTest, OnlyTheLastFiveStderrLinesAreShown) {
  Status s = Exec({"sh", "-c", "for i in 1 2 3 4 5 6 7; do echo l$i >&2; done; exit 1"}, "");
  EXPECT_EQ(s.message(), "exec: 'sh' exited with status 1: l3 | l4 | l5 | l6 | l7");
}

TEST_F(ExecTaskTest, HugeStderrIsBoundedInTheMessage) {
  Status s = Exec(
      {"sh", "-c", R"(head -c 3000000 /dev/zero | tr '\0' x >&2; printf '\ndone\n' >&2; exit 1)"},
      "");
  EXPECT_EQ(s.message().rfind("exec: 'sh' exited with status 1: xxx", 0), 0u);
  EXPECT_NE(s.message().find("... | done"), std::string::npos);
  EXPECT_LT(s.message().size(), 1000u);
}

TEST_F(ExecTaskTest, DeathBySignalIsNamed) {
  Status s = Exec({"sh", "-c", "kill -9 $$"}, "");
  EXPECT_EQ(s.message(), "exec: 'sh' was killed by signal 9 (SIGKILL)");
  s = Exec({"sh", "-c", "echo dying >&2; kill -TERM $$"}, "");
  EXPECT_EQ(s.message(), "exec: 'sh' was killed by signal 15 (SIGTERM): dying");
}

TEST_F(ExecTaskTest, MissingCommandCannotStart) {
  Status s = Exec({"fanout-no-such-command-xyz"}, "");
  EXPECT_EQ(s.message(),
            "exec: cannot start 'fanout-no-such-command-xyz': No such file or directory");
}

TEST_F(ExecTaskTest, EnvironmentCarriesChunkVariablesAndInheritsTheRest) {
  ASSERT_TRUE(Exec({"sh", "-c", "echo $FANOUT_CHUNK; echo $PATH"}, "").ok());
  EXPECT_EQ(out_, "7\n" + std::string(getenv("PATH")) + "\n");
}

TEST_F(ExecTaskTest, ExtraEnvironmentOverridesInherited) {
  setenv("FANOUT_CHUNK", "stale", 1);  // no other threads run here
  Status s = Exec({"sh", "-c", "env | grep -c '^FANOUT_CHUNK='; echo $FANOUT_CHUNK"}, "");
  unsetenv("FANOUT_CHUNK");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(out_, "1\n7\n");
}

TEST_F(ExecTaskTest, StopAlreadyRequestedStartsNothing) {
  std::stop_source stop;
  stop.request_stop();
  EXPECT_EQ(Exec({"sleep", "60"}, "", stop.get_token()).message(), "cancelled");
}

TEST_F(ExecTaskTest, CancellationKillsTheProcessGroupPromptly) {
  testing::TempDir dir;
  const std::string pid_file = dir.File("pids");
  std::stop_source stop;
  Status status;
  Clock::time_point finished;
  // The command reports its pid and its background grandchild's, then waits: the
  // grandchild shares the process group and holds stdout, so it must die too.
  std::jthread runner([&] {
    status = Exec(
        {"sh", "-c", R"(sleep 60 & echo $$ $! > "$0.tmp" && mv "$0.tmp" "$0"; wait)", pid_file}, "",
        stop.get_token());
    finished = Clock::now();
  });
  ASSERT_TRUE(WaitFor([&] { return testing::FileExists(pid_file); }, seconds(10)));
  pid_t shell = 0, grandchild = 0;
  std::istringstream(testing::ReadFile(pid_file)) >> shell >> grandchild;
  ASSERT_GT(shell, 0);
  ASSERT_GT(grandchild, 0);

  Clock::time_point requested = Clock::now();
  stop.request_stop();
  runner.join();
  EXPECT_EQ(status.message(), "cancelled");
  EXPECT_LT(finished - requested, seconds(2));
  EXPECT_TRUE(ProcessGone(shell));  // reaped before RunCommand returned
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(grandchild); }, seconds(5)));
}

TEST_F(ExecTaskTest, OutputOverTheLimitStopsTheProcessGroupAtOnce) {
  // `yes` never ends by itself: only the limit stops it. Its background twin shares the
  // process group and must die with it.
  testing::TempDir dir;
  const std::string pid_file = dir.File("pid");
  out_ = "kept: ";
  Status status = RunCommand(
      {"sh", "-c", R"((sleep 0.1; exec yes) & echo $! > "$0.tmp" && mv "$0.tmp" "$0"; exec yes)",
       pid_file},
      "", {}, out_, {}, /*max_output=*/1 << 20);
  EXPECT_EQ(status.message(), "exec: 'sh' output exceeds --max-message 1 MiB");
  EXPECT_EQ(out_, "kept: ") << "none of the command's output is returned";
  pid_t twin = 0;
  std::istringstream(testing::ReadFile(pid_file)) >> twin;
  ASSERT_GT(twin, 0);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(twin); }, seconds(5)));
}

TEST_F(ExecTaskTest, OutputUpToTheLimitIsFine) {
  std::string out;
  ASSERT_TRUE(RunCommand({"head", "-c", "1024", "/dev/zero"}, "", {}, out, {}, 1024).ok());
  EXPECT_EQ(out.size(), 1024u);
}

TEST(OutputLimitErrorTest, NamesTheLimitInTheUnitsItWasGivenIn) {
  EXPECT_EQ(OutputLimitError(16u << 20), "output exceeds --max-message 16 MiB");
  EXPECT_EQ(OutputLimitError(2048), "output exceeds --max-message 2 KiB");
  EXPECT_EQ(OutputLimitError(1u << 30), "output exceeds --max-message 1 GiB");
  EXPECT_EQ(OutputLimitError(1000), "output exceeds --max-message 1000 bytes");
  EXPECT_EQ(OutputLimitError(1536), "output exceeds --max-message 1536 bytes");
}

TEST_F(ExecTaskTest, NoFileDescriptorsLeakOnAnyPath) {
  int before = OpenFdCount();
  std::stop_source stopped;
  stopped.request_stop();
  Exec({"cat"}, "data\n");
  Exec({"sh", "-c", "exit 2"}, "x");
  Exec({"fanout-no-such-command-xyz"}, "x");
  Exec({"head", "-c", "1"}, std::string(1u << 20, 'z'));
  Exec({"sleep", "60"}, "", stopped.get_token());
  EXPECT_EQ(OpenFdCount(), before);
}

}  // namespace
}  // namespace fanout
