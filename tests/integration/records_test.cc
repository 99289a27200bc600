// End to end, issue #4: record kinds (--null, --record-size), --block cutting, --header
// and --unordered through the real `fanout` and workers, with exact expected outputs.
// Each job's command brackets its chunk as "[ID:BYTES]" so the chunking itself is checked.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

// Prints "[CHUNK:" + the chunk's bytes + "]".
const std::vector<std::string> kBracket = {"exec", "--", "sh", "-c",
                                           "printf '[%s:' \"$FANOUT_CHUNK\"; cat; printf ']'"};

class RecordsTest : public ::testing::Test {
 protected:
  // `fanout run -j 2 FLAGS... TASK...` with `input` on stdin; expects exit 0.
  std::string Ok(const std::vector<std::string>& flags, const std::string& input,
                 const std::vector<std::string>& task = kBracket) {
    RunResult r = Go(flags, input, task);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  RunResult Go(const std::vector<std::string>& flags, const std::string& input,
               const std::vector<std::string>& task = kBracket) {
    std::vector<std::string> argv = {FanoutBin(), "run", "-q", "-j", "2"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.insert(argv.end(), task.begin(), task.end());
    RunOptions options;
    options.stdin_data = input;
    return fanout::testing::Run(argv, options);
  }
  TempDir dir_;
};

TEST_F(RecordsTest, CrlfEmptyLinesAndNoTrailingNewlineArePreserved) {
  EXPECT_EQ(Ok({"--chunk-size", "2"}, "a\r\n\r\nb\r\n\nc"), "[0:a\r\n\r\n][1:b\r\n\n][2:c]");
  EXPECT_EQ(Ok({"--block", "3"}, "a\r\n\r\n\nb\r\nc"), "[0:a\r\n][1:\r\n\n][2:b\r\n][3:c]");
}

TEST_F(RecordsTest, BlockGivesAnOversizeRecordItsOwnChunk) {
  std::string big(3000, 'x');
  EXPECT_EQ(Ok({"--block", "1K"}, "ab\ncd\n" + big + "\nm\n"),
            "[0:ab\ncd\n][1:" + big + "\n][2:m\n]");
}

TEST_F(RecordsTest, NullRecordsEndWithNul) {
  std::string in("a\nb\0cc\0\0d", 9);
  EXPECT_EQ(Ok({"--null", "--chunk-size", "2"}, in), std::string("[0:a\nb\0cc\0][1:\0d]", 17));
  EXPECT_EQ(Ok({"--null", "--block", "6"}, in), std::string("[0:a\nb\0][1:cc\0\0d]", 17));
}

TEST_F(RecordsTest, FixedSizeRecordsKeepAShortLastRecord) {
  EXPECT_EQ(Ok({"--record-size", "3", "--chunk-size", "2"}, "abcdefghij"), "[0:abcdef][1:ghij]");
  EXPECT_EQ(Ok({"--record-size", "4", "--block", "10", "--mode", "serial"}, "abcdefghij"),
            "[0:abcdefgh][1:ij]");
}

TEST_F(RecordsTest, HeaderGoesToEveryChunkAndAppearsOnceInTheOutput) {
  // Every chunk sees the header; each output's header line is written once.
  std::vector<std::string> task = {"exec", "--", "sh", "-c", "cat; echo \"n=$FANOUT_CHUNK\""};
  for (std::string mode : {"serial", "threads", "processes"}) {
    EXPECT_EQ(Ok({"--mode", mode, "--header", "--chunk-size", "2"}, "id\r\n1\r\n2\r\n\r\n3", task),
              "id\r\n1\r\n2\r\nn=0\n\r\n3n=1\n")
        << mode;
  }
}

TEST_F(RecordsTest, HeaderOnlyInputRunsTheTaskOnTheHeader) {
  std::vector<std::string> upper = {"exec", "--", "tr", "a-z", "A-Z"};
  EXPECT_EQ(Ok({"--header"}, "name,value\n", upper), "NAME,VALUE\n");
  EXPECT_EQ(Ok({"--header"}, "name,value", upper), "NAME,VALUE");
  EXPECT_EQ(Ok({"--header"}, "", upper), "");
}

TEST_F(RecordsTest, HeaderMismatchIsAChunkError) {
  RunResult r = Go({"--header", "--chunk-size", "1", "--retries", "0"}, "h\n1\n2\n",
                   {"exec", "--", "sh", "-c", "echo \"H$FANOUT_CHUNK\"; cat"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("differs from"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--header"), std::string::npos) << r.err;
}

TEST_F(RecordsTest, UnorderedWritesAChunkBeforeAnEarlierSlowOne) {
  // Chunk 0 finishes only once chunk 1's output is in the output file: in input order this
  // could never happen (it would time out and fail); --unordered writes chunk 1 at once.
  std::string out = dir_.File("out.txt");
  std::string script =
      "if [ \"$FANOUT_CHUNK\" = 0 ]; then i=0; until cat " + dir_.path() +
      "/.out.txt.fanout-* 2>/dev/null | grep -q B; do i=$((i+1)); [ $i -gt 1000 ] && exit 9; "
      "sleep 0.01; done; echo A; else echo B; fi";
  RunResult r = Go({"--unordered", "--chunks", "2", "--retries", "0", "-o", out}, "x\ny\n",
                   {"exec", "--", "sh", "-c", script});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(out), "B\nA\n");
}

TEST_F(RecordsTest, BadRecordFlagsAreUsageErrors) {
  for (const auto& flags : std::vector<std::vector<std::string>>{
           {"--null", "--record-size", "4"},
           {"--block", "1M", "--chunks", "3"},
           {"--block", "lots"},
           {"--header", "--null"},
           {"--range", "1:5", "--block", "1K"},
           {"--resume"},
       }) {
    RunResult r = Go(flags, "", {"identity"});
    EXPECT_EQ(r.exit_code, 2) << flags[0] << ": " << r.err;
    EXPECT_NE(r.err.find("fanout: "), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace fanout::testing
