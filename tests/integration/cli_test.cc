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

// Only the subcommand given gets its options made (cli.cc), yet every subcommand's help and
// usage errors stay whole, and a usage error points at the help of the subcommand given.
TEST(CliTest, EachSubcommandHasItsHelpAndItsUsageErrorsPointThere) {
  for (auto [command, option] : {std::pair{"run", "--chunks"},
                                 {"server", "--workers-listen"},
                                 {"keygen", "NAME"},
                                 {"jobs", "--server-key"},
                                 {"wait", "--output"},
                                 {"bench", "--quick"}}) {
    RunResult help = fanout::testing::Run({FanoutBin(), command, "--help"});
    EXPECT_EQ(help.exit_code, 0) << command;
    EXPECT_NE(help.out.find(option), std::string::npos) << command << ": " << help.out;
  }
  RunResult top = fanout::testing::Run({FanoutBin(), "--help"});
  for (const char* command : {"run", "tasks", "keygen", "server", "jobs", "status", "cancel",
                              "wait", "output", "bench"}) {
    EXPECT_NE(top.out.find(std::string("\n  ") + command + " "), std::string::npos) << command;
  }
  for (auto [argv, help] :
       {std::pair{std::vector<std::string>{"status"}, "see 'fanout status --help'"},
        {{"server"}, "see 'fanout server --help'"},
        {{"run", "--chunks", "0", "identity"}, "see 'fanout run --help'"},
        {{"bogus"}, "see 'fanout --help'"}}) {
    argv.insert(argv.begin(), FanoutBin());
    RunResult r = fanout::testing::Run(argv);
    EXPECT_EQ(r.exit_code, 2) << argv[1];
    EXPECT_NE(r.err.find(help), std::string::npos) << r.err;
  }
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
