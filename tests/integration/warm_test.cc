// Warm commands (`exec --warm`, issue #17) with the real binaries: a warm process killed
// mid-chunk, one that breaks the framing, one that hangs past --timeout, one that exits,
// an ERR frame, a command that is not warm at all, --header, and a remote worker. Each
// checks the output byte for byte and, where it matters, how many processes were started
// (one line per start in the `starts` file the command appends to).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_support.h"
#include "tests/support/warm_script.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// The same with the shipped helper (python/fanout_warm.py); with --header every chunk
// must start with the header line.
constexpr const char* kHelperScript = R"(import os, fanout_warm
with open(os.environ["WARM_DIR"] + "/starts", "a") as f:
    f.write("%d %s\n" % (os.getpid(), os.environ.get("FANOUT_WORKER", "")))
def handle(data):
    if os.environ.get("WARM_HEADER") and not data.startswith(b"id,name\n"):
        raise ValueError("chunk without the header")
    return data.upper()
fanout_warm.serve_bytes(handle)
)";

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Waits for `pid` to be gone (not even a zombie of ours: the worker reaps it).
bool GoneWithin(pid_t pid, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return true;
    usleep(10000);  // polling a pid, with a deadline
  }
  return false;
}

class WarmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_.File("raw.py"), kWarmUpperScript);
    WriteFile(dir_.File("helper.py"), kHelperScript);
    for (int i = 0; i < 40; ++i) input_ += "row " + std::to_string(i) + " of the input\n";
    WriteFile(dir_.File("in"), input_);
  }
  // `fanout run` through env(1), so the command sees WARM_DIR/WARM_FAULT/PYTHONPATH.
  std::vector<std::string> Fanout(const std::string& fault, std::vector<std::string> flags,
                                  const std::string& script = "raw.py") {
    std::vector<std::string> argv = {"/usr/bin/env",
                                     "WARM_DIR=" + dir_.path(),
                                     "WARM_FAULT=" + fault,
                                     std::string("PYTHONPATH=") + FANOUT_SOURCE_DIR + "/python",
                                     FanoutBin(),
                                     "run",
                                     "-i",
                                     dir_.File("in"),
                                     "-o",
                                     dir_.File("out")};
    argv.insert(argv.end(), flags.begin(), flags.end());
    if (std::find(flags.begin(), flags.end(), "--chunks") == flags.end()) {
      argv.insert(argv.end(), {"--chunks", "8"});
    }
    // A failed chunk gets one retry (on a fresh process) unless a test says otherwise.
    if (std::find(flags.begin(), flags.end(), "--retries") == flags.end()) {
      argv.insert(argv.end(), {"--retries", "1"});
    }
    for (const char* a : {"exec", "--warm", "--", "python3"}) argv.push_back(a);
    argv.push_back(dir_.File(script));
    return argv;
  }
  std::vector<std::string> Starts() { return Lines(ReadFile(dir_.File("starts"))); }

  // Runs with fault `kill`: kills the process serving chunk 2 once it is mid-chunk.
  void KillMidChunk(const std::vector<std::string>& flags) {
    Child fanout(Fanout("kill", flags), "", dir_.File("err"));
    auto pid_text = WaitForText(dir_.File("pid"), "\n", milliseconds(60000));
    ASSERT_TRUE(pid_text) << ReadFile(dir_.File("err"));
    pid_t pid = std::stoi(*pid_text);
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    ASSERT_EQ(fanout.Wait(milliseconds(60000)), 0) << ReadFile(dir_.File("err"));
    EXPECT_EQ(ReadFile(dir_.File("out")), Upper(input_));
    std::string err = ReadFile(dir_.File("err"));
    EXPECT_NE(err.find("was killed by signal 9 (SIGKILL) during the chunk"), std::string::npos)
        << err;
    std::vector<std::string> starts = Starts();
    ASSERT_EQ(starts.size(), 2u) << "one process, then a fresh one after the kill";
    EXPECT_EQ(std::stoi(starts[0]), pid);
    EXPECT_NE(std::stoi(starts[1]), pid);
  }

  TempDir dir_;
  std::string input_;
};

TEST_F(WarmTest, KilledMidChunkIsRetriedOnAFreshProcessInSerialMode) {
  KillMidChunk({"--mode", "serial"});
}

TEST_F(WarmTest, KilledMidChunkIsRetriedOnAFreshProcessInThreadsMode) {
  KillMidChunk({"--mode", "threads", "-j", "1"});
}

TEST_F(WarmTest, KilledMidChunkIsRetriedOnAFreshProcessInProcessesMode) {
  KillMidChunk({"--mode", "processes", "-j", "1"});
}

TEST_F(WarmTest, OneProcessPerThreadServesEveryChunk) {
  RunResult r = testing::Run(Fanout("", {"--mode", "threads", "-j", "2", "--chunks", "40"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir_.File("out")), Upper(input_));
  EXPECT_LE(Starts().size(), 2u);
  EXPECT_GE(Starts().size(), 1u);
}

TEST_F(WarmTest, BrokenFrameFailsTheChunkWithTheReason) {
  RunResult r = testing::Run(Fanout("broken", {"--mode", "serial", "--retries", "0"}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("broke the framing: expected 'OK <n>' or 'ERR <n>', got 'garbage'"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(FileExists(dir_.File("out"))) << "nothing half-written under the output name";
}

TEST_F(WarmTest, BrokenFrameIsRetriedOnAFreshProcess) {
  RunResult r = testing::Run(Fanout("broken", {"--mode", "serial"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir_.File("out")), Upper(input_));
  EXPECT_EQ(Starts().size(), 2u);
}

TEST_F(WarmTest, HangIsKilledByTimeoutAndRetriedOnAFreshProcess) {
  Child fanout(Fanout("hang", {"--mode", "processes", "-j", "1", "--timeout", "5s"}), "",
               dir_.File("err"));
  auto pid_text = WaitForText(dir_.File("pid"), "\n", milliseconds(60000));
  ASSERT_TRUE(pid_text) << ReadFile(dir_.File("err"));
  ASSERT_EQ(fanout.Wait(milliseconds(60000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), Upper(input_));
  EXPECT_TRUE(GoneWithin(std::stoi(*pid_text), milliseconds(10000))) << "the hung process lives";
  std::vector<std::string> starts = Starts();
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_NE(std::stoi(starts[1]), std::stoi(*pid_text));
}

TEST_F(WarmTest, ExitDuringAChunkQuotesItsStderr) {
  RunResult r = testing::Run(Fanout("exit", {"--mode", "serial", "--retries", "0"}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("'python3' exited with status 3 during the chunk: dying on chunk 2"),
            std::string::npos)
      << r.err;
}

TEST_F(WarmTest, ErrFrameFailsOnlyThatAttemptAndKeepsTheProcess) {
  RunResult r = testing::Run(Fanout("err", {"--mode", "serial"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir_.File("out")), Upper(input_));
  EXPECT_NE(r.err.find("failed the chunk: chunk 2 refuses"), std::string::npos) << r.err;
  EXPECT_EQ(Starts().size(), 1u);
}

TEST_F(WarmTest, ACommandThatIsNotWarmIsNamed) {
  RunResult r =
      testing::Run({FanoutBin(), "run", "--mode", "serial", "--retries", "0", "-i", dir_.File("in"),
                    "-o", dir_.File("out"), "exec", "--warm", "--", "cat"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("expected 'READY 1' first, got 'CHUNK 0 1 "), std::string::npos) << r.err;
}

TEST_F(WarmTest, MissingCommandIsAUsageError) {
  RunResult r = testing::Run({FanoutBin(), "run", "-i", dir_.File("in"), "exec", "--warm"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("exec --warm: missing command"), std::string::npos) << r.err;
}

TEST_F(WarmTest, HeaderIsSentWithEveryChunk) {
  std::string csv = "id,name\n";
  for (int i = 0; i < 50; ++i) csv += std::to_string(i) + ",name" + std::to_string(i) + "\n";
  WriteFile(dir_.File("in"), csv);
  std::vector<std::string> argv =
      Fanout("", {"--header", "--mode", "threads", "-j", "2", "--retries", "0"}, "helper.py");
  argv.insert(argv.begin() + 1, "WARM_HEADER=1");
  RunResult r = testing::Run(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir_.File("out")), Upper(csv));
}

TEST_F(WarmTest, RemoteWorkerRunsAWarmCommand) {
  std::string endpoint = "ipc://" + dir_.File("c.sock");
  Child fanout(Fanout("", {"--listen", endpoint, "-j", "0"}, "helper.py"), "", dir_.File("err"));
  Child worker({"/usr/bin/env", "WARM_DIR=" + dir_.path(),
                std::string("PYTHONPATH=") + FANOUT_SOURCE_DIR + "/python", WorkerBin(),
                "--connect", endpoint, "--once"},
               "", dir_.File("worker_err"));
  ASSERT_EQ(fanout.Wait(milliseconds(60000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(worker.Wait(milliseconds(10000)), 0) << ReadFile(dir_.File("worker_err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), Upper(input_));
  std::vector<std::string> starts = Starts();
  ASSERT_EQ(starts.size(), 1u) << "one slot, one process for all 8 chunks";
  std::string worker_name = starts[0].substr(starts[0].find(' ') + 1);
  EXPECT_FALSE(worker_name.empty()) << "FANOUT_WORKER is set at start";
}

TEST_F(WarmTest, AutoModeBooksTheStartUpOncePerSlotNotPerChunk) {
  // A slow start-up (0.3 s before READY) and quick records: booked per chunk, the start-up
  // looked like a "mostly waiting" task worth 64 threads, each starting its own process.
  WriteFile(dir_.File("slow.py"), std::string("import time; time.sleep(0.3)\n") + kHelperScript);
  std::string input;
  for (int i = 0; i < 5000; ++i) input += std::to_string(i) + "\n";
  WriteFile(dir_.File("in"), input);
  std::vector<std::string> argv = Fanout("", {"-v"}, "slow.py");
  argv.erase(std::find(argv.begin(), argv.end(), "--chunks"),
             std::find(argv.begin(), argv.end(), "--chunks") + 2);
  RunResult r = testing::Run(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir_.File("out")), input);
  EXPECT_NE(r.err.find("a warm command starting in"), std::string::npos) << r.err;
  EXPECT_LE(Starts().size(), static_cast<size_t>(std::max(2L, sysconf(_SC_NPROCESSORS_ONLN))))
      << r.err;
}

TEST_F(WarmTest, HelperLinesKeepALastLineWithoutNewlineAndPrintGoesToStderr) {
  // serve_lines: each result gets the input line's '\n' (a last line without one stays
  // without); print() in the handler must not break the framing.
  WriteFile(dir_.File("lines.py"),
            "import fanout_warm\n"
            "def f(line):\n"
            "    print('debugging', line)\n"
            "    return None if line == 'drop' else line.upper()\n"
            "fanout_warm.serve_lines(f)\n");
  WriteFile(dir_.File("in"), "a\ndrop\nb\nc");
  RunResult r =
      testing::Run(Fanout("", {"--mode", "serial", "--chunks", "1", "--retries", "0"}, "lines.py"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir_.File("out")), "A\nB\nC");
}

TEST_F(WarmTest, HelperTurnsAnExceptionIntoAnErrFrame) {
  WriteFile(dir_.File("raise.py"),
            "import fanout_warm\n"
            "def f(data):\n"
            "    raise ValueError('no thanks')\n"
            "fanout_warm.serve_bytes(f)\n");
  RunResult r = testing::Run(Fanout("", {"--mode", "serial", "--retries", "0"}, "raise.py"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("failed the chunk: ValueError: no thanks"), std::string::npos) << r.err;
}

TEST_F(WarmTest, HelperRunsColdWithoutFanoutWarm) {
  RunOptions options;
  options.stdin_data = "x\ny\n";
  options.env = {std::string("PYTHONPATH=") + FANOUT_SOURCE_DIR + "/python"};
  RunResult r = testing::Run(
      {"/usr/bin/env", "python3", "-c", "import fanout_warm; fanout_warm.serve_lines(str.upper)"},
      options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "X\nY\n");
}

}  // namespace
}  // namespace fanout::testing
