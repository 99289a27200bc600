// The command line's informational paths: --help, --version, `fanout tasks`. (Bad command
// lines are rows of the bad-input matrix in bad_input_test.cc.)
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

TEST(CliTest, HelpExitsZero) {
  RunResult help = fanout::testing::Run({FanoutBin(), "run", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--chunks"), std::string::npos);
}

// --version prints the program's name and CMake's project version, exactly, on one line.
TEST(CliTest, VersionIsTheProjectVersion) {
  RunResult fanout = fanout::testing::Run({FanoutBin(), "--version"});
  EXPECT_EQ(fanout.exit_code, 0);
  EXPECT_EQ(fanout.out, "fanout " FANOUT_PROJECT_VERSION "\n");
  RunResult worker = fanout::testing::Run({WorkerBin(), "--version"});
  EXPECT_EQ(worker.exit_code, 0);
  EXPECT_EQ(worker.out, "fanout-worker " FANOUT_PROJECT_VERSION "\n");
}

TEST(CliTest, NoSubcommandIsAUsageError) {
  RunResult r = fanout::testing::Run({FanoutBin()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_NE(r.err.find("subcommand"), std::string::npos) << r.err;
}

TEST(CliTest, TasksListsBuiltins) {
  RunResult r = fanout::testing::Run({FanoutBin(), "tasks"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* name : {"identity", "sleep", "product", "exec"}) {
    EXPECT_NE(r.out.find(name), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace fanout::testing
