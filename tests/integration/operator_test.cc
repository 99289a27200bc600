// Operator experience (issue #8): stats JSON with stable typed keys, a trace with one span
// per attempt, --dry-run running nothing, progress under a pseudo-terminal, --quiet,
// --log-file. All against the real binaries.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using Json = nlohmann::json;

class OperatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string input;
    for (int i = 0; i < 200; ++i) input += std::to_string(i) + "\n";
    WriteFile(dir_.File("in"), input);
  }
  RunResult Fanout(std::vector<std::string> args) {
    std::vector<std::string> argv = {FanoutBin(), "run", "--mode", "processes",
                                     "-j",        "2",   "-i",     dir_.File("in")};
    argv.insert(argv.end(), args.begin(), args.end());
    return fanout::testing::Run(argv);
  }
  TempDir dir_;
};

TEST_F(OperatorTest, StatsJsonHasStableTypedKeys) {
  RunResult r = Fanout(
      {"--chunks", "8", "--stats-json", dir_.File("s.json"), "-o", dir_.File("out"), "identity"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json j = Json::parse(ReadFile(dir_.File("s.json")));
  for (const char* key :
       {"fanout_stats_version", "exit_code", "workers", "chunks", "records", "bytes_in",
        "bytes_out", "attempts", "retries", "timeouts", "workers_lost", "workers_left", "respawns",
        "speculated", "late_dropped"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_number_integer()) << key;
  }
  for (const char* key : {"wall_seconds", "cpu_seconds", "parallelism", "overhead_share"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_number()) << key;
  }
  EXPECT_EQ(j["mode"], "processes");
  EXPECT_EQ(j["chunks"], 8);
  EXPECT_EQ(j["records"], 200);
  EXPECT_EQ(j["bytes_in"], ReadFile(dir_.File("in")).size());
  EXPECT_TRUE(j["failed_chunks"].is_array());
  ASSERT_TRUE(j["per_worker"].is_array());
  // Workers that joined (a tiny job may finish before the second one says hello).
  ASSERT_GE(j["per_worker"].size(), 1u);
  ASSERT_LE(j["per_worker"].size(), 2u);
  int chunks = 0;
  for (const auto& w : j["per_worker"]) {
    EXPECT_TRUE(w["id"].is_string());
    EXPECT_TRUE(w["host"].is_string());
    EXPECT_TRUE(w["busy_seconds"].is_number());
    chunks += w["chunks"].get<int>();
  }
  EXPECT_EQ(chunks, 8);
}

TEST_F(OperatorTest, TraceHasExactlyOneSpanPerAttemptWithFailuresMarked) {
  // Chunk 2's first attempt fails, so the job makes 9 attempts for 8 chunks.
  RunResult r = Fanout({"--chunks", "8", "--retries", "1", "--trace", dir_.File("t.json"),
                        "--stats-json", dir_.File("s.json"), "-o", dir_.File("out"), "exec", "--",
                        "sh", "-c", "[ \"$FANOUT_CHUNK$FANOUT_ATTEMPT\" = 21 ] && exit 7; cat"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json trace = Json::parse(ReadFile(dir_.File("t.json")));
  Json stats = Json::parse(ReadFile(dir_.File("s.json")));
  int spans = 0, failed = 0;
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] != "X") continue;
    ++spans;
    EXPECT_TRUE(e["ts"].is_number() && e["dur"].is_number() && e["tid"].is_number());
    if (e["cat"] == "failed") {
      ++failed;
      EXPECT_NE(e["args"]["error"].get<std::string>().find("status 7"), std::string::npos);
    }
  }
  EXPECT_EQ(spans, stats["attempts"].get<int>());
  EXPECT_EQ(spans, 9);
  EXPECT_EQ(failed, 1);
}

TEST_F(OperatorTest, DryRunPrintsThePlanAndRunsNothing) {
  std::string marker = dir_.File("ran");
  RunResult r = Fanout({"--chunks", "3", "--dry-run", "-o", dir_.File("out"), "exec", "--", "sh",
                        "-c", "touch " + marker});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("dry run: 3 chunks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chunk 0 (lines 1-67): 67 records"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chunk 2 (lines 135-200): 66 records"), std::string::npos) << r.out;
  EXPECT_FALSE(FileExists(marker));
  EXPECT_FALSE(FileExists(dir_.File("out")));
}

TEST_F(OperatorTest, ProgressIsDrawnOnATerminalAndOnlyThere) {
  // util-linux `script` runs the job with a pseudo-terminal as its stderr.
  std::string cmd = FanoutBin() + " run -j 2 --chunks 10 -i " + dir_.File("in") + " -o " +
                    dir_.File("out") + " sleep 3";
  RunResult tty = fanout::testing::Run({"/usr/bin/script", "-qefc", cmd, "/dev/null"});
  ASSERT_EQ(tty.exit_code, 0) << tty.out << tty.err;
  EXPECT_NE(tty.out.find("chunks ("), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("\r\033[K"), std::string::npos);
  EXPECT_NE(tty.out.find("per worker"), std::string::npos) << tty.out;
  RunResult pipe = Fanout({"--chunks", "10", "-o", dir_.File("out2"), "sleep", "3"});
  ASSERT_EQ(pipe.exit_code, 0);
  EXPECT_EQ(pipe.err.find("chunks ("), std::string::npos) << pipe.err;
  RunResult forced =
      Fanout({"--progress", "--chunks", "10", "-o", dir_.File("out3"), "sleep", "5"});
  ASSERT_EQ(forced.exit_code, 0);
  EXPECT_NE(forced.err.find("chunks ("), std::string::npos) << forced.err;
}

TEST_F(OperatorTest, QuietPrintsNothingButErrors) {
  RunResult ok = Fanout({"--quiet", "-o", dir_.File("out"), "identity"});
  ASSERT_EQ(ok.exit_code, 0);
  EXPECT_EQ(ok.err, "");
  RunResult bad =
      Fanout({"--quiet", "--retries", "0", "-o", dir_.File("out"), "exec", "--", "false"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("exited with status 1"), std::string::npos);
}

TEST_F(OperatorTest, LogFileReceivesLogLines) {
  RunResult r = Fanout({"-vv", "--log-file", dir_.File("log"), "-o", dir_.File("out"), "identity"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string log = ReadFile(dir_.File("log"));
  EXPECT_NE(log.find("planned"), std::string::npos) << log;
  EXPECT_NE(log.find("joined"), std::string::npos) << log;
}

}  // namespace
}  // namespace fanout::testing
