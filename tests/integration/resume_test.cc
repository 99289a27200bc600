// End to end, issue #4: --joblog lines, and --state/--resume after the coordinator is
// killed with SIGKILL mid-job: the resumed job runs only the unfinished chunks and its
// output is byte-identical to a serial run; a resume whose input, task or chunking
// changed is refused (exit 2) naming what changed. Issue #14 item 8: the input's whole
// content is fingerprinted (an in-place edit with its mtime restored, a changed stdin),
// and stored chunk files are verified by hash (a tampered one is run again).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> Fields(const std::string& line) {
  std::vector<std::string> fields;
  std::istringstream in(line);
  for (std::string f; std::getline(in, f, '\t');) fields.push_back(f);
  return fields;
}

// Polls `done` until it holds or `limit` passes (files have no event to wait on here).
template <typename Pred>
bool WaitFor(Pred done, milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

std::string Numbers(int n) {
  std::string text;
  for (int i = 1; i <= n; ++i) text += "row " + std::to_string(i) + "\n";
  return text;
}

class ResumeTest : public ::testing::Test {
 protected:
  RunResult Fanout(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {FanoutBin(), "run", "-q"};
    argv.insert(argv.end(), args.begin(), args.end());
    return fanout::testing::Run(argv);
  }
  TempDir dir_;
};

TEST_F(ResumeTest, JobLogHasAHeaderAndOneLinePerAttempt) {
  WriteFile(dir_.File("in.txt"), Numbers(40));
  std::string log = dir_.File("log.tsv");
  // Chunk 2 fails its first attempt with status 7.
  RunResult r = Fanout({"-j", "2", "--chunks", "4", "--retries", "1", "-i", dir_.File("in.txt"),
                        "--joblog", log, "exec", "--", "sh", "-c",
                        "[ $FANOUT_CHUNK = 2 ] && [ $FANOUT_ATTEMPT = 1 ] && exit 7; cat"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = Lines(ReadFile(log));
  ASSERT_EQ(lines.size(), 6u) << ReadFile(log);
  EXPECT_EQ(lines[0],
            "chunk\tattempt\tworker\thost\tstart\twall_seconds\tcpu_seconds\tbytes_in\tbytes_out\t"
            "exit_status\terror");
  double now = static_cast<double>(time(nullptr));
  std::map<std::string, int> ok_per_chunk;
  int failed = 0;
  uint64_t bytes_in = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    auto f = Fields(lines[i]);
    ASSERT_EQ(f.size(), 11u) << lines[i];
    EXPECT_NEAR(std::stod(f[4]), now, 120) << lines[i];
    EXPECT_GE(std::stod(f[5]), 0) << lines[i];
    if (f[9] == "0") {
      EXPECT_EQ(f[7], f[8]) << lines[i];  // cat: as many bytes out as in
      ++ok_per_chunk[f[0]];
      bytes_in += std::stoull(f[7]);
      EXPECT_EQ(f[10], "-");
    } else {
      ++failed;
      EXPECT_EQ(f[0], "2");
      EXPECT_EQ(f[1], "1");
      EXPECT_EQ(f[9], "7");
      EXPECT_NE(f[10].find("status 7"), std::string::npos) << lines[i];
    }
  }
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(ok_per_chunk.size(), 4u);
  EXPECT_EQ(bytes_in, Numbers(40).size());
}

TEST_F(ResumeTest, KilledCoordinatorResumesOnlyUnfinishedChunksWithIdenticalOutput) {
  std::string input = Numbers(2000);
  std::string in = dir_.File("in.txt"), out = dir_.File("out.txt"), go = dir_.File("GO");
  std::string state = dir_.File("state"), log = dir_.File("log.tsv");
  WriteFile(in, input);
  // Chunks 0-4 finish at once; the rest wait for GO, so the job is mid-way when killed.
  std::vector<std::string> argv = {
      FanoutBin(),
      "run",
      "-q",
      "-j",
      "2",
      "--chunks",
      "20",
      "-i",
      in,
      "-o",
      out,
      "--state",
      state,
      "--joblog",
      log,
      "exec",
      "--",
      "sh",
      "-c",
      "if [ $FANOUT_CHUNK -ge 5 ]; then until [ -e " + go + " ]; do sleep 0.01; done; fi; cat"};
  {
    Child first(argv, "", dir_.File("first.err"));
    ASSERT_TRUE(WaitFor([&] { return Lines(ReadFile(state + "/journal")).size() >= 5; },
                        milliseconds(20000)))
        << ReadFile(dir_.File("first.err"));
    first.Signal(SIGKILL);
    EXPECT_EQ(first.Wait(milliseconds(10000)), 128 + SIGKILL);
  }
  EXPECT_FALSE(FileExists(out));
  size_t finished = Lines(ReadFile(state + "/journal")).size();
  WriteFile(go, "");

  std::vector<std::string> resume = argv;
  resume.insert(resume.begin() + 3, "--resume");
  RunResult r = fanout::testing::Run(resume);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(ReadFile(out) == input) << "resumed output differs from the serial result";
  EXPECT_FALSE(FileExists(state)) << "state directory should be removed after success";
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_EQ(entry.path().filename().string().rfind(".out.txt.fanout-", 0), std::string::npos)
        << "the killed run's temporary output was left behind: " << entry.path();
  }

  // The log holds both runs: every chunk succeeded exactly once, the first run's chunks
  // were not run again, and the resumed run ran only the others.
  auto lines = Lines(ReadFile(log));
  std::map<int, int> ok;
  for (size_t i = 1; i < lines.size(); ++i) {
    auto f = Fields(lines[i]);
    ASSERT_EQ(f.size(), 11u) << lines[i];
    if (f[0] == "chunk") continue;  // no second header when appending
    if (f[9] == "0") ++ok[std::stoi(f[0])];
  }
  EXPECT_EQ(ok.size(), 20u);
  for (const auto& [chunk, times] : ok) EXPECT_EQ(times, 1) << "chunk " << chunk << " ran twice";
  EXPECT_EQ(std::count(lines.begin(), lines.end(), lines[0]), 1);
  EXPECT_GE(finished, 5u);
}

TEST_F(ResumeTest, ResumeRefusesAChangedInputTaskOrChunking) {
  std::string in = dir_.File("in.txt"), state = dir_.File("state");
  WriteFile(in, Numbers(100));
  auto job = [&](const std::vector<std::string>& extra, const std::string& cmd) {
    std::vector<std::string> args = {"-j", "2", "--chunks", "5", "-i", in, "--state", state};
    args.insert(args.end(), extra.begin(), extra.end());
    for (auto a : {"exec", "--", "sh", "-c"}) args.push_back(a);
    args.push_back(cmd);
    return Fanout(args);
  };
  const std::string failing = "[ $FANOUT_CHUNK = 3 ] && exit 1; cat";
  RunResult first = job({}, failing);
  ASSERT_EQ(first.exit_code, 1) << first.err;
  EXPECT_NE(first.err.find("--resume"), std::string::npos) << first.err;

  RunResult again = job({}, failing);  // same state dir without --resume
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("add --resume"), std::string::npos) << again.err;

  RunResult task = job({"--resume"}, "cat");
  EXPECT_EQ(task.exit_code, 2);
  EXPECT_NE(task.err.find("the task changed"), std::string::npos) << task.err;

  RunResult chunking = job({"--resume", "--chunk-size", "7"}, failing);
  EXPECT_EQ(chunking.exit_code, 2) << chunking.err;

  WriteFile(in, Numbers(101));
  RunResult input = job({"--resume"}, failing);
  EXPECT_EQ(input.exit_code, 2);
  EXPECT_NE(input.err.find("the input changed"), std::string::npos) << input.err;
  EXPECT_TRUE(FileExists(state + "/journal"));
}

TEST_F(ResumeTest, KeepStateKeepsTheDirectoryAfterSuccess) {
  std::string in = dir_.File("in.txt"), state = dir_.File("state");
  WriteFile(in, Numbers(50));
  RunResult r = Fanout({"--mode", "serial", "--chunks", "3", "-i", in, "--state", state,
                        "--keep-state", "identity"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, Numbers(50));
  EXPECT_EQ(Lines(ReadFile(state + "/journal")).size(), 3u);
  // Resuming a finished job runs nothing and writes the same output.
  RunResult again = Fanout({"--mode", "serial", "--chunks", "3", "-i", in, "--state", state,
                            "--resume", "--joblog", dir_.File("log"), "identity"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, Numbers(50));
  EXPECT_EQ(Lines(ReadFile(dir_.File("log"))).size(), 1u);  // header only
}

TEST_F(ResumeTest, ResumedHeaderJobWritesTheHeaderOnceAndEveryRowOnce) {
  std::string in = dir_.File("in.csv"), go = dir_.File("GO"), state = dir_.File("state");
  std::string rows = "id,name\n";
  for (int i = 0; i < 60; ++i) rows += std::to_string(i) + ",n" + std::to_string(i) + "\n";
  WriteFile(in, rows);
  // Chunks 3 and up fail until GO exists; the same command then resumes.
  auto job = [&](bool resume) {
    std::vector<std::string> args = {"--mode", "threads",  "-j",        "2", "--chunks",
                                     "6",      "--header", "--retries", "0", "-i",
                                     in,       "--state",  state};
    if (resume) args.push_back("--resume");
    for (const char* a : {"exec", "--", "sh", "-c"}) args.push_back(a);
    args.push_back("[ $FANOUT_CHUNK -ge 3 ] && [ ! -e " + go + " ] && exit 1; tr a-z A-Z");
    return Fanout(args);
  };
  RunResult first = job(false);
  ASSERT_EQ(first.exit_code, 1) << first.err;
  WriteFile(go, "");
  RunResult second = job(true);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  std::string upper = rows;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(second.out, upper);
}

// Three MiB and more, so an edit in the middle lies outside the first and last MiB.
std::string BigInput() {
  std::string text;
  for (int i = 0; text.size() < (3u << 20) + 12345; ++i) text += "row " + std::to_string(i) + "\n";
  return text;
}

// Replaces one byte in the middle of `path` in place (same inode, same size).
void EditMiddleInPlace(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  auto size = std::filesystem::file_size(path);
  f.seekg(static_cast<std::streamoff>(size / 2));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(size / 2));
  f.put(c == '7' ? '8' : '7');
}

TEST_F(ResumeTest, ResumeRefusesAnInputEditedInPlaceWithItsMtimeRestored) {
  std::string in = dir_.File("in.txt"), state = dir_.File("state"), ref = dir_.File("ref");
  WriteFile(in, BigInput());
  auto job = [&](bool resume) {
    std::vector<std::string> args = {"--mode", "serial", "--chunks", "5",       "--retries",
                                     "0",      "-i",     in,         "--state", state};
    if (resume) args.push_back("--resume");
    for (auto a : {"exec", "--", "sh", "-c", "[ $FANOUT_CHUNK = 3 ] && exit 1; cat"}) {
      args.push_back(a);
    }
    return Fanout(args);
  };
  RunResult first = job(false);
  ASSERT_EQ(first.exit_code, 1) << first.err;
  ASSERT_EQ(fanout::testing::Run({"/usr/bin/touch", "-r", in, ref}).exit_code, 0);
  struct stat before {};
  ASSERT_EQ(stat(in.c_str(), &before), 0);
  EditMiddleInPlace(in);
  ASSERT_EQ(fanout::testing::Run({"/usr/bin/touch", "-r", ref, in}).exit_code, 0);
  struct stat after {};
  ASSERT_EQ(stat(in.c_str(), &after), 0);
  ASSERT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  ASSERT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  ASSERT_EQ(after.st_size, before.st_size);

  RunResult resumed = job(true);
  EXPECT_EQ(resumed.exit_code, 2) << resumed.err;
  EXPECT_NE(resumed.err.find("the input changed"), std::string::npos) << resumed.err;
}

TEST_F(ResumeTest, ResumeRefusesAStdinInputChangedInTheMiddle) {
  std::string state = dir_.File("state");
  std::string input = BigInput();
  auto job = [&](const std::string& data, bool resume) {
    std::vector<std::string> argv = {FanoutBin(), "run",      "-q", "--mode",
                                     "serial",    "--chunks", "5",  "--retries",
                                     "0",         "--state",  state};
    if (resume) argv.push_back("--resume");
    for (auto a : {"exec", "--", "sh", "-c", "[ $FANOUT_CHUNK = 3 ] && exit 1; cat"}) {
      argv.push_back(a);
    }
    RunOptions options;
    options.stdin_data = data;
    return fanout::testing::Run(argv, options);
  };
  RunResult first = job(input, false);
  ASSERT_EQ(first.exit_code, 1) << first.err;
  std::string changed = input;
  changed[changed.size() / 2] = changed[changed.size() / 2] == '7' ? '8' : '7';
  RunResult resumed = job(changed, true);
  EXPECT_EQ(resumed.exit_code, 2) << resumed.err;
  EXPECT_NE(resumed.err.find("the input changed"), std::string::npos) << resumed.err;
}

TEST_F(ResumeTest, TamperedSameSizeChunkFileIsRunAgain) {
  std::string in = dir_.File("in.txt"), state = dir_.File("state"), go = dir_.File("GO");
  std::string out = dir_.File("out.txt");
  std::string input = Numbers(400);
  WriteFile(in, input);
  auto job = [&](bool resume) {
    std::vector<std::string> argv = {FanoutBin(), "run", "-v",        "--mode",  "serial",
                                     "--chunks",  "4",   "--retries", "0",       "-i",
                                     in,          "-o",  out,         "--state", state};
    if (resume) argv.push_back("--resume");
    for (auto a : {"exec", "--", "sh", "-c"}) argv.push_back(a);
    argv.push_back("[ $FANOUT_CHUNK = 2 ] && [ ! -e " + go + " ] && exit 1; cat");
    return fanout::testing::Run(argv);
  };
  RunResult first = job(false);
  ASSERT_EQ(first.exit_code, 1) << first.err;
  std::string chunk0;
  for (const auto& e : std::filesystem::directory_iterator(state + "/chunks")) {
    if (e.path().filename().string().rfind("0-", 0) == 0) chunk0 = e.path().string();
  }
  ASSERT_FALSE(chunk0.empty()) << "chunk 0 was not stored";
  std::string stored = ReadFile(chunk0);
  ASSERT_EQ(stored.substr(0, 6), "row 1\n");
  stored[4] = 'X';  // same size, different bytes
  WriteFile(chunk0, stored);
  WriteFile(go, "");

  RunResult resumed = job(true);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_TRUE(ReadFile(out) == input) << "a tampered stored chunk was used";
  EXPECT_NE(resumed.err.find("does not match its journal"), std::string::npos) << resumed.err;
}

}  // namespace
}  // namespace fanout::testing
