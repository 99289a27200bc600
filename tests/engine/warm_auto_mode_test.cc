// Auto mode and warm commands (issue #17): a warm command's start-up is booked once per
// slot in the parallel estimate, its round trip per chunk; warm jobs default to finer chunks.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/auto_mode.h"

namespace fanout {
namespace {

AutoInputs CpuWork(uint64_t records, double record_seconds) {
  AutoInputs in;
  in.records = records;
  in.record_seconds = record_seconds;
  in.record_cpu_seconds = record_seconds;
  in.cores = 2;
  return in;
}

TEST(WarmAutoModeTest, StartUpPerSlotKeepsShortWorkSerial) {
  // 0.2 s of work: worth two threads, unless each thread's command first starts for 0.4 s.
  AutoInputs in = CpuWork(100000, 2e-6);
  EXPECT_EQ(ChooseMode(in).mode, Mode::kThreads);
  in.slot_start_seconds = 0.4;
  AutoChoice c = ChooseMode(in);
  EXPECT_EQ(c.mode, Mode::kSerial) << c.reason;
  EXPECT_NE(c.reason.find("a warm command starting in 400.0 ms per slot"), std::string::npos)
      << c.reason;
}

TEST(WarmAutoModeTest, StartUpPerSlotDoesNotStopLongWork) {
  AutoInputs in = CpuWork(1000000, 5e-6);  // 5 s of work
  in.slot_start_seconds = 0.4;
  AutoChoice c = ChooseMode(in);
  EXPECT_EQ(c.mode, Mode::kThreads) << c.reason;
  EXPECT_EQ(c.workers, 2u);
}

TEST(WarmAutoModeTest, RoundTripPerChunkMeansFewerChunks) {
  AutoInputs in = CpuWork(1000, 1e-4);  // 0.1 s of work
  AutoChoice cheap = ChooseMode(in);
  in.chunk_seconds = 0.001;  // a 1 ms round trip per chunk
  AutoChoice dear = ChooseMode(in);
  EXPECT_LT(dear.chunks, cheap.chunks);
  EXPECT_GE(dear.chunks, dear.workers);
}

TEST(WarmAutoModeTest, WarmCommandsGetFinerDefaultChunks) {
  TaskDef exec;
  exec.name = "exec";
  std::vector<std::string> plain = {"cat"}, warm = {"--warm", "--", "python3", "x.py"};
  EXPECT_EQ(DefaultChunksPerWorker(exec, plain), 4u);
  EXPECT_EQ(DefaultChunksPerWorker(exec, warm), 8u);
  TaskDef other;
  other.name = "identity";
  EXPECT_EQ(DefaultChunksPerWorker(other, warm), 4u);
}

}  // namespace
}  // namespace fanout
