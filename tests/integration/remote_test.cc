// Workers started by hand against a coordinator that --listens (issue #5 groundwork):
// remote-only jobs (-j 0), --min-workers and --wait-timeout.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;

class RemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    endpoint_ = "ipc://" + dir_.File("c.sock");
    std::string input;
    for (int i = 0; i < 80; ++i) input += std::to_string(i) + "\n";
    WriteFile(dir_.File("in"), input);
  }
  std::unique_ptr<Child> Coordinator(std::vector<std::string> extra) {
    std::vector<std::string> argv = {FanoutBin(),    "run",
                                     "--listen",     endpoint_,
                                     "-j",           "0",
                                     "--chunks",     "8",
                                     "-i",           dir_.File("in"),
                                     "-o",           dir_.File("out"),
                                     "--stats-json", dir_.File("s.json")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("identity");
    return std::make_unique<Child>(argv, "", dir_.File("err"));
  }
  std::unique_ptr<Child> Worker(const std::string& name) {
    return std::make_unique<Child>(
        std::vector<std::string>{WorkerBin(), "--connect", endpoint_, "--name", name, "--once"});
  }
  TempDir dir_;
  std::string endpoint_;
};

TEST_F(RemoteTest, MinWorkersHoldsDispatchUntilEveryoneHasJoined) {
  auto coordinator = Coordinator({"--min-workers", "2"});
  auto a = Worker("a");
  auto b = Worker("b");
  ASSERT_EQ(coordinator->Wait(milliseconds(20000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), ReadFile(dir_.File("in")));
  auto stats = nlohmann::json::parse(ReadFile(dir_.File("s.json")));
  ASSERT_EQ(stats["per_worker"].size(), 2u);
  for (const auto& w : stats["per_worker"]) EXPECT_GT(w["chunks"].get<int>(), 0) << w;
  EXPECT_EQ(a->Wait(milliseconds(5000)), 0);
  EXPECT_EQ(b->Wait(milliseconds(5000)), 0);
}

TEST_F(RemoteTest, EveryOnceWorkerHearsTheJobEndedAndExits) {
  // The coordinator exits right after its last result: the SHUTDOWNs it sent its remote
  // workers must leave first. Dropped with the socket (no linger), a --once worker waited
  // for the next coordinator for ever (1 run in 12 of a 268 MB job over TCP; here a race
  // each round).
  for (int round = 0; round < 15; ++round) {
    auto coordinator = Coordinator({"--min-workers", "2"});
    auto a = Worker("a");
    auto b = Worker("b");
    ASSERT_EQ(coordinator->Wait(milliseconds(20000)), 0) << ReadFile(dir_.File("err"));
    ASSERT_EQ(a->Wait(milliseconds(5000)), 0) << "round " << round;
    ASSERT_EQ(b->Wait(milliseconds(5000)), 0) << "round " << round;
  }
}

TEST_F(RemoteTest, WaitTimeoutFailsClearlyWhenWorkersAreMissing) {
  auto coordinator = Coordinator({"--min-workers", "2", "--wait-timeout", "700ms"});
  auto a = Worker("a");
  EXPECT_EQ(coordinator->Wait(milliseconds(20000)), 1);
  EXPECT_NE(ReadFile(dir_.File("err")).find("only 1 of 2 workers joined"), std::string::npos)
      << ReadFile(dir_.File("err"));
  EXPECT_FALSE(FileExists(dir_.File("out")));
  EXPECT_EQ(a->Wait(milliseconds(5000)), 0);  // told to shut down
}

TEST_F(RemoteTest, NoWorkerAtAllTimesOut) {
  auto coordinator = Coordinator({"--wait-timeout", "300ms"});
  EXPECT_EQ(coordinator->Wait(milliseconds(20000)), 1);
  EXPECT_NE(ReadFile(dir_.File("err")).find("no worker joined"), std::string::npos)
      << ReadFile(dir_.File("err"));
}

}  // namespace
}  // namespace fanout::testing
