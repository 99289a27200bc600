// Ctrl-C (issue #8): SIGINT mid-job stops dispatch, cancels running chunks, stops the
// workers and exits 130, in every mode, leaving no output file, no worker and no exec
// child behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;

class InterruptTest : public ::testing::TestWithParam<std::string> {};

TEST_P(InterruptTest, SigintExits130AndLeavesNothingBehind) {
  TempDir dir;
  std::string markers = dir.File("m");
  ASSERT_EQ(mkdir(markers.c_str(), 0755), 0);
  std::string input;
  for (int i = 0; i < 8; ++i) input += std::to_string(i) + "\n";
  WriteFile(dir.File("in"), input);
  // A sleep duration unique to this test and mode identifies its exec children in /proc.
  std::string sleeper = "sleep 59." + std::to_string(100 + GetParam().size());
  // Workers under a name of this test's own, so that workers of tests running in parallel
  // are not mistaken for survivors.
  std::string worker = dir.File("fanout-worker-interrupted");
  ASSERT_EQ(symlink(WorkerBin().c_str(), worker.c_str()), 0);
  std::vector<std::string> argv = {FanoutBin(), "run", "--mode", GetParam(), "-j", "2"};
  if (GetParam() == std::string("processes")) {
    argv.insert(argv.end(), {"--worker-bin", worker});  // a flag only workers honour
  }
  argv.insert(argv.end(), {"--chunks", "4", "-i", dir.File("in"), "-o", dir.File("out"), "exec",
                           "--", "sh", "-c", "touch \"$0/started-$$\"; " + sleeper, markers});
  Child job(argv, "", dir.File("err"));
  // Wait (bounded) for a chunk's command to be running: it leaves a marker file.
  auto deadline = std::chrono::steady_clock::now() + milliseconds(10000);
  auto started = [&] {
    return !ProcessesMatching("sh -c touch \"$0/started-$$\"").empty() &&
           std::filesystem::directory_iterator(markers) != std::filesystem::directory_iterator();
  };
  while (!started() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_TRUE(started()) << "no chunk started";
  auto start = std::chrono::steady_clock::now();
  job.Signal(SIGINT);
  EXPECT_EQ(job.Wait(milliseconds(10000)), 130) << ReadFile(dir.File("err"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_NE(ReadFile(dir.File("err")).find("interrupted by SIGINT"), std::string::npos);
  EXPECT_FALSE(FileExists(dir.File("out")));
  // A killed grandchild may take a moment to be torn down by the kernel.
  auto gone_by = std::chrono::steady_clock::now() + milliseconds(3000);
  while (!ProcessesMatching(sleeper).empty() && std::chrono::steady_clock::now() < gone_by) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  for (pid_t p : ProcessesMatching(sleeper)) {
    ADD_FAILURE() << "an exec child survived: " << p << " "
                  << ReadFile("/proc/" + std::to_string(p) + "/stat");
  }
  EXPECT_TRUE(ProcessesMatching(worker + " --connect").empty());
}

// SIGTERM while the output's reader has stopped reading (a pipe left full): the job ends
// with 130 as it would otherwise, instead of waiting in write(2) until the reader reads.
TEST_P(InterruptTest, SigtermWhileTheOutputsReaderStallsExits130) {
  TempDir dir;
  std::string input;
  for (int i = 0; input.size() < (4u << 20); ++i) input += "line " + std::to_string(i) + "\n";
  WriteFile(dir.File("in"), input);
  StalledReader reader(dir.File("pipe"));
  std::vector<std::string> argv = {FanoutBin(), "run", "-q", "--mode", GetParam(), "-j", "2"};
  if (GetParam() == std::string("processes"))
    argv.insert(argv.end(), {"--worker-bin", WorkerBin()});
  argv.insert(argv.end(), {"-i", dir.File("in"), "identity"});
  Child job(argv, dir.File("pipe"), dir.File("err"));
  ASSERT_TRUE(reader.WaitFull(milliseconds(20000))) << ReadFile(dir.File("err"));
  job.Signal(SIGTERM);
  EXPECT_EQ(job.Wait(milliseconds(10000)), 130) << ReadFile(dir.File("err"));
  EXPECT_NE(ReadFile(dir.File("err")).find("interrupted by SIGTERM"), std::string::npos)
      << ReadFile(dir.File("err"));
}

INSTANTIATE_TEST_SUITE_P(Modes, InterruptTest, ::testing::Values("serial", "threads", "processes"));

}  // namespace
}  // namespace fanout::testing
