// Bad command lines and unusable inputs/outputs: one line on stderr naming the problem,
// exit code 2, nothing written, no worker started.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

struct UsageCase {
  std::string name;
  std::vector<std::string> args;
  std::string expect_in_message;
};

void PrintTo(const UsageCase& c, std::ostream* os) { *os << c.name; }

class UsageTest : public ::testing::TestWithParam<UsageCase> {
 protected:
  TempDir dir_;
};

TEST_P(UsageTest, ExitsTwoWithOneLineAndWritesNothing) {
  const UsageCase& c = GetParam();
  std::string out = dir_.File("out.txt");
  std::vector<std::string> argv = {FanoutBin()};
  for (const auto& a : c.args) argv.push_back(a == "OUT" ? out : a);
  RunOptions options;
  options.stdin_data = "1\n2\n";
  RunResult r = fanout::testing::Run(argv, options);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(c.expect_in_message), std::string::npos) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
  EXPECT_TRUE(r.out.empty());
  EXPECT_FALSE(FileExists(out));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, UsageTest,
    ::testing::Values(
        UsageCase{"UnknownTask", {"run", "-o", "OUT", "frobnicate"}, "unknown task 'frobnicate'"},
        UsageCase{"MissingTask", {"run", "-o", "OUT"}, "missing TASK"},
        UsageCase{"MissingInput",
                  {"run", "-o", "OUT", "-i", "/nonexistent/in.txt", "identity"},
                  "/nonexistent/in.txt"},
        UsageCase{"ZeroChunks", {"run", "-o", "OUT", "--chunks", "0", "identity"}, "--chunks"},
        UsageCase{"UnwritableOutput",
                  {"run", "-o", "/nonexistent/dir/out", "identity"},
                  "/nonexistent/dir/out"},
        UsageCase{"BadRange", {"run", "-o", "OUT", "--range", "5:x", "product"}, "--range"},
        UsageCase{"BadMode", {"run", "-o", "OUT", "--mode", "fast", "identity"}, "--mode"},
        UsageCase{"BadSleepArgument", {"run", "-o", "OUT", "sleep", "soon"}, "sleep"},
        UsageCase{
            "BadTimeout", {"run", "-o", "OUT", "--timeout", "later", "identity"}, "--timeout"},
        UsageCase{"ChunksAndChunkSize",
                  {"run", "-o", "OUT", "--chunks", "2", "--chunk-size", "2", "identity"},
                  "--chunk"},
        UsageCase{"UnknownFlag", {"run", "-o", "OUT", "--frobnicate", "identity"}, "frobnicate"},
        UsageCase{"NoSubcommand", {}, "fanout"}),
    [](const ::testing::TestParamInfo<UsageCase>& info) { return info.param.name; });

TEST(CliTest, HelpAndVersionExitZero) {
  RunResult help = fanout::testing::Run({FanoutBin(), "run", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--chunks"), std::string::npos);
  RunResult version = fanout::testing::Run({FanoutBin(), "--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("fanout"), std::string::npos);
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
