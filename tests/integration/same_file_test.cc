// End to end, issue #14 item 2: --joblog, --trace, --stats-json, --log-file and --state
// must not name the input, the output, each other, or a file fanout keeps in --state DIR
// (same device and inode, or the same path before the file exists). Each such job is a
// usage error (exit 2, one line naming both flags) and nothing is opened for writing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

namespace fs = std::filesystem;

std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_symlink()) {
      files[rel] = "-> " + fs::read_symlink(e.path()).string();
    } else {
      files[rel] = e.is_directory() ? "/" : ReadFile(e.path().string());
    }
  }
  return files;
}

struct Case {
  const char* name;
  std::vector<std::string> args;  // relative to the test directory
  const char* first_flag;
  const char* second_flag;
};

TEST(SameFileTest, SideFilesNamingTheInputOutputOrEachOtherAreRefused) {
  const std::vector<Case> cases = {
      {"joblog is the input", {"--joblog", "in.txt"}, "--joblog", "--input"},
      {"trace is the input", {"--trace", "in.txt"}, "--trace", "--input"},
      {"stats-json is the output", {"--stats-json", "out.txt"}, "--stats-json", "--output"},
      {"log-file is the input", {"--log-file", "in.txt"}, "--log-file", "--input"},
      {"joblog is a hard link to the input", {"--joblog", "hard.txt"}, "--joblog", "--input"},
      {"trace is a symlink to the input", {"--trace", "soft.txt"}, "--trace", "--input"},
      {"joblog is the output by another path",
       {"--joblog", "sub/../out.txt"},
       "--joblog",
       "--output"},
      {"state is the input", {"--state", "in.txt"}, "--state", "--input"},
      {"state is the output", {"--state", "out.txt"}, "--state", "--output"},
      {"joblog and trace, not yet existing",
       {"--joblog", "new.txt", "--trace", "./new.txt"},
       "--joblog",
       "--trace"},
      {"stats-json and log-file, not yet existing",
       {"--stats-json", "sub/s.json", "--log-file", "sub/../sub/s.json"},
       "--stats-json",
       "--log-file"},
      {"joblog is the state's journal",
       {"--state", "st", "--joblog", "st/journal"},
       "--joblog",
       "--state"},
      {"trace and state, not yet existing", {"--state", "t", "--trace", "t"}, "--trace", "--state"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    std::string input;
    for (int i = 0; i < 500; ++i) input += "line " + std::to_string(i) + "\n";
    WriteFile(dir.File("in.txt"), input);
    WriteFile(dir.File("out.txt"), "old output\n");
    fs::create_directory(dir.File("sub"));
    fs::create_hard_link(dir.File("in.txt"), dir.File("hard.txt"));
    fs::create_symlink("in.txt", dir.File("soft.txt"));
    auto before = Snapshot(dir.path());
    std::vector<std::string> argv = {"/bin/sh",  "-c",        "cd \"$0\" && exec \"$@\"",
                                     dir.path(), FanoutBin(), "run",
                                     "-q",       "-i",        "in.txt",
                                     "-o",       "out.txt",   "--chunks",
                                     "4"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    for (const char* a : {"exec", "--", "tr", "a-z", "A-Z"}) argv.push_back(a);
    RunResult r = fanout::testing::Run(argv);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(c.first_flag), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.second_flag), std::string::npos) << r.err;
    EXPECT_EQ(Snapshot(dir.path()), before) << "a file was created, changed or removed";
  }
}

// stdin redirected from the very file --joblog names.
TEST(SameFileTest, JobLogNamingTheFileOnStdinIsRefused) {
  TempDir dir;
  WriteFile(dir.File("in.txt"), "a\nb\nc\n");
  RunResult r =
      fanout::testing::Run({"/bin/sh", "-c", "exec \"$0\" run -q --joblog \"$1\" identity < \"$1\"",
                            FanoutBin(), dir.File("in.txt")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--joblog and --input"), std::string::npos) << r.err;
  EXPECT_EQ(ReadFile(dir.File("in.txt")), "a\nb\nc\n");
}

// What is allowed: distinct files, the same device for several logs, and a --state DIR
// that holds the input and output.
TEST(SameFileTest, DistinctFilesAndSharedDevicesAreAccepted) {
  TempDir dir;
  fs::create_directory(dir.File("st"));
  WriteFile(dir.File("in.txt"), "a\nb\nc\n");
  RunResult r = fanout::testing::Run({FanoutBin(), "run", "-q", "-i", dir.File("in.txt"), "-o",
                                      dir.File("st/out.txt"), "--state", dir.File("st"), "--joblog",
                                      "/dev/null", "--trace", "/dev/null", "--stats-json",
                                      dir.File("stats.json"), "identity"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir.File("st/out.txt")), "a\nb\nc\n");
  EXPECT_TRUE(FileExists(dir.File("stats.json")));
}

}  // namespace
}  // namespace fanout::testing
