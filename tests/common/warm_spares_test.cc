// Tests for WarmSpares (warm_task.h) with real warm processes: the spares start at once
// (their start-up overlaps whatever the caller does next), the kept ones serve the pool's
// next chunks without another start, and the ones not kept are killed, having run nothing.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/warm_process.h"
#include "common/warm_task.h"

namespace fanout {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

// The warm protocol (WARM_PROTOCOL.md): appends its pid to `starts`, says READY, then
// uppercases each chunk.
constexpr const char* kScript = R"(import os, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
with open(sys.argv[1], "a") as f:
    f.write("%d\n" % os.getpid())
out.write(b"READY 1\n"); out.flush()
while True:
    line = inp.readline()
    if not line:
        break
    _, chunk, attempt, n = line.split()
    result = inp.read(int(n)).upper()
    out.write(b"OK %d\n" % len(result) + result); out.flush()
)";

class WarmSparesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = std::filesystem::temp_directory_path() / "fanout-spares-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    std::ofstream(dir_ + "/warm.py") << kScript;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<std::string> Args() const {
    return {"--warm", "--", "/usr/bin/python3", dir_ + "/warm.py", dir_ + "/starts"};
  }
  std::vector<pid_t> Starts() const {
    std::vector<pid_t> pids;
    std::ifstream in(dir_ + "/starts");
    for (pid_t pid; in >> pid;) pids.push_back(pid);
    return pids;
  }
  template <typename Pred>
  static bool WaitFor(Pred done) {
    auto deadline = Clock::now() + seconds(30);
    while (!done()) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }
  static bool Gone(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    size_t paren = text.rfind(')');
    return paren == std::string::npos || paren + 2 >= text.size() || text[paren + 2] == 'Z';
  }

  std::string dir_;
};

TEST_F(WarmSparesTest, KeptSparesServeTheNextChunksAndTheOthersAreKilled) {
  // A worker name of its own: the test's processes are alone under their pool key.
  const std::string worker = "spares-test-" + std::to_string(getpid());
  const std::vector<std::string> args = Args();
  std::vector<pid_t> spare_pids;
  {
    WarmSpares spares(args, worker, 3);
    ASSERT_EQ(spares.size(), 3u);
    // Started without a chunk sent: each runs its start-up on its own.
    ASSERT_TRUE(WaitFor([&] { return Starts().size() == 3; }));
    spare_pids = Starts();
    spares.Keep(1);
    EXPECT_EQ(spares.size(), 2u);
  }
  // Two were not kept: killed, though they were alive and idle; the kept one lives on.
  auto gone = [&] {
    size_t n = 0;
    for (pid_t pid : spare_pids) n += Gone(pid) ? 1 : 0;
    return n;
  };
  EXPECT_TRUE(WaitFor([&] { return gone() == 2; })) << gone() << " of 3 gone";

  // The kept one serves two chunks in a row: no further start.
  TaskDef warm = WithWarmForm(TaskDef{});
  for (uint64_t id = 0; id < 2; ++id) {
    ChunkInput chunk;
    chunk.data = "abc\n";
    chunk.chunk_id = id;
    chunk.attempt = 1;
    chunk.worker_id = worker;
    std::string out;
    Status s = warm.run(chunk, args, out, {});
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(out, "ABC\n");
  }
  EXPECT_EQ(Starts().size(), 3u);
}

TEST_F(WarmSparesTest, ACommandThatIsNotWarmStartsNothing) {
  WarmSpares spares(std::vector<std::string>{"--", "cat"}, "spares-test", 2);
  EXPECT_EQ(spares.size(), 0u);
  spares.Keep(2);  // nothing to keep: no effect
  EXPECT_EQ(spares.size(), 0u);
}

}  // namespace
}  // namespace fanout
