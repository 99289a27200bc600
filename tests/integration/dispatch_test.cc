// End to end, issue #15 item 5: dispatch is fair. A local worker not yet joined counts
// with its --slots (the first to join does not take the others' chunks), and an idle
// worker takes back chunks prefetched but not started elsewhere (a chunk queued behind a
// slow one moves to an idle worker), so a resumed job with equal-speed workers spreads its
// chunks evenly.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

// A --joblog's lines after its header, split into their tab-separated fields (column 3 is
// the worker, 5 the start, 6 the wall seconds, 10 the exit status).
std::vector<std::vector<std::string>> JoblogRows(const std::string& joblog) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(joblog);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<std::string>& f = rows.emplace_back();
    for (std::string x; std::getline(fields, x, '\t');) f.push_back(x);
  }
  return rows;
}

// Chunks run per worker, from a --joblog (one line per attempt).
std::map<std::string, int> ChunksPerWorker(const std::string& joblog) {
  std::map<std::string, int> per;
  for (const auto& f : JoblogRows(joblog)) {
    if (f.size() >= 10 && f[9] == "0") ++per[f[2]];
  }
  return per;
}

TEST(Dispatch, LateJoiningLocalWorkerCountsWithItsSlots) {
  // Ten 1 s sleeps over 2 workers x 5 slots: five on each worker, started together (one
  // round), not 9 chunks on the first worker to join and a second round (the old
  // behaviour). Read from the job log, not the wall clock, which a loaded CI machine
  // stretched to 6 s.
  TempDir dir;
  std::string log = dir.File("log.tsv");
  RunResult r = fanout::testing::Run({FanoutBin(), "run", "-q", "--mode", "processes", "-j", "2",
                                      "--slots", "5", "--range", "0:10", "--chunks", "10",
                                      "--joblog", log, "sleep", "1000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto per = ChunksPerWorker(ReadFile(log));
  ASSERT_EQ(per.size(), 2u) << ReadFile(log);
  for (const auto& [worker, n] : per) EXPECT_EQ(n, 5) << worker << "\n" << ReadFile(log);
  // On each worker, every chunk started before the first one there ended: one round.
  std::map<std::string, std::pair<double, double>> last_start_first_end;
  for (const auto& f : JoblogRows(ReadFile(log))) {
    ASSERT_GE(f.size(), 6u) << ReadFile(log);
    double start = std::stod(f[4]), end = start + std::stod(f[5]);
    auto [it, fresh] = last_start_first_end.try_emplace(f[2], start, end);
    if (!fresh) {
      it->second.first = std::max(it->second.first, start);
      it->second.second = std::min(it->second.second, end);
    }
  }
  for (const auto& [worker, times] : last_start_first_end) {
    EXPECT_LT(times.first, times.second) << worker << " ran its sleeps in more than one round\n"
                                         << ReadFile(log);
  }
}

TEST(Dispatch, ResumedJobSpreadsChunksEvenlyOverEqualWorkers) {
  TempDir dir;
  std::string in = dir.File("in.txt"), go = dir.File("GO"), state = dir.File("state");
  std::string log = dir.File("log.tsv");
  std::string text;
  for (int i = 1; i <= 320; ++i) text += std::to_string(i) + "\n";
  WriteFile(in, text);
  // Chunks 8 and up fail until GO exists; the resumed run then runs those 24.
  auto job = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {FanoutBin(), "run", "-q",        "--keep-going",
                                     "--chunks",  "32",  "--retries", "0",
                                     "-i",        in,    "--state",   state};
    argv.insert(argv.end(), extra.begin(), extra.end());
    for (const char* a : {"exec", "--", "sh", "-c"}) argv.push_back(a);
    argv.push_back("[ $FANOUT_CHUNK -ge 8 ] && [ ! -e " + go + " ] && exit 1; sleep 0.2; cat");
    return fanout::testing::Run(argv);
  };
  RunResult first = job({});
  ASSERT_EQ(first.exit_code, 3) << first.err;
  WriteFile(go, "");
  RunResult second = job({"--resume", "--mode", "processes", "-j", "4", "--joblog", log});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out, text);
  auto per = ChunksPerWorker(ReadFile(log));
  int total = 0;
  for (const auto& [worker, n] : per) total += n;
  ASSERT_EQ(total, 24) << ReadFile(log);
  double mean = 24.0 / 4;
  for (const auto& [worker, n] : per) {
    EXPECT_LE(n, 1.5 * mean) << worker << " ran " << n << " of 24 chunks\n" << ReadFile(log);
  }
}

TEST(Dispatch, IdleWorkerTakesBackAChunkQueuedBehindASlowOne) {
  // 3 chunks over 2 workers x 1 slot: the first to join takes chunk 0 (3 s) and queues
  // chunk 1 (2 s) behind it; the other runs chunk 2 (instant), then takes chunk 1 back
  // (cancelled on the first). About 3 s instead of 5 s, each chunk's output once.
  TempDir dir;
  std::string in = dir.File("in.txt"), log = dir.File("log.tsv");
  WriteFile(in, "a\nb\nc\n");
  auto start = std::chrono::steady_clock::now();
  RunResult r =
      fanout::testing::Run({FanoutBin(), "run", "-q", "--mode", "processes", "-j", "2", "--chunks",
                            "3", "-i", in, "--joblog", log, "exec", "--", "sh", "-c",
                            "case $FANOUT_CHUNK in 0) sleep 3;; 1) sleep 2;; esac; cat"});
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a\nb\nc\n");
  // Chunk 1 ran while chunk 0 did, on the other worker (what the joblog says, whatever the
  // machine's load adds to the job's start: an ASan build beside a CI run took 4.6 s with
  // the chunks overlapping as they should); the whole job's time is a loose bound only.
  double start0 = -1, end0 = -1, start1 = -1;
  std::string worker0, worker1;
  for (const auto& f : JoblogRows(ReadFile(log))) {
    if (f.size() < 10 || f[9] != "0") continue;
    if (f[0] == "0") {
      start0 = std::stod(f[4]);
      end0 = start0 + std::stod(f[5]);
      worker0 = f[2];
    } else if (f[0] == "1") {
      start1 = std::stod(f[4]);
      worker1 = f[2];
    }
  }
  EXPECT_GE(start1, 0) << ReadFile(log);
  EXPECT_LT(start1, end0 - 1) << "chunk 1 waited behind chunk 0\n" << ReadFile(log);
  EXPECT_NE(worker1, worker0) << ReadFile(log);
  EXPECT_LT(took, 6.5) << ReadFile(log);
  auto per = ChunksPerWorker(ReadFile(log));
  int total = 0;
  for (const auto& [worker, n] : per) total += n;
  EXPECT_EQ(total, 3) << ReadFile(log);  // no chunk ran to completion twice
}

}  // namespace
}  // namespace fanout::testing
