// Chaos (issue #3): 200 chunks on 4 workers while a killer thread SIGKILLs and SIGSTOPs
// random workers every few hundred milliseconds for the whole run. Every run's output
// must equal the serial run's, and the summary must show the injected faults. Ten runs,
// each its own ctest test so they spread over cores; scripts/chaos runs longer series.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;

// Each chunk's command: wait $0 seconds, then checksum the chunk (output depends on data).
const char* kChunkCommand = "sleep $0; md5sum";

class ChaosTest : public ::testing::TestWithParam<int> {};

TEST_P(ChaosTest, OutputMatchesSerialDespiteKilledAndStoppedWorkers) {
  TempDir dir;
  std::string input;
  for (int i = 0; i < 4000; ++i) input += "record " + std::to_string(i * 7) + "\n";
  WriteFile(dir.File("in"), input);
  std::string link = dir.File("fanout-worker-chaos");
  ASSERT_EQ(symlink(WorkerBin().c_str(), link.c_str()), 0);

  RunResult serial =
      fanout::testing::Run({FanoutBin(), "run", "--mode", "serial", "--chunks", "200", "-i",
                            dir.File("in"), "exec", "--", "sh", "-c", kChunkCommand, "0"});
  ASSERT_EQ(serial.exit_code, 0) << serial.err;

  Child job({FanoutBin(),
             "run",
             "--worker-bin",
             link,
             "-j",
             "4",
             "--chunks",
             "200",
             "--retries",
             "50",
             "--max-respawns",
             "1000",
             "--heartbeat",
             "100ms",
             "--liveness",
             "3",
             "-i",
             dir.File("in"),
             "-o",
             dir.File("out"),
             "exec",
             "--",
             "sh",
             "-c",
             kChunkCommand,
             "0.04"},
            "", dir.File("err"));

  std::atomic<bool> done{false};
  int kills = 0, stops = 0;
  std::thread killer([&] {
    std::mt19937 rng(static_cast<unsigned>(GetParam()) * 7919u + 17u);
    std::vector<pid_t> stopped;
    while (!done) {
      // Fault injection pace (not a wait for an event).
      std::this_thread::sleep_for(milliseconds(150 + rng() % 250));
      for (pid_t p : stopped) kill(p, SIGCONT);
      stopped.clear();
      auto workers = ProcessesMatching(link + " --connect");
      if (workers.empty() || done) continue;
      pid_t victim = workers[rng() % workers.size()];
      if (rng() % 2 == 0) {
        if (kill(victim, SIGKILL) == 0) ++kills;
      } else if (kill(victim, SIGSTOP) == 0) {
        ++stops;
        stopped.push_back(victim);
      }
    }
    for (pid_t p : stopped) kill(p, SIGCONT);
  });
  int code = job.Wait(milliseconds(50000));
  done = true;
  killer.join();
  std::string err = ReadFile(dir.File("err"));
  ASSERT_EQ(code, 0) << err;
  EXPECT_EQ(Sha256(ReadFile(dir.File("out"))), Sha256(serial.out));
  auto lost_at = err.find("workers_lost=");
  ASSERT_NE(lost_at, std::string::npos) << err;
  if (kills > 0) {
    EXPECT_GE(std::stoi(err.substr(lost_at + 13)), 1) << err;
  }
  std::cerr << "injected " << kills << " kills, " << stops << " stops; " << err;
  EXPECT_TRUE(ProcessesMatching(link + " --connect").empty());
}

INSTANTIATE_TEST_SUITE_P(Runs, ChaosTest, ::testing::Range(0, 10));

}  // namespace
}  // namespace fanout::testing
