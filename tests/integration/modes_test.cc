// End to end: the real `fanout` (and, in processes mode, real `fanout-worker` processes)
// run the same jobs in every mode; outputs must be byte-identical to each other and to an
// independent computation.
#include <gmpxx.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

const std::vector<std::string> kModes = {"serial", "threads", "processes"};

class ModesTest : public ::testing::Test {
 protected:
  // Runs `fanout run --mode MODE -j 3 ARGS...` with `input` on stdin.
  RunResult RunMode(const std::string& mode, const std::vector<std::string>& args,
                    const std::string& input = "") {
    std::vector<std::string> argv = {FanoutBin(), "run", "--mode", mode, "-j", "3"};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions options;
    options.stdin_data = input;
    return fanout::testing::Run(argv, options);
  }

  // Runs the job in every mode, expects success and identical stdout; returns it.
  std::string SameInEveryMode(const std::vector<std::string>& args, const std::string& input = "") {
    std::string first;
    for (const auto& mode : kModes) {
      RunResult r = RunMode(mode, args, input);
      EXPECT_EQ(r.exit_code, 0) << mode << ": " << r.err;
      EXPECT_NE(r.err.find("mode=" + mode), std::string::npos) << r.err;
      if (mode == kModes.front()) {
        first = r.out;
      } else {
        EXPECT_TRUE(r.out == first) << mode << " output differs from serial (" << r.out.size()
                                    << " vs " << first.size() << " bytes)";
      }
    }
    return first;
  }

  TempDir dir_;
};

// Deterministic pseudo-random text lines, the last one without a newline.
std::string MakeText(size_t bytes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string text;
  while (text.size() < bytes) {
    size_t len = rng() % 120;
    for (size_t i = 0; i < len; ++i)
      text += static_cast<char>('a' + rng() % 26 + (i % 7 == 0 ? -32 : 0));
    text += (rng() % 50 == 0) ? "\r\n" : "\n";
  }
  text += "tail without newline";
  return text;
}

TEST_F(ModesTest, IdentityOnSeveralMegabytesIsByteIdenticalFromFileToFile) {
  std::string text = MakeText(6 << 20, 1);
  WriteFile(dir_.File("in.txt"), text);
  for (const auto& mode : kModes) {
    std::string out = dir_.File("out-" + mode + ".txt");
    RunResult r =
        RunMode(mode, {"--chunks", "37", "-i", dir_.File("in.txt"), "-o", out, "identity"});
    ASSERT_EQ(r.exit_code, 0) << mode << ": " << r.err;
    EXPECT_TRUE(ReadFile(out) == text) << mode;
  }
}

TEST_F(ModesTest, ExecTrUppercasesEveryByte) {
  std::string text = MakeText(1 << 20, 2);
  std::string expected = text;
  for (char& c : expected) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(SameInEveryMode({"--chunks", "9", "exec", "--", "tr", "a-z", "A-Z"}, text) ==
              expected);
}

TEST_F(ModesTest, ExecSortSortsEachChunkInPlace) {
  std::string input;
  for (int i = 0; i < 1000; ++i) input += std::to_string((i * 7919) % 1000) + "\n";
  std::string out = SameInEveryMode({"--chunks", "4", "exec", "--", "sort", "-n"}, input);
  // Chunk k holds input lines [250k, 250k+250): each sorted, concatenated in order.
  std::string expected;
  for (int k = 0; k < 4; ++k) {
    std::vector<int> v;
    for (int i = 250 * k; i < 250 * (k + 1); ++i) v.push_back((i * 7919) % 1000);
    std::sort(v.begin(), v.end());
    for (int x : v) expected += std::to_string(x) + "\n";
  }
  EXPECT_EQ(out, expected);
}

TEST_F(ModesTest, ExecWcCountsArraySplitSizes) {
  std::string input;
  for (int i = 0; i < 10; ++i) input += "line\n";
  EXPECT_EQ(SameInEveryMode({"--chunks", "3", "exec", "--", "wc", "-l"}, input), "4\n3\n3\n");
}

TEST_F(ModesTest, AwkPartialSumsOfAMillionNumbersInOrder) {
  std::string input;
  for (int i = 1; i <= 1000000; ++i) input += std::to_string(i) + "\n";
  std::string expected;
  for (int64_t k = 0; k < 8; ++k) {
    int64_t lo = k * 125000 + 1, hi = (k + 1) * 125000;
    expected += std::to_string((lo + hi) * (hi - lo + 1) / 2) + "\n";
  }
  EXPECT_EQ(SameInEveryMode({"--chunks", "8", "exec", "--", "awk", "{s+=$1} END {print s}"}, input),
            expected);
}

TEST_F(ModesTest, ProductOfRangeEqualsFactorial) {
  std::string out = SameInEveryMode({"--range", "1:10000", "--chunks", "10", "product"});
  std::istringstream lines(out);
  std::string line;
  mpz_class total = 1;
  int count = 0;
  while (std::getline(lines, line)) {
    total *= mpz_class(line);
    ++count;
  }
  EXPECT_EQ(count, 10);
  mpz_class factorial;
  mpz_fac_ui(factorial.get_mpz_t(), 9999);
  EXPECT_TRUE(total == factorial);
}

TEST_F(ModesTest, SleepReturnsRecordsUnchanged) {
  std::string input;
  for (int i = 0; i < 24; ++i) input += "record " + std::to_string(i) + "\n";
  EXPECT_EQ(SameInEveryMode({"--chunks", "6", "sleep", "20"}, input), input);
}

TEST_F(ModesTest, EmptyInputGivesEmptyOutput) { EXPECT_EQ(SameInEveryMode({"identity"}, ""), ""); }

TEST_F(ModesTest, FailingCommandFailsTheJobNamingChunkAndStatus) {
  for (const auto& mode : kModes) {
    std::string out = dir_.File("out-" + mode);
    RunResult r = RunMode(mode,
                          {"--retries", "0", "--chunks", "2", "-o", out, "exec", "--", "sh", "-c",
                           "cat >/dev/null; echo boom >&2; exit 1"},
                          "a\nb\n");
    EXPECT_EQ(r.exit_code, 1) << mode;
    // Both chunks fail; whichever fails first is reported.
    EXPECT_TRUE(r.err.find("chunk 0 (lines 1-1) failed") != std::string::npos ||
                r.err.find("chunk 1 (lines 2-2) failed") != std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("exited with status 1"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("boom"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("on worker"), std::string::npos) << r.err;
    EXPECT_FALSE(FileExists(out)) << mode;
  }
}

TEST_F(ModesTest, MissingCommandFailsTheJob) {
  for (const auto& mode : kModes) {
    RunResult r = RunMode(mode, {"--retries", "0", "exec", "--", "fanout-no-such-command"}, "x\n");
    EXPECT_EQ(r.exit_code, 1) << mode;
    EXPECT_NE(r.err.find("cannot start 'fanout-no-such-command'"), std::string::npos) << r.err;
  }
}

TEST_F(ModesTest, NoWorkerProcessOutlivesTheJob) {
  // A private link to the worker binary makes this job's workers recognisable in /proc.
  std::string link = dir_.File("fanout-worker-under-test");
  ASSERT_EQ(symlink(WorkerBin().c_str(), link.c_str()), 0);
  RunResult r = RunMode("processes", {"--worker-bin", link, "--chunks", "8", "sleep", "10"},
                        "1\n2\n3\n4\n5\n6\n7\n8\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("workers=3"), std::string::npos) << r.err;
  EXPECT_TRUE(ProcessesMatching(link + " --connect").empty());
}

}  // namespace
}  // namespace fanout::testing
