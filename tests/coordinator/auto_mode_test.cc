// Auto mode's decision (ChooseMode, pure) over a table of workloads, and the calibration
// and rest-planning helpers on real tasks and in-memory input.
#include "coordinator/auto_mode.h"

#include <gtest/gtest.h>

#include <string>

namespace fanout {
namespace {

AutoInputs Workload(uint64_t records, double record_seconds, double cpu_fraction = 1.0) {
  AutoInputs in;
  in.records = records;
  in.record_seconds = record_seconds;
  in.cpu_fraction = cpu_fraction;
  in.cores = 2;
  return in;
}

TEST(ChooseModeTest, NothingLeftIsSerial) {
  AutoChoice c = ChooseMode(Workload(0, 1.0));
  EXPECT_EQ(c.mode, Mode::kSerial);
  EXPECT_NE(c.reason.find("calibration ran every record"), std::string::npos);
}

TEST(ChooseModeTest, TinyCpuWorkIsSerial) {
  // The range product: 9,000 records of 0.1 us each: parallelism cannot pay.
  AutoChoice c = ChooseMode(Workload(9000, 1e-7));
  EXPECT_EQ(c.mode, Mode::kSerial);
  EXPECT_EQ(c.workers, 1u);
  EXPECT_NE(c.reason.find("not clearly faster than serial"), std::string::npos) << c.reason;
}

TEST(ChooseModeTest, SleepsRunOnAThreadEach) {
  AutoChoice c = ChooseMode(Workload(10, 1.0, 0.001));
  EXPECT_EQ(c.mode, Mode::kThreads);
  EXPECT_EQ(c.workers, 10u);  // waiting tasks: more threads than cores
  EXPECT_EQ(c.chunks, 10u);
  EXPECT_NE(c.reason.find("mostly waiting"), std::string::npos) << c.reason;
}

TEST(ChooseModeTest, WaitingWorkersAreCapped) {
  AutoChoice c = ChooseMode(Workload(100000, 0.01, 0.0));
  EXPECT_EQ(c.mode, Mode::kThreads);
  EXPECT_EQ(c.workers, 64u);
  AutoInputs sleeps = Workload(1000, 1.0, 0.0);  // 1,000 x sleep 1 s: a thread each
  sleeps.max_waiting_workers = 1024;
  c = ChooseMode(sleeps);
  EXPECT_EQ(c.workers, 1000u);
  EXPECT_EQ(c.chunks, 1000u);
}

TEST(ChooseModeTest, CpuWorkUsesCoresWithFourChunksEach) {
  AutoChoice c = ChooseMode(Workload(16, 0.25));
  EXPECT_EQ(c.mode, Mode::kThreads);
  EXPECT_EQ(c.workers, 2u);
  EXPECT_EQ(c.chunks, 8u);
}

TEST(ChooseModeTest, JobsFlagIsRespected) {
  AutoInputs in = Workload(1000, 0.01);
  in.jobs = 3;
  AutoChoice c = ChooseMode(in);
  EXPECT_EQ(c.workers, 3u);
  EXPECT_EQ(c.chunks, 12u);
}

TEST(ChooseModeTest, UserChunkCountIsKept) {
  AutoInputs in = Workload(1000, 0.01);
  in.chunks = 7;
  EXPECT_EQ(ChooseMode(in).chunks, 7u);
  in.record_seconds = 1e-8;  // serial too keeps the user's plan
  AutoChoice serial = ChooseMode(in);
  EXPECT_EQ(serial.mode, Mode::kSerial);
  EXPECT_EQ(serial.chunks, 7u);
}

TEST(ChooseModeTest, OverheadStaysUnderTwoPercent) {
  // 1 s of work in 1e6 records: dispatch (5 us a chunk) may take at most 20 ms.
  DispatchCosts costs;
  AutoChoice c = ChooseMode(Workload(1000000, 1e-6), costs);
  ASSERT_EQ(c.mode, Mode::kThreads);
  EXPECT_LE(static_cast<double>(c.chunks) * costs.thread_chunk_seconds, 0.02);
  EXPECT_GE(c.chunks, 8u);  // and still >= 4 per worker
}

TEST(ChooseModeTest, FewChunksWhenOverheadWouldDominate) {
  // 8 ms of work: 4 chunks per worker would cost more than 2%; one per worker remains.
  DispatchCosts costs;
  costs.thread_chunk_seconds = 0.0001;
  AutoChoice c = ChooseMode(Workload(8000, 1e-6), costs);
  ASSERT_EQ(c.mode, Mode::kThreads);
  EXPECT_EQ(c.chunks, 2u);
}

TEST(ChooseModeTest, MemoryBoundCopyIsSerial) {
  // Identity over 200 MB: the task runs at memory speed; more cores cannot help.
  AutoInputs in = Workload(2000000, 5e-8);
  in.bytes = 200'000'000;
  in.output_per_input = 1;
  AutoChoice c = ChooseMode(in);
  EXPECT_EQ(c.mode, Mode::kSerial);
  EXPECT_GE(c.chunks, 48u);  // <= 4 MiB a chunk
}

TEST(ChooseModeTest, ProcessFlagsForceProcesses) {
  AutoInputs in = Workload(10, 1e-7);
  in.needs_processes = true;
  in.jobs = 2;
  AutoChoice c = ChooseMode(in);
  EXPECT_EQ(c.mode, Mode::kProcesses);
  EXPECT_EQ(c.workers, 2u);
}

TEST(ChooseModeTest, ChunksNeverExceedRecords) {
  AutoChoice c = ChooseMode(Workload(3, 1.0));
  EXPECT_LE(c.chunks, 3u);
  EXPECT_LE(c.workers, 3u);
}

const TaskDef& Task(const std::string& name) {
  RegisterBuiltinTasks(TaskRegistry::Global());
  return *TaskRegistry::Global().Find(name);
}

std::string Lines(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += std::to_string(i) + "\n";
  return s;
}

TEST(CalibrateTest, GrowingPrefixKeepsOutputsAndOffsets) {
  std::string data = Lines(1000);
  Calibration cal = Calibrate(Task("identity"), {}, data, std::nullopt, {}, 1000);
  ASSERT_GE(cal.chunks.size(), 3u);
  EXPECT_LE(cal.records, 125u);  // at most 1/8
  uint64_t record = 0, byte = 0, size = 1;
  for (size_t i = 0; i < cal.chunks.size(); ++i) {
    const ChunkSpec& c = cal.chunks[i];
    EXPECT_EQ(c.id, i);
    EXPECT_EQ(c.first_record, record);
    EXPECT_EQ(c.begin, byte);
    if (i + 1 < cal.chunks.size()) {
      EXPECT_EQ(c.records, size);
    }
    EXPECT_EQ(cal.outputs[i], data.substr(c.begin, c.bytes()));  // identity
    record += c.records;
    byte = c.end;
    size *= 2;
  }
  EXPECT_EQ(cal.records, record);
  EXPECT_EQ(cal.bytes, byte);
}

TEST(CalibrateTest, SlowChunkIsCancelledNotKept) {
  std::string data = Lines(10);
  CalibrationLimits limits;
  limits.deadline_seconds = 0.01;
  Calibration cal = Calibrate(Task("sleep"), {"10000"}, data, std::nullopt, {}, 10, limits);
  EXPECT_TRUE(cal.chunks.empty());
  EXPECT_TRUE(cal.cut_short);
  EXPECT_GE(cal.cut_seconds, 0.01);
  EXPECT_LT(cal.cut_seconds, 5.0);  // cancelled, not slept through
}

TEST(CalibrateTest, UserPlanRunsItsChunksInOrderWhileTheyAreQuick) {
  // Eight quick chunks: calibrating may run all of them (the job is then done, serially).
  std::vector<ChunkSpec> plan = PlanRangeChunks({1, 801}, {.chunks = 8, .chunk_size = 0}, 8);
  Calibration cal = Calibrate(Task("product"), {}, "", IntRange{1, 801}, plan, 800);
  ASSERT_GE(cal.chunks.size(), 1u);
  for (size_t i = 0; i < cal.chunks.size(); ++i) EXPECT_EQ(cal.chunks[i].range, plan[i].range);
  // Slow chunks: the first is cut at the deadline and nothing is kept.
  std::string data = Lines(8);
  std::vector<ChunkSpec> slow = PlanLineChunks(data, {.chunks = 4, .chunk_size = 0}, 4);
  cal = Calibrate(Task("sleep"), {"1000"}, data, std::nullopt, slow, 8);
  EXPECT_TRUE(cal.chunks.empty());
  EXPECT_TRUE(cal.cut_short);
  EXPECT_EQ(cal.cut_records, 2.0);
}

TEST(PlanRestTest, RestFollowsTheCalibration) {
  std::string data = Lines(1000);
  Calibration cal = Calibrate(Task("identity"), {}, data, std::nullopt, {}, 1000);
  std::vector<ChunkSpec> plan = PlanRest(cal, data, std::nullopt, 4);
  ASSERT_EQ(plan.size(), cal.chunks.size() + 4);
  uint64_t byte = 0, record = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    EXPECT_EQ(plan[i].id, i);
    EXPECT_EQ(plan[i].begin, byte);
    EXPECT_EQ(plan[i].first_record, record);
    byte = plan[i].end;
    record += plan[i].records;
  }
  EXPECT_EQ(byte, data.size());
  EXPECT_EQ(record, 1000u);
}

TEST(PlanRestTest, RangeRestStartsAfterTheCalibration) {
  Calibration cal = Calibrate(Task("product"), {}, "", IntRange{0, 100}, {}, 100);
  std::vector<ChunkSpec> plan = PlanRest(cal, "", IntRange{0, 100}, 3);
  int64_t next = 0;
  for (const ChunkSpec& c : plan) {
    ASSERT_TRUE(c.range);
    EXPECT_EQ(c.range->lo, next);
    next = c.range->hi;
  }
  EXPECT_EQ(next, 100);
}

TEST(SchedulerMarkDoneTest, CalibratedChunksAreNeverIssued) {
  Scheduler scheduler(4, SchedulerOptions{});
  scheduler.MarkDone(0);
  scheduler.MarkDone(1);
  scheduler.AddWorker(0, 1, 4);
  auto a = scheduler.Next(0, TimePoint{});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->chunk, 2u);
  EXPECT_EQ(scheduler.chunks_done(), 2u);
  EXPECT_EQ(scheduler.OnResult(0, 2, 1, true, "", TimePoint{}).verdict, Verdict::kAccepted);
  a = scheduler.Next(0, TimePoint{});
  ASSERT_TRUE(a);
  EXPECT_EQ(scheduler.OnResult(0, a->chunk, 1, true, "", TimePoint{}).verdict, Verdict::kAccepted);
  EXPECT_TRUE(scheduler.Finished());
}

}  // namespace
}  // namespace fanout
