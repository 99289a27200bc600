// End to end: `--mode auto` runs the real `fanout`, calibrates, picks a mode, and must
// produce exactly what serial mode produces; the choice shows in -v and --stats-json.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using Json = nlohmann::json;

class AutoModeTest : public ::testing::Test {
 protected:
  RunResult Fanout(const std::string& mode, const std::vector<std::string>& args,
                   const std::string& input = "") {
    std::vector<std::string> argv = {FanoutBin(), "run", "--mode", mode};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions options;
    options.stdin_data = input;
    return fanout::testing::Run(argv, options);
  }

  // Runs auto and serial; expects both to succeed with identical stdout.
  void SameAsSerial(const std::vector<std::string>& args, const std::string& input = "") {
    RunResult serial = Fanout("serial", args, input);
    RunResult automatic = Fanout("auto", args, input);
    ASSERT_EQ(serial.exit_code, 0) << serial.err;
    ASSERT_EQ(automatic.exit_code, 0) << automatic.err;
    EXPECT_NE(automatic.err.find("mode=auto:"), std::string::npos) << automatic.err;
    EXPECT_TRUE(automatic.out == serial.out)
        << "auto output differs (" << automatic.out.size() << " vs " << serial.out.size() << ")";
  }

  // The "auto" object of --stats-json after a run in auto mode with `args`.
  Json AutoStats(const std::vector<std::string>& args, const std::string& input = "") {
    std::vector<std::string> all = {"--stats-json", dir_.File("stats.json"), "-o",
                                    dir_.File("out")};
    all.insert(all.end(), args.begin(), args.end());
    RunResult r = Fanout("auto", all, input);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    Json stats = Json::parse(ReadFile(dir_.File("stats.json")));
    EXPECT_TRUE(stats.contains("auto")) << stats.dump();
    return stats["auto"];
  }

  TempDir dir_;
};

std::string Numbers(int n) {
  std::string s;
  for (int i = 1; i <= n; ++i) s += std::to_string(i * 7919 % 100003) + "\n";
  return s;
}

TEST_F(AutoModeTest, OutputIsIdenticalToSerial) {
  SameAsSerial({"--range", "1:10000", "--chunks", "10", "product"});
  SameAsSerial({"identity"}, Numbers(50000));
  SameAsSerial({"--chunk-size", "1", "identity"}, Numbers(3000));
  SameAsSerial({"--chunks", "7", "product"}, Numbers(700));
  SameAsSerial({"exec", "--", "tr", "0-9", "a-j"}, Numbers(20000));
  SameAsSerial({"sleep", "30"}, Numbers(12));
  SameAsSerial({"identity"}, "no newline at the end");
  // --header: the header goes before every chunk, calibration chunks included, and once
  // into the output.
  SameAsSerial({"--header", "exec", "--", "sh", "-c", "sleep 0.01; cat"}, "h1,h2\n" + Numbers(500));
  SameAsSerial({"--header", "identity"}, "h1,h2\n" + Numbers(5000));
  SameAsSerial({"--header", "identity"}, "only a header\n");
  SameAsSerial({"identity"}, "");
}

TEST_F(AutoModeTest, PicksSerialForTheRangeProduct) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // Instrumented, the product costs several times more per record, and a parallel mode
  // then rightly wins: the choice is only meaningful for an uninstrumented build.
  GTEST_SKIP() << "auto mode's choice follows measured cost, which sanitizers inflate";
#endif
  Json a = AutoStats({"--range", "1:10000", "--chunks", "10", "product"});
  EXPECT_EQ(a["choice"].get<std::string>().rfind("serial,", 0), 0u) << a.dump();
}

TEST_F(AutoModeTest, PicksParallelThreadsForSleeps) {
  // 12 records of 300 ms: the calibration runs one; a thread each for the other 11
  // finishes in ~0.3 s more, serial would need 3.3 s.
  Json a = AutoStats({"sleep", "300"}, Numbers(12));
  std::string choice = a["choice"].get<std::string>();
  EXPECT_EQ(choice.rfind("threads, 11 workers", 0), 0u) << choice;
  EXPECT_NE(choice.find("mostly waiting"), std::string::npos) << choice;
}

TEST_F(AutoModeTest, PicksParallelForCpuWork) {
  // Tens of ms of CPU per record in awk: worth the cores, not more threads than cores.
  // (The loop is per record: in a BEGIN block it would be start-up, paid once a chunk.)
  // 64 records let the calibration compare chunks of 1 and 3 records: with 16 it compared
  // 1 and 2, and on a busy CI machine the 1-record chunk once took as long as the 2-record
  // one (both ~96 ms), which the fit rightly read as start-up only.
  Json a =
      AutoStats({"-j", "2", "exec", "--", "awk", "{s=0; for(i=0;i<200000;i++)s+=i; print $1+s}"},
                Numbers(64));
  std::string choice = a["choice"].get<std::string>();
  EXPECT_EQ(choice.rfind("threads, 2 workers", 0), 0u) << choice;
}

TEST_F(AutoModeTest, VerboseSaysWhatItChoseAndWhy) {
  // 20 products: microseconds of work even in an instrumented build (ASan runs the product
  // at ~6 us a record, where 1000 records rightly go to threads).
  RunResult r = Fanout("auto", {"-v", "--range", "1:20", "product"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // Instrumented, a one-off stall while calibrating (a page fault, a symbol bound on first
  // use) can book milliseconds to a record, and threads then rightly win on the numbers
  // measured: the choice is checked by PicksSerialForTheRangeProduct in a plain build; here
  // only that -v says what it chose and why.
  EXPECT_NE(r.err.find("auto: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("calibrated"), std::string::npos) << r.err;
#else
  EXPECT_NE(r.err.find("auto: serial, 1 workers"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not clearly faster than serial"), std::string::npos) << r.err;
#endif
}

TEST_F(AutoModeTest, TimeoutNeedsWorkerProcesses) {
  RunResult r = Fanout("auto", {"-j", "2", "--timeout", "10s", "identity"}, Numbers(100));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("mode=auto:processes"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, Numbers(100));
}

TEST_F(AutoModeTest, FailingTaskStillFailsClearly) {
  RunResult r = Fanout("auto", {"--retries", "0", "exec", "--", "false"}, Numbers(10));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("exited with status 1"), std::string::npos) << r.err;
  // Nothing was measured (the first chunk failed): the summary predicts nothing, where it
  // said predicted_wall=50.20s for a grep over 100,000 lines (1 ms a record assumed).
  EXPECT_EQ(r.err.find("predicted_wall="), std::string::npos) << r.err;
}

TEST_F(AutoModeTest, CalibrationChunksAreRealAttemptsInStatsAndTrace) {
  // Quick chunks: the calibration runs all 20; they must still be counted and traced.
  std::string input;
  for (int i = 1; i <= 1000; ++i) input += std::to_string(i) + "\n";
  RunResult r = Fanout("auto",
                       {"-j", "2", "--chunks", "20", "--stats-json", dir_.File("s.json"), "--trace",
                        dir_.File("t.json"), "--joblog", dir_.File("log"), "product"},
                       input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  RunResult serial = Fanout("serial", {"--chunks", "20", "product"}, input);
  ASSERT_EQ(serial.exit_code, 0) << serial.err;
  EXPECT_EQ(r.out, serial.out);
  Json stats = Json::parse(ReadFile(dir_.File("s.json")));
  EXPECT_EQ(stats["attempts"].get<uint64_t>(), 20u) << stats.dump();
  EXPECT_EQ(stats["bytes_in"].get<uint64_t>(), 3893u) << stats.dump();
  ASSERT_FALSE(stats["per_worker"].empty()) << stats.dump();
  uint64_t chunks = 0;
  for (const Json& w : stats["per_worker"]) chunks += w["chunks"].get<uint64_t>();
  EXPECT_EQ(chunks, 20u);
  std::string workers = "workers=" + std::to_string(stats["workers"].get<uint64_t>()) + " ";
  EXPECT_NE(r.err.find(workers), std::string::npos) << r.err << stats.dump();
  Json trace = Json::parse(ReadFile(dir_.File("t.json")));
  const Json& events = trace.is_object() ? trace["traceEvents"] : trace;
  int attempts = 0;
  for (const Json& e : events) attempts += e.value("ph", "") == "X";
  EXPECT_EQ(attempts, 20);
  std::string log = ReadFile(dir_.File("log"));
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 21) << log;  // a header and 20 attempts
}

TEST_F(AutoModeTest, TheCalibrationPairIsTracedSideBySide) {
  // A 20 ms start: the per-record calibration chunk (1) runs beside a second (2) on another
  // thread. The trace draws them on two rows, overlapping, each with its own duration.
  std::string input;
  for (int i = 1; i <= 200; ++i) input += std::to_string(i) + "\n";
  RunResult r = Fanout(
      "auto", {"--trace", dir_.File("t.json"), "exec", "--", "sh", "-c", "sleep 0.02; cat"}, input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, input);
  Json trace = Json::parse(ReadFile(dir_.File("t.json")));
  const Json& events = trace.is_object() ? trace["traceEvents"] : trace;
  std::map<uint64_t, Json> spans;
  for (const Json& e : events) {
    if (e.value("ph", "") == "X") spans[e["args"]["chunk"].get<uint64_t>()] = e;
  }
  ASSERT_TRUE(spans.count(1) && spans.count(2)) << trace.dump();
  const Json &one = spans[1], &two = spans[2];
  EXPECT_NE(one["tid"], two["tid"]) << trace.dump();
  EXPECT_GE(two["dur"].get<int64_t>(), 20000) << trace.dump();  // its own sleep, in us
  int64_t one_end = one["ts"].get<int64_t>() + one["dur"].get<int64_t>();
  int64_t two_end = two["ts"].get<int64_t>() + two["dur"].get<int64_t>();
  EXPECT_LT(two["ts"].get<int64_t>(), one_end) << trace.dump();
  EXPECT_LT(one["ts"].get<int64_t>(), two_end) << trace.dump();
}

// Runs `script` (sh) per chunk in auto mode over `lines` lines; the script appends
// "$FANOUT_CHUNK $FANOUT_ATTEMPT" to a file. Returns {chunk id: times run}; every attempt
// must be attempt 1 and the output identical to the input.
std::map<int, int> RunsPerChunk(TempDir& dir, const std::string& script, int lines,
                                uint64_t& chunks) {
  std::string input;
  for (int i = 1; i <= lines; ++i) input += std::to_string(i) + "\n";
  std::string counter = dir.File("counter");
  std::remove(counter.c_str());
  RunResult r = fanout::testing::Run(
      {FanoutBin(), "run", "--stats-json", dir.File("s.json"), "exec", "--", "sh", "-c",
       "echo \"$FANOUT_CHUNK $FANOUT_ATTEMPT\" >> " + counter + "; " + script},
      {.stdin_data = input, .timeout = std::chrono::milliseconds(30000), .env = {}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, input);
  chunks = Json::parse(ReadFile(dir.File("s.json")))["chunks"].get<uint64_t>();
  std::map<int, int> runs;
  std::istringstream in(ReadFile(counter));
  int chunk = 0, attempt = 0;
  while (in >> chunk >> attempt) {
    EXPECT_EQ(attempt, 1) << "chunk " << chunk;
    ++runs[chunk];
  }
  return runs;
}

TEST_F(AutoModeTest, EachChunkRunsExactlyOnceWhenNothingFails) {
  // Quick commands (many calibration sizes), a start-up-bound one (two sizes, then the
  // rest), and heavy waiting records (one calibration record, then a thread each).
  for (auto [script, lines] : std::vector<std::pair<std::string, int>>{
           {"cat", 3000},
           {"sleep 0.03; cat", 400},
           {"while read x; do sleep 0.06; echo $x; done", 12}}) {
    SCOPED_TRACE(script);
    uint64_t chunks = 0;
    std::map<int, int> runs = RunsPerChunk(dir_, script, lines, chunks);
    ASSERT_EQ(runs.size(), chunks);
    for (auto [chunk, times] : runs) {
      EXPECT_GE(chunk, 0);
      EXPECT_LT(static_cast<uint64_t>(chunk), chunks);
      EXPECT_EQ(times, 1) << "chunk " << chunk << " ran " << times << " times";
    }
  }
}

TEST_F(AutoModeTest, FailedCalibrationChunkIsAttemptOneNotRunAgainAsOne) {
  // Every attempt 1 fails, attempt 2 succeeds: with --retries 1 each chunk runs exactly
  // twice (attempts 1 and 2, the calibration's failure being chunk 0's attempt 1); with
  // --retries 0 the job fails after one run of one chunk.
  std::string counter = dir_.File("counter");
  std::string script =
      "echo \"$FANOUT_CHUNK $FANOUT_ATTEMPT\" >> " + counter + "; [ $FANOUT_ATTEMPT -ge 2 ] && cat";
  RunResult r = Fanout(
      "auto",
      {"--retries", "1", "--stats-json", dir_.File("s.json"), "exec", "--", "sh", "-c", script},
      Numbers(40));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, Numbers(40));
  uint64_t chunks = Json::parse(ReadFile(dir_.File("s.json")))["chunks"].get<uint64_t>();
  std::map<std::pair<int, int>, int> runs;
  std::istringstream in(ReadFile(counter));
  int chunk = 0, attempt = 0;
  while (in >> chunk >> attempt) ++runs[{chunk, attempt}];
  EXPECT_EQ(runs.size(), 2 * chunks);
  for (auto [key, times] : runs) {
    EXPECT_EQ(times, 1) << "chunk " << key.first << " attempt " << key.second;
    EXPECT_LE(key.second, 2);
  }
  std::remove(counter.c_str());
  r = Fanout("auto", {"--joblog", dir_.File("log"), "exec", "--", "sh", "-c", script}, Numbers(40));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(ReadFile(counter), "0 1\n");
  EXPECT_NE(ReadFile(dir_.File("log")).find("\n0\t1\t"), std::string::npos);
}

TEST_F(AutoModeTest, SummaryComparesPredictedWithActualWallTime) {
  RunResult r = Fanout("auto", {"exec", "--", "sh", "-c", "sleep 0.02; cat"}, Numbers(200));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(" wall="), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" predicted_wall="), std::string::npos) << r.err;
  RunResult v = Fanout("auto", {"-v", "exec", "--", "sh", "-c", "sleep 0.02; cat"}, Numbers(200));
  ASSERT_EQ(v.exit_code, 0) << v.err;
  for (const char* word : {"to completion", "CPU"}) {
    EXPECT_NE(v.err.find(word), std::string::npos) << word << "\n" << v.err;
  }
  // The start-up and the records' cost, measured: apart, or (when the machine is so busy
  // that the first chunk alone takes the calibration's time) the start-up alone.
  bool apart =
      v.err.find("per chunk") != std::string::npos && v.err.find("per record") != std::string::npos;
  bool start_up_alone = v.err.find("a start-up of") != std::string::npos &&
                        v.err.find("the records' own cost unknown") != std::string::npos;
  EXPECT_TRUE(apart || start_up_alone) << v.err;
}

TEST_F(AutoModeTest, DryRunSaysWhatIsDecidedAtRunTime) {
  RunResult r = Fanout("auto", {"--dry-run", "product"}, Numbers(100));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("auto decides at run time"), std::string::npos) << r.out;
  RunResult p = Fanout("auto", {"--dry-run", "--null", "product"},
                       std::string("1\0"
                                   "2\0",
                                   4));
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.out.find("mode threads"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("auto will run threads with this plan"), std::string::npos) << p.out;
  RunResult t = Fanout("auto", {"--dry-run", "--timeout", "5s", "identity"}, Numbers(10));
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("auto will run processes with this plan: --timeout"), std::string::npos)
      << t.out;
}

// A pass-through task has nothing to compute: auto runs it serially without calibrating
// (no record counted, no chunk measured), and the output is the input.
TEST_F(AutoModeTest, APassThroughTaskRunsSeriallyWithoutCalibrating) {
  RunResult d = Fanout("auto", {"--dry-run", "identity"}, Numbers(100));
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_NE(d.out.find("mode serial, 1 workers"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("auto will run serial with this plan: 'identity' passes its input"),
            std::string::npos)
      << d.out;
  std::string input = Numbers(5000);
  std::string log = dir_.File("joblog.tsv");
  RunResult r = Fanout("auto", {"-v", "--joblog", log, "identity"}, input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, input);
  EXPECT_NE(r.err.find("auto: serial, 1 workers: 'identity' passes its input through"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(ReadFile(log).find("calibration"), std::string::npos) << ReadFile(log);
}

}  // namespace
}  // namespace fanout::testing
