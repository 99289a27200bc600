// Task plugins (fanout/plugin.h) through the real binaries: `fanout run --plugin` runs a
// plugin's tasks in every mode (local workers get the plugin too), plugin task errors
// are reported like any task error, and a plugin of another ABI version, or one that
// cannot be loaded, is refused with a clear message and exit status 2.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

const std::string kRot13 = std::string(FANOUT_PLUGIN_DIR) + "/test_plugin_rot13.so";
const std::string kFutureAbi = std::string(FANOUT_PLUGIN_DIR) + "/test_plugin_future_abi.so";

RunResult RunWithInput(const std::vector<std::string>& argv, const std::string& input = "") {
  RunOptions options;
  options.stdin_data = input;
  return Run(argv, options);
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(PluginTest, FanoutRunsPluginTaskInEveryMode) {
  for (const char* mode : {"serial", "threads", "processes"}) {
    RunResult r = RunWithInput({FanoutBin(), "run", "-q", "--plugin", kRot13, "--mode", mode, "-j",
                                "2", "--chunks", "2", "rot13"},
                               "Hello\nWorld\n");
    EXPECT_EQ(r.exit_code, 0) << mode << ": " << r.err;
    EXPECT_EQ(r.out, "Uryyb\nJbeyq\n") << mode;
  }
}

// The CLI and the library load plugins alike (engine/plugins.h): a plugin named twice is
// loaded once, here and by each local worker.
TEST(PluginTest, PluginNamedTwiceIsLoadedOnce) {
  for (const char* mode : {"serial", "processes"}) {
    RunResult r = RunWithInput({FanoutBin(), "run", "-q", "--plugin", kRot13, "--plugin", kRot13,
                                "--mode", mode, "-j", "1", "rot13"},
                               "Hello\n");
    EXPECT_EQ(r.exit_code, 0) << mode << ": " << r.err;
    EXPECT_EQ(r.out, "Uryyb\n") << mode;
  }
}

TEST(PluginTest, PluginTaskErrorNamesTaskAndReason) {
  RunResult r = RunWithInput({FanoutBin(), "run", "-q", "--plugin", kRot13, "--retries", "0", "-j",
                              "1", "refuse", "--", "not today"},
                             "x\n");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(Contains(r.err, "refuse: not today")) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(PluginTest, WorkerRefusesPluginOfAnotherAbiVersion) {
  RunResult r =
      RunWithInput({WorkerBin(), "--plugin", kFutureAbi, "--connect", "ipc:///nonexistent"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "uses fanout plugin ABI version 2; this worker supports version 1"))
      << r.err;
}

TEST(PluginTest, FanoutRefusesPluginOfAnotherAbiVersion) {
  RunResult r = RunWithInput({FanoutBin(), "run", "--plugin", kFutureAbi, "identity"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "ABI version 2")) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(PluginTest, WorkerRefusesLibraryThatCannotBeLoaded) {
  TempDir dir;
  WriteFile(dir.File("not-a-library.so"), "text\n");
  RunResult r = RunWithInput(
      {WorkerBin(), "--plugin", dir.File("not-a-library.so"), "--connect", "ipc:///nonexistent"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "cannot load plugin")) << r.err;
}

TEST(PluginTest, WorkerRefusesLibraryWithoutEntryPoint) {
  RunResult r = RunWithInput({WorkerBin(), "--plugin",
                              std::string(FANOUT_PLUGIN_DIR) + "/test_plugin_no_entry.so",
                              "--connect", "ipc:///nonexistent"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "does not export fanout_plugin()")) << r.err;
}

}  // namespace
}  // namespace fanout::testing
