// End to end, issue #14 items 1 and 3: what fanout owns under --state DIR. A directory
// holding anything but fanout's state is refused (exit 2) and left as it was; after a
// successful job only fanout's own files are removed, and DIR itself only if fanout
// created it; a DIR in use by another run is refused naming that run's pid.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

std::string Numbers(int n) {
  std::string text;
  for (int i = 1; i <= n; ++i) text += std::to_string(i) + "\n";
  return text;
}

std::string Translated(std::string text) {  // tr 0-9 a-j
  for (char& c : text) {
    if (c >= '0' && c <= '9') c = static_cast<char>('a' + (c - '0'));
  }
  return text;
}

// Every file under `dir` (relative path -> contents; directories map to "/").
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    std::string rel = fs::relative(e.path(), dir).string();
    files[rel] = e.is_directory() ? "/" : ReadFile(e.path().string());
  }
  return files;
}

size_t Lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

class StateDirTest : public ::testing::Test {
 protected:
  // `fanout run -q ARGS` with the working directory `cwd`.
  RunResult FanoutIn(const std::string& cwd, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd, FanoutBin(),
                                     "run",     "-q"};
    argv.insert(argv.end(), args.begin(), args.end());
    return fanout::testing::Run(argv);
  }
  TempDir dir_;
};

// The repro: data/ holds the input and an unrelated file.
TEST_F(StateDirTest, DirectoryWithForeignFilesIsRefusedAndLeftAlone) {
  std::string data = dir_.File("data");
  fs::create_directory(data);
  WriteFile(data + "/input.txt", Numbers(1000));
  WriteFile(data + "/thesis.tex", "precious\n");
  auto before = Snapshot(data);
  RunResult r = FanoutIn(dir_.path(), {"-i", "data/input.txt", "-o", "data/output.txt", "--state",
                                       "data", "--chunks", "4", "exec", "--", "tr", "0-9", "a-j"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(Lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("--state data is not empty"), std::string::npos) << r.err;
  ASSERT_TRUE(fs::is_directory(data)) << "the state directory was deleted";
  EXPECT_EQ(Snapshot(data), before) << "files in a foreign --state directory were touched";
}

TEST_F(StateDirTest, StateDotNeverEmptiesTheWorkingDirectory) {
  WriteFile(dir_.File("input.txt"), Numbers(100));
  WriteFile(dir_.File("thesis.tex"), "precious\n");
  auto before = Snapshot(dir_.path());
  RunResult r = FanoutIn(dir_.path(), {"-i", "input.txt", "-o", "output.txt", "--state", ".",
                                       "--chunks", "4", "exec", "--", "tr", "0-9", "a-j"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(Lines(r.err), 1u) << r.err;
  EXPECT_EQ(Snapshot(dir_.path()), before);
}

// A state directory made by fanout beside the user's files: after success it is gone and
// everything else (input, output, unrelated files) is there.
TEST_F(StateDirTest, CreatedStateDirectoryIsRemovedAndItsNeighboursKept) {
  std::string data = dir_.File("data");
  fs::create_directory(data);
  WriteFile(data + "/input.txt", Numbers(1000));
  WriteFile(data + "/thesis.tex", "precious\n");
  RunResult r =
      FanoutIn(dir_.path(), {"-i", "data/input.txt", "-o", "data/output.txt", "--state",
                             "data/state", "--chunks", "4", "exec", "--", "tr", "0-9", "a-j"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(FileExists(data + "/state"));
  EXPECT_EQ(ReadFile(data + "/input.txt"), Numbers(1000));
  EXPECT_EQ(ReadFile(data + "/thesis.tex"), "precious\n");
  EXPECT_EQ(ReadFile(data + "/output.txt"), Translated(Numbers(1000)));
}

// An empty directory the user made is used, and kept: only fanout's files are removed, and
// the output written into it stays.
TEST_F(StateDirTest, ExistingEmptyDirectoryIsKeptWithTheOutputInIt) {
  std::string work = dir_.File("work");
  fs::create_directory(work);
  WriteFile(dir_.File("input.txt"), Numbers(500));
  RunResult r = FanoutIn(dir_.path(), {"-i", "input.txt", "-o", "work/out.txt", "--state", "work",
                                       "--chunks", "4", "exec", "--", "tr", "0-9", "a-j"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(fs::is_directory(work)) << "a directory fanout did not create was removed";
  std::map<std::string, std::string> expected = {{"out.txt", Translated(Numbers(500))}};
  EXPECT_EQ(Snapshot(work), expected);
}

// A file the user added to a state directory after the job started is not deleted, and
// nor is the directory holding it.
TEST_F(StateDirTest, ForeignFileInAKeptStateDirectorySurvivesTheResume) {
  WriteFile(dir_.File("input.txt"), Numbers(200));
  std::string go = dir_.File("GO");
  auto job = [&](bool resume) {
    std::vector<std::string> args = {"--mode", "serial", "--chunks",  "4",       "--retries",
                                     "0",      "-i",     "input.txt", "--state", "st"};
    if (resume) args.push_back("--resume");
    for (const char* a : {"exec", "--", "sh", "-c"}) args.push_back(a);
    args.push_back("[ $FANOUT_CHUNK = 2 ] && [ ! -e " + go + " ] && exit 1; cat");
    return FanoutIn(dir_.path(), args);
  };
  RunResult first = job(false);
  ASSERT_EQ(first.exit_code, 1) << first.err;
  WriteFile(dir_.File("st/notes.txt"), "mine\n");
  WriteFile(go, "");
  RunResult second = job(true);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out, Numbers(200));
  std::map<std::string, std::string> expected = {{"notes.txt", "mine\n"}};
  EXPECT_EQ(Snapshot(dir_.File("st")), expected);
}

// Item 3: the first run holds DIR's lock while its only chunk blocks on a FIFO.
TEST_F(StateDirTest, SecondRunOnALockedStateDirectoryExitsNamingThePid) {
  std::string fifo = dir_.File("fifo"), state = dir_.File("state");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  WriteFile(dir_.File("input.txt"), Numbers(100));
  std::vector<std::string> argv = {FanoutBin(),
                                   "run",
                                   "-q",
                                   "--mode",
                                   "serial",
                                   "--chunks",
                                   "1",
                                   "-i",
                                   dir_.File("input.txt"),
                                   "-o",
                                   dir_.File("out1.txt"),
                                   "--state",
                                   state,
                                   "exec",
                                   "--",
                                   "sh",
                                   "-c",
                                   "cat " + fifo + " >/dev/null; cat"};
  Child first(argv, "", dir_.File("first.err"));
  // The chunk runs (so the lock is held) once the FIFO has a reader.
  int writer = -1;
  auto deadline = std::chrono::steady_clock::now() + milliseconds(20000);
  while ((writer = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_GE(writer, 0) << ReadFile(dir_.File("first.err"));

  std::vector<std::string> second_argv = argv;
  second_argv[10] = dir_.File("out2.txt");
  second_argv.back() = "cat";
  RunResult second = fanout::testing::Run(second_argv);
  close(writer);  // the first run's chunk goes on
  EXPECT_EQ(second.exit_code, 2) << second.err;
  EXPECT_EQ(Lines(second.err), 1u) << second.err;
  EXPECT_NE(second.err.find("pid " + std::to_string(first.pid())), std::string::npos) << second.err;
  EXPECT_FALSE(FileExists(dir_.File("out2.txt")));

  EXPECT_EQ(first.Wait(milliseconds(30000)), 0) << ReadFile(dir_.File("first.err"));
  EXPECT_EQ(ReadFile(dir_.File("out1.txt")), Numbers(100));
  EXPECT_FALSE(FileExists(state));
}

}  // namespace
}  // namespace fanout::testing
