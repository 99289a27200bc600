// End to end, issue #4: big inputs in bounded memory. An exec job over a generated 100 MB
// file equals the command run on the whole file; a deliberately slow first chunk does not
// make the coordinator's memory grow with the input, because the reorder window holds
// dispatch back (the coordinator reports its peak RSS, VmHWM from /proc, in --stats-json).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

// About `bytes` of text lines of varying length (deterministic), the last one unterminated.
std::string MakeLines(size_t bytes) {
  std::string text;
  text.reserve(bytes + 256);
  uint32_t x = 12345;
  while (text.size() < bytes) {
    x = x * 1103515245u + 12345u;
    size_t len = (x >> 16) % 150;
    for (size_t i = 0; i < len; ++i) text += static_cast<char>('a' + (x + i * 7) % 26);
    text += (x & 0x100) ? "\n" : " Mixed Case\n";
  }
  text += "tail";
  return text;
}

// AddressSanitizer's shadow memory and freed-memory quarantine make RSS meaningless.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRssIsMeaningful = false;
#else
constexpr bool kRssIsMeaningful = true;
#endif

uint64_t PeakRss(const std::string& stats_path) {
  auto j = nlohmann::json::parse(ReadFile(stats_path));
  return j.at("peak_rss_bytes").get<uint64_t>();
}

class BigFileTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(BigFileTest, ExecOnA100MbFileEqualsTheCommandOnTheWholeFile) {
  std::string in = dir_.File("in.txt"), out = dir_.File("out.txt");
  WriteFile(in, MakeLines(100u << 20));
  RunResult r = fanout::testing::Run(
      {FanoutBin(), "run", "-q", "-j", "2", "-i", in, "-o", out, "exec", "--", "tr", "a-z", "A-Z"},
      {.stdin_data = "", .timeout = std::chrono::milliseconds(100000), .env = {}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  RunResult serial = fanout::testing::Run(
      {"/bin/sh", "-c", "tr a-z A-Z < '" + in + "' > '" + dir_.File("ref") + "'"});
  ASSERT_EQ(serial.exit_code, 0);
  RunResult cmp = fanout::testing::Run({"/usr/bin/cmp", out, dir_.File("ref")});
  EXPECT_EQ(cmp.exit_code, 0) << cmp.out;
}

TEST_F(BigFileTest, ReorderWindowBoundsMemoryBehindASlowFirstChunk) {
  std::string in = dir_.File("in.txt"), out = dir_.File("out.txt");
  std::string input = MakeLines(96u << 20);
  WriteFile(in, input);
  // Chunk 0 takes a second; everything else is instant. Without a window the other 383
  // chunks' outputs would pile up behind it (and the input's pages stay resident).
  RunResult r = fanout::testing::Run(
      {FanoutBin(), "run", "-q", "-j", "2", "--block", "256K", "-i", in, "-o", out, "--stats-json",
       dir_.File("stats.json"), "exec", "--", "sh", "-c", "[ $FANOUT_CHUNK = 0 ] && sleep 1; cat"},
      {.stdin_data = "", .timeout = std::chrono::milliseconds(100000), .env = {}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(ReadFile(out) == input);
  uint64_t peak = PeakRss(dir_.File("stats.json"));
  EXPECT_GT(peak, 0u);
  if (!kRssIsMeaningful) GTEST_SKIP() << "peak RSS is not bounded under AddressSanitizer";
  EXPECT_LT(peak, 40u << 20) << "coordinator peak RSS " << (peak >> 20) << " MiB on a 96 MiB input";
}

TEST_F(BigFileTest, PipedInputIsSpooledNotHeldInMemory) {
  std::string input = MakeLines(64u << 20);
  RunResult r = fanout::testing::Run(
      {FanoutBin(), "run", "-q", "-j", "2", "--block", "1M", "--stats-json",
       dir_.File("stats.json"), "identity"},
      {.stdin_data = input, .timeout = std::chrono::milliseconds(100000), .env = {}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out == input);
  uint64_t peak = PeakRss(dir_.File("stats.json"));
  if (!kRssIsMeaningful) GTEST_SKIP() << "peak RSS is not bounded under AddressSanitizer";
  EXPECT_LT(peak, 40u << 20) << "coordinator peak RSS " << (peak >> 20)
                             << " MiB on 64 MiB of stdin";
}

TEST_F(BigFileTest, ChunksNCountsRecordsWithoutLoadingTheFile) {
  // --chunks N must count every record first: the pages read are released as it goes.
  std::string in = dir_.File("in.txt"), out = dir_.File("out.txt");
  std::string input = MakeLines(96u << 20);
  WriteFile(in, input);
  RunResult r = fanout::testing::Run(
      {FanoutBin(), "run", "-q", "-j", "2", "--chunks", "400", "-i", in, "-o", out, "--stats-json",
       dir_.File("stats.json"), "identity"},
      {.stdin_data = "", .timeout = std::chrono::milliseconds(100000), .env = {}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(ReadFile(out) == input);
  uint64_t peak = PeakRss(dir_.File("stats.json"));
  if (!kRssIsMeaningful) GTEST_SKIP() << "peak RSS is not bounded under AddressSanitizer";
  EXPECT_LT(peak, 40u << 20) << "coordinator peak RSS " << (peak >> 20) << " MiB, 96 MiB input";
}

}  // namespace
}  // namespace fanout::testing
