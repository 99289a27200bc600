// Input faults (issue #14, items 9, 10, 12, 17) through the real `fanout` and workers:
// an input truncated while the job runs fails the job (the coordinator survives, the old
// output stays); --header output when early chunks print nothing; SIGTERM and --max-spool
// while stdin or a FIFO is spooled; plans and records too big to hold, refused early.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"

extern char** environ;

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

RunOptions Within(milliseconds timeout) {
  RunOptions options;
  options.timeout = timeout;
  return options;
}

std::string Seq(int n) {
  std::string s;
  for (int i = 1; i <= n; ++i) s += std::to_string(i) + "\n";
  return s;
}

// ---- --header: the output header comes from the first non-empty output (item 10) ----

struct HeaderCase {
  std::string mode;
  bool unordered;
  bool to_file;
};

void PrintTo(const HeaderCase& c, std::ostream* os) {
  *os << c.mode << (c.unordered ? " --unordered" : "") << (c.to_file ? " -o" : "");
}

class HeaderOutputTest : public ::testing::TestWithParam<HeaderCase> {};

TEST_P(HeaderOutputTest, HeaderComesFromFirstNonEmptyOutput) {
  const HeaderCase& c = GetParam();
  TempDir dir;
  WriteFile(dir.File("m.csv"), "h1,h2\n1,a\n2,b\n3,c\n4,d\n");
  std::vector<std::string> argv = {FanoutBin(), "run", "-q", "--mode",
                                   c.mode,      "-j",  "2",  "--header",
                                   "--chunks",  "4",   "-i", dir.File("m.csv")};
  if (c.unordered) argv.push_back("--unordered");
  if (c.to_file) argv.insert(argv.end(), {"-o", dir.File("out")});
  // Chunk 0 prints nothing at all; the others echo their header and rows.
  argv.insert(argv.end(), {"exec", "--", "sh", "-c", "[ $FANOUT_CHUNK = 0 ] || cat"});
  RunResult r = fanout::testing::Run(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string out = c.to_file ? ReadFile(dir.File("out")) : r.out;
  if (!c.unordered) {
    EXPECT_EQ(out, "h1,h2\n2,b\n3,c\n4,d\n");
    return;
  }
  ASSERT_EQ(out.rfind("h1,h2\n", 0), 0u) << out;
  std::string body = out.substr(6);
  EXPECT_EQ(body.find("h1,h2"), std::string::npos) << "header written twice: " << out;
  std::sort(body.begin(), body.end());
  std::string want = "2,b\n3,c\n4,d\n";
  std::sort(want.begin(), want.end());
  EXPECT_EQ(body, want) << out;
}

INSTANTIATE_TEST_SUITE_P(
    Modes, HeaderOutputTest,
    ::testing::Values(HeaderCase{"serial", false, false}, HeaderCase{"threads", false, false},
                      HeaderCase{"processes", false, false}, HeaderCase{"serial", false, true},
                      HeaderCase{"threads", false, true}, HeaderCase{"processes", false, true},
                      HeaderCase{"serial", true, true}, HeaderCase{"threads", true, false},
                      HeaderCase{"processes", true, true}),
    [](const auto& info) {
      return info.param.mode + (info.param.unordered ? "Unordered" : "Ordered") +
             (info.param.to_file ? "ToFile" : "ToStdout");
    });

// ---- the input truncated during the job (item 9) --------------------------------------

struct TruncateCase {
  std::string name;
  std::vector<std::string> flags;
};

void PrintTo(const TruncateCase& c, std::ostream* os) { *os << c.name; }

class InputChangeTest : public ::testing::TestWithParam<TruncateCase> {};

// Chunk 1's own command truncates the input (as copytruncate log rotation would), so the
// change happens at a known point: after chunk 0, before the chunks after 1 are read.
TEST_P(InputChangeTest, TruncationFailsTheJobAndKeepsTheOldOutput) {
  TempDir dir;
  std::string input = dir.File("t.txt"), output = dir.File("o.txt");
  WriteFile(input, Seq(300000));  // ~2 MB in 8 chunks
  WriteFile(output, "the previous output\n");
  std::vector<std::string> argv = {FanoutBin(), "run", "-q", "--chunks", "8",
                                   "-i",        input, "-o", output};
  argv.insert(argv.end(), GetParam().flags.begin(), GetParam().flags.end());
  argv.insert(argv.end(),
              {"exec", "--", "sh", "-c",
               "if [ $FANOUT_CHUNK = 1 ]; then truncate -s 1000 \"$0\"; fi; cat", input});
  RunResult r = fanout::testing::Run(argv, Within(milliseconds(60000)));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.err;  // not 135 (SIGBUS), not 0 with spliced lines
  EXPECT_NE(r.err.find("input '" + input + "' changed during the job"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("output discarded"), std::string::npos) << r.err;
  std::string kept = ReadFile(output);
  EXPECT_TRUE(kept == "the previous output\n")
      << "the old output was replaced (" << kept.size() << " bytes now)";
}

INSTANTIATE_TEST_SUITE_P(
    Modes, InputChangeTest,
    ::testing::Values(TruncateCase{"serial", {"--mode", "serial"}},
                      TruncateCase{"threads", {"--mode", "threads", "-j", "2"}},
                      TruncateCase{"processesRef", {"--mode", "processes", "-j", "2"}},
                      TruncateCase{"processesCopy",
                                   {"--mode", "processes", "-j", "1", "--local-input", "copy"}}),
    [](const auto& info) { return info.param.name; });

// ---- spooling stdin and FIFOs (item 12) -----------------------------------------------

// True once `pid` holds its (unlinked) spool file open.
bool Spooling(pid_t pid) {
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (target.find("fanout-input-") != std::string::npos) return true;
  }
  return false;
}

TEST(SpoolTest, SigtermStopsSpoolingANeverEndingFifo) {
  TempDir dir, tmp;
  std::string fifo = dir.File("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  int writer = open(fifo.c_str(), O_RDWR | O_CLOEXEC);  // held open: the input never ends
  ASSERT_GE(writer, 0);
  ASSERT_EQ(write(writer, "1\n2\n", 4), 4);
  Child job({"/usr/bin/env", "TMPDIR=" + tmp.path(), FanoutBin(), "run", "-i", fifo, "-o",
             dir.File("out"), "exec", "--", "cat"},
            "", dir.File("err"));
  auto deadline = Steady::now() + milliseconds(10000);
  while (!Spooling(job.pid()) && Steady::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_TRUE(Spooling(job.pid())) << "fanout never started spooling";
  auto start = Steady::now();
  job.Signal(SIGTERM);
  EXPECT_EQ(job.Wait(milliseconds(10000)), 130) << ReadFile(dir.File("err"));
  EXPECT_LT(Steady::now() - start, std::chrono::seconds(5));
  EXPECT_NE(ReadFile(dir.File("err")).find("interrupted by SIGTERM"), std::string::npos);
  EXPECT_FALSE(FileExists(dir.File("out")));
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path())) << "a spool file was left in TMPDIR";
  close(writer);
}

TEST(SpoolTest, SigtermWhileWaitingForAFifoWriter) {
  TempDir dir, outdir;
  std::string fifo = dir.File("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);  // no writer ever comes
  Child job({FanoutBin(), "run", "-i", fifo, "-o", outdir.File("out"), "exec", "--", "cat"}, "",
            dir.File("err"));
  // The output's hidden temporary file is made just before the input is opened.
  auto deadline = Steady::now() + milliseconds(10000);
  while (std::filesystem::is_empty(outdir.path()) && Steady::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_FALSE(std::filesystem::is_empty(outdir.path())) << "fanout did not start";
  job.Signal(SIGTERM);
  EXPECT_EQ(job.Wait(milliseconds(10000)), 130) << ReadFile(dir.File("err"));
  EXPECT_TRUE(std::filesystem::is_empty(outdir.path()));
}

TEST(SpoolTest, AFifoIsReadToItsEnd) {
  TempDir dir;
  std::string fifo = dir.File("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Child job(
      {FanoutBin(), "run", "--chunks", "2", "-i", fifo, "-o", dir.File("out"), "exec", "--", "cat"},
      "", dir.File("err"));
  int writer = open(fifo.c_str(), O_WRONLY | O_CLOEXEC);  // waits for fanout to open it
  ASSERT_GE(writer, 0);
  ASSERT_EQ(write(writer, "1\n2\n", 4), 4);
  std::this_thread::sleep_for(milliseconds(50));  // a pause mid-stream is not the end
  ASSERT_EQ(write(writer, "3\n", 2), 2);
  close(writer);
  EXPECT_EQ(job.Wait(milliseconds(20000)), 0) << ReadFile(dir.File("err"));
  EXPECT_EQ(ReadFile(dir.File("out")), "1\n2\n3\n");
}

TEST(SpoolTest, MaxSpoolRefusesAnEndlessDevice) {
  TempDir dir, tmp;
  RunResult r = fanout::testing::Run({"/usr/bin/env", "TMPDIR=" + tmp.path(), FanoutBin(), "run",
                                      "-i", "/dev/zero", "--block", "1M", "--max-spool", "8M", "-o",
                                      dir.File("out"), "exec", "--", "cat"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("is over --max-spool 8.0 MiB"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(FileExists(dir.File("out")));
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path())) << "a spool file was left in TMPDIR";
}

// ---- plans and records too big to hold (item 17) --------------------------------------

// Runs argv to its end; returns the exit code (128+signal) and the child's peak RSS.
int RunMeasured(const std::vector<std::string>& argv, long* max_rss_kib, std::string* err_path) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, err_path->c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  struct rusage usage {};
  if (wait4(pid, &status, 0, &usage) != pid) return -1;
  *max_rss_kib = usage.ru_maxrss;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(PlanLimitTest, HugeChunkCountIsRefusedAtOnce) {
  for (const std::vector<std::string>& cut : {std::vector<std::string>{"--chunks", "1099511627776"},
                                              std::vector<std::string>{"--chunk-size", "1"}}) {
    for (const char* mode : {"auto", "processes"}) {
      std::vector<std::string> argv = {FanoutBin(), "run",     "--mode",
                                       mode,        "--range", "0:1099511627776"};
      argv.insert(argv.end(), cut.begin(), cut.end());
      argv.push_back("product");
      auto start = Steady::now();
      RunResult r = fanout::testing::Run(argv, Within(milliseconds(20000)));
      EXPECT_EQ(r.exit_code, 2) << cut[0] << " " << mode << ": " << r.err;
      EXPECT_LT(Steady::now() - start, std::chrono::seconds(5));
      EXPECT_NE(r.err.find("the plan would have 1099511627776 chunks, over the limit of"),
                std::string::npos)
          << r.err;
    }
  }
}

TEST(PlanLimitTest, RecordOverMaxMessageIsRefusedWithoutReadingIt) {
  TempDir dir;
  // One 1 GiB record (a sparse file of NULs: no newline anywhere).
  std::string big = dir.File("big");
  int fd = open(big.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, off_t{1} << 30), 0);
  close(fd);
  for (std::vector<std::string> cut : {std::vector<std::string>{}, {"--chunks", "2"}}) {
    std::vector<std::string> argv = {FanoutBin(), "run", "--mode", "processes", "--max-message",
                                     "1M",        "-i",  big,      "-o",        dir.File("out")};
    argv.insert(argv.end(), cut.begin(), cut.end());
    argv.push_back("identity");
    long rss_kib = 0;
    std::string err_path = dir.File("err");
    auto start = Steady::now();
    int code = RunMeasured(argv, &rss_kib, &err_path);
    std::string err = ReadFile(err_path);
    EXPECT_EQ(code, 2) << err;
    EXPECT_NE(err.find("the record at byte 0 is over --max-message 1048576"), std::string::npos)
        << err;
    EXPECT_LT(rss_kib, 128 * 1024) << "the record was read into memory";
    EXPECT_LT(Steady::now() - start, std::chrono::seconds(10));
    EXPECT_FALSE(FileExists(dir.File("out")));
  }
}

}  // namespace
}  // namespace fanout::testing
