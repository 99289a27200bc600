// RunJob tells its JobObserver (engine/job_observer.h) when the chunks start and stop
// running (once each, with this run's chunk count and the job's progress unit) and how the
// job ended. The CLI's progress line, summary and report hang on these calls
// (OperatorTest.ProgressIsDrawnOnATerminalAndOnlyThere, QuietPrintsNothingButErrors).
#include "engine/job_observer.h"

#include <gtest/gtest.h>

#include <string>

#include "engine/job.h"
#include "engine/job_config.h"
#include "tests/support/test_support.h"

namespace fanout {
namespace {

class RecordingObserver : public JobObserver {
 public:
  void OnRunStart(const Telemetry& telemetry, uint64_t chunks, Unit unit) override {
    ++starts;
    this->chunks = chunks;
    this->unit = unit;
    done_at_start = telemetry.chunks_done.load();
  }
  void OnRunEnd() override { ++ends; }
  void OnJobEnd(const JobEnd& end) override {
    ++job_ends;
    end_chunks = end.totals.chunks;
    end_exit_code = end.totals.exit_code;
    end_workers = end.workers_started;
  }

  int starts = 0;
  int ends = 0;
  uint64_t chunks = 0;
  Unit unit = Unit::kBytes;
  uint64_t done_at_start = 0;
  int job_ends = 0;
  uint64_t end_chunks = 0;
  int end_exit_code = -1;
  uint32_t end_workers = 0;
};

JobConfig SerialJob(const testing::TempDir& dir) {
  JobConfig config;
  config.mode = Mode::kSerial;
  config.quiet = true;
  config.task = "identity";
  config.output = dir.File("out");
  config.chunking.chunks = 4;
  return config;
}

TEST(JobObserverTest, HearsTheRunStartAndEndOnceWithTheChunkCount) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("in"), "1\n2\n3\n4\n5\n6\n7\n8\n");
  JobConfig config = SerialJob(dir);
  config.input = dir.File("in");
  RecordingObserver observer;
  ASSERT_EQ(RunJob(config, &observer), ExitCode::kOk);
  EXPECT_EQ(observer.starts, 1);
  EXPECT_EQ(observer.ends, 1);
  EXPECT_EQ(observer.chunks, 4u);
  EXPECT_EQ(observer.unit, JobObserver::Unit::kBytes);
  EXPECT_EQ(observer.done_at_start, 0u);
  EXPECT_EQ(observer.job_ends, 1);
  EXPECT_EQ(observer.end_chunks, 4u);
  EXPECT_EQ(observer.end_exit_code, 0);
  EXPECT_EQ(observer.end_workers, 1u);
  EXPECT_EQ(testing::ReadFile(dir.File("out")), "1\n2\n3\n4\n5\n6\n7\n8\n");
}

TEST(JobObserverTest, AFailedJobEndsWithItsExitCode) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("in"), "x\n");
  JobConfig config = SerialJob(dir);
  config.input = dir.File("in");
  config.task = "exec";
  config.args = {"false"};
  config.scheduler.retries = 0;
  RecordingObserver observer;
  ASSERT_EQ(RunJob(config, &observer), ExitCode::kJobFailed);
  EXPECT_EQ(observer.ends, 1);
  EXPECT_EQ(observer.job_ends, 1);
  EXPECT_EQ(observer.end_exit_code, 1);
}

TEST(JobObserverTest, RangeJobsCountRecords) {
  testing::TempDir dir;
  JobConfig config = SerialJob(dir);
  config.range = IntRange{1, 101};
  RecordingObserver observer;
  ASSERT_EQ(RunJob(config, &observer), ExitCode::kOk);
  EXPECT_EQ(observer.starts, 1);
  EXPECT_EQ(observer.ends, 1);
  EXPECT_EQ(observer.unit, JobObserver::Unit::kRecords);
}

TEST(JobObserverTest, UsageErrorsStartNothing) {
  testing::TempDir dir;
  JobConfig config = SerialJob(dir);
  config.input = dir.File("missing");
  RecordingObserver observer;
  EXPECT_EQ(RunJob(config, &observer), ExitCode::kUsage);
  EXPECT_EQ(observer.starts, 0);
  EXPECT_EQ(observer.ends, 0);
  EXPECT_EQ(observer.job_ends, 0);
}

}  // namespace
}  // namespace fanout
