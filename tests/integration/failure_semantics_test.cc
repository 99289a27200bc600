// Failures that tell the task from the machine (issue #15 item 7), with the real binaries
// and real signals: a task's own failures use --retries (default 0), a lost worker's attempts
// count toward --crash-limit instead; --ok-exit accepts more exit statuses; a closed stdout
// ends the job quietly; workers keep being replaced while the job makes progress.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Occurrences of `needle` in `text`.
size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The number after `name` in the summary line, or -1.
int Counter(const std::string& err, const std::string& name) {
  size_t at = err.find(" " + name);
  return at == std::string::npos ? -1 : std::atoi(err.c_str() + at + 1 + name.size());
}

RunOptions Input(const std::string& data, milliseconds timeout = milliseconds(30000)) {
  RunOptions options;
  options.stdin_data = data;
  options.timeout = timeout;
  return options;
}

// The pid written to `path` by a chunk's command, polled until `timeout`.
std::optional<pid_t> WaitForPidFile(const std::string& path, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    std::string text = FileExists(path) ? ReadFile(path) : "";
    if (!text.empty() && text.back() == '\n') return std::stoi(text);
    std::this_thread::sleep_for(milliseconds(5));  // polling the file system, with deadline
  }
  return std::nullopt;
}

class FailureSemanticsTest : public ::testing::Test {
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
  // `fanout run --mode MODE ARGS...`, with the worker under test in processes mode.
  std::vector<std::string> InMode(const std::string& mode, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {FanoutBin(), "run", "--mode", mode};
    if (mode == "processes") argv.insert(argv.end(), {"--worker-bin", link_});
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  std::vector<std::string> Fanout(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {FanoutBin(), "run", "--worker-bin", link_};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  TempDir dir_;
  std::string markers_;
  std::string link_;
};

// The Done-when test of issue #15: the test kills the workers of a task that always fails.
// Its first two attempts are lost with their workers (SIGKILL from here): they do not use
// --retries 2; then the task fails three times by itself and the job fails with that reason.
TEST_F(FailureSemanticsTest, AlwaysFailingTaskFailsAfterRetriesNotAfterWorkerKills) {
  WriteFile(dir_.File("in"), "x\n");
  std::string sleeper = "sleep 61.8" + std::to_string(getpid() % 1000);
  Child job(
      Fanout({"--mode", "processes", "-j", "2", "--retries", "2", "-i", dir_.File("in"), "-o",
              dir_.File("out"), "exec", "--", "sh", "-c",
              "if [ \"$FANOUT_ATTEMPT\" -le 2 ]; then echo $PPID > \"$0/pid-$FANOUT_ATTEMPT\"; " +
                  sleeper + "; fi; echo always-boom >&2; exit 1",
              markers_}),
      "", dir_.File("err"));
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto worker = WaitForPidFile(markers_ + "/pid-" + std::to_string(attempt), milliseconds(15000));
    ASSERT_TRUE(worker) << ReadFile(dir_.File("err"));
    ASSERT_EQ(kill(*worker, SIGKILL), 0);
  }
  ASSERT_EQ(job.Wait(milliseconds(30000)), 1);
  std::string err = ReadFile(dir_.File("err"));
  EXPECT_NE(err.find("(attempt 5; 3 failures, --retries 2): exec: 'sh' exited with status 1: "
                     "always-boom (same on attempts 3-4)"),
            std::string::npos)
      << err;
  // Both losses were the machine's: neither used a retry (a loss the worker had not yet
  // reported as started is not even charged to the crash limit).
  EXPECT_EQ(Count(err, "lost: (pid"), 2u) << err;
  EXPECT_FALSE(FileExists(dir_.File("out")));
}

// A chunk whose workers keep dying (it kills them itself) fails after --crash-limit losses,
// with that reason, whatever --retries says.
TEST_F(FailureSemanticsTest, ChunkWhoseWorkersKeepDyingFailsAfterTheCrashLimit) {
  WriteFile(dir_.File("in"), "a\nb\nPOISON\nc\n");
  RunResult r = fanout::testing::Run(
      Fanout({"--mode", "processes", "-j", "2", "--chunks", "4", "--crash-limit", "3", "--retries",
              "7", "-i", dir_.File("in"), "-o", dir_.File("out"), "exec", "--", "sh", "-c",
              "d=$(cat); case \"$d\" in *POISON*) kill -9 $PPID; sleep 5;; esac; "
              "printf '%s\\n' \"$d\""}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("chunk 2 (lines 3-3) failed on worker"), std::string::npos) << r.err;
  // The attempt number may pass 3: a worker that dies before it reports the start loses
  // the attempt for free (not charged), so only "3 workers lost" is fixed.
  EXPECT_NE(r.err.find("; 3 workers lost under it, --crash-limit 3)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("killed by signal 9"), std::string::npos) << r.err;
  EXPECT_FALSE(FileExists(dir_.File("out")));
}

// A deterministic failure is not retried by default, and its stderr tail shows once.
TEST_F(FailureSemanticsTest, DeterministicFailureIsNotRetriedByDefaultAndShownOnce) {
  for (const char* mode : {"serial", "threads", "processes"}) {
    SCOPED_TRACE(mode);
    RunResult r =
        fanout::testing::Run(InMode(mode, {"-j", "2", "--chunks", "1", "exec", "--", "sh", "-c",
                                           "echo 'Traceback: ValueError' >&2; exit 1"}),
                             Input("x\n"));
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(Count(r.err, "ValueError"), 1u) << r.err;
    EXPECT_NE(r.err.find("(attempt 1; 1 failure, --retries 0)"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("retries=0"), std::string::npos) << r.err;
  }
}

// With --retries 2 the same tail is not repeated per attempt: once as it happens, once in
// the report, which names the attempts that failed the same way.
TEST_F(FailureSemanticsTest, RepeatedStderrTailIsNotRepeatedPerAttempt) {
  RunResult r =
      fanout::testing::Run(InMode("threads", {"-j", "1", "--retries", "2", "exec", "--", "sh", "-c",
                                              "echo 'Traceback: KeyError' >&2; exit 1"}),
                           Input("x\n"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(Count(r.err, "KeyError"), 2u) << r.err;
  EXPECT_NE(r.err.find("attempt 2 failed, retrying: same as attempt 1"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("KeyError (same on attempts 1-2)"), std::string::npos) << r.err;
}

// grep exits 1 on a chunk with no match: with --ok-exit 0,1 that is a success, in every
// mode (processes: the workers learn it from WELCOME).
TEST_F(FailureSemanticsTest, OkExitAcceptsGrepsNoMatchInEveryMode) {
  std::string input = "hit 1\nhit 2\nmiss 3\nmiss 4\n";  // chunk 1 has no "hit"
  for (const char* mode : {"serial", "threads", "processes"}) {
    SCOPED_TRACE(mode);
    RunResult ok = fanout::testing::Run(
        InMode(mode, {"-j", "2", "--chunks", "2", "--ok-exit", "0,1", "exec", "--", "grep", "hit"}),
        Input(input));
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_EQ(ok.out, "hit 1\nhit 2\n");
    RunResult plain = fanout::testing::Run(
        InMode(mode, {"-j", "2", "--chunks", "2", "exec", "--", "grep", "hit"}), Input(input));
    EXPECT_EQ(plain.exit_code, 1) << plain.err;
    EXPECT_NE(plain.err.find("exited with status 1"), std::string::npos) << plain.err;
  }
  // A worker started elsewhere learns the list from WELCOME.
  std::string endpoint = "ipc://" + dir_.File("c.sock");
  Child remote({link_, "--connect", endpoint, "--name", "remote", "--once"});
  RunResult joined = fanout::testing::Run({FanoutBin(), "run", "--listen", endpoint, "--chunks",
                                           "2", "--ok-exit", "0,1", "exec", "--", "grep", "hit"},
                                          Input(input));
  EXPECT_EQ(joined.exit_code, 0) << joined.err;
  EXPECT_EQ(joined.out, "hit 1\nhit 2\n");
  EXPECT_EQ(remote.Wait(milliseconds(10000)), 0);
  RunResult bad = fanout::testing::Run(Fanout({"--ok-exit", "0,256", "identity"}), Input("x\n"));
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--ok-exit"), std::string::npos) << bad.err;
}

// `fanout run ... | head -1` through a real pipe: head's line, no message, status 141 (as
// a tool killed by SIGPIPE), in every mode.
TEST_F(FailureSemanticsTest, ClosedStdoutPipeEndsTheJobQuietly) {
  for (std::string mode : {"serial", "threads", "processes"}) {
    SCOPED_TRACE(mode);
    std::string worker = mode == "processes" ? "--worker-bin=" + link_ : "--chunks=8";
    RunResult r = fanout::testing::Run(
        {"/bin/bash", "-c",
         "seq 1 400000 | \"$0\" run \"$1\" --mode \"$2\" -j 2 identity | head -1; "
         "echo \"status ${PIPESTATUS[1]}\"",
         FanoutBin(), worker, mode});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "1\nstatus 141\n") << r.err;
    EXPECT_EQ(r.err, "");
  }
}

// More workers die than the old job-wide budget (2 x workers) allowed, but chunks finish in
// between: the job goes on replacing them and completes.
TEST_F(FailureSemanticsTest, WorkersKeepBeingReplacedWhileTheJobMakesProgress) {
  std::string input;
  for (int i = 0; i < 40; ++i) input += "row " + std::to_string(i) + "\n";
  WriteFile(dir_.File("in"), input);
  // The first attempt of every other chunk kills its worker: 10 deaths with 2 workers.
  RunResult r = fanout::testing::Run(
      Fanout(
          {"--mode", "processes", "-j", "2", "--chunks", "20", "-i", dir_.File("in"), "-o",
           dir_.File("out"), "exec", "--", "sh", "-c",
           "if [ \"$FANOUT_ATTEMPT\" = 1 ] && [ $((FANOUT_CHUNK % 2)) = 0 ]; then kill -9 $PPID; "
           "sleep 5; fi; cat"}),
      Input("", milliseconds(60000)));
  EXPECT_FALSE(r.timed_out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir_.File("out")), input);
  // About 10 (a killed worker's prefetched chunks come back unstarted, and their next
  // attempt is not a first one): well over the old budget of 2 x workers = 4.
  EXPECT_GT(Counter(r.err, "workers_lost="), 4) << r.err;
  EXPECT_GT(Counter(r.err, "respawns="), 4) << r.err;
}

// Workers that die with no chunk finished in between stop being replaced: the job fails
// clearly instead of respawning forever.
TEST_F(FailureSemanticsTest, WorkersDyingWithoutProgressStopBeingReplaced) {
  RunResult r = fanout::testing::Run(
      {FanoutBin(), "run", "--worker-bin", "/bin/false", "-j", "2", "identity"}, Input("x\n"));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("died in a row with no chunk finished"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace fanout::testing