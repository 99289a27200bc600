// RunJob tells its JobObserver (engine/job_observer.h) when the chunks start and stop
// running (once each, with this run's chunk count and the job's progress unit) and how the
// job ended. The CLI's progress line, summary and report hang on these calls
// (OperatorTest.ProgressIsDrawnOnATerminalAndOnlyThere, QuietPrintsNothingButErrors).
#include "engine/job_observer.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>

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

// Hears the telemetry events (from any thread) and checks their pairing as they come.
class RecordingListener : public JobObserver, public TelemetryListener {
 public:
  TelemetryListener* listener() override { return this; }
  void OnWorker(WorkerIndex worker, const WorkerInfo& info) override {
    std::lock_guard lock(mu);
    workers[worker] = info.name;
  }
  void OnAttemptStart(uint64_t chunk, uint32_t attempt, WorkerIndex worker, double) override {
    std::lock_guard lock(mu);
    if (!workers.count(worker)) ++unknown_worker;
    running.insert({chunk, attempt});
    ++starts;
  }
  void OnAttemptEnd(const AttemptSpan& span) override {
    std::lock_guard lock(mu);
    if (!running.erase({span.chunk, span.attempt})) ++ends_without_start;
    (span.ok ? ok : failed) += 1;
  }
  void OnWorkerSeen(WorkerIndex, double) override {
    std::lock_guard lock(mu);
    ++seen;
  }

  std::mutex mu;
  std::map<WorkerIndex, std::string> workers;
  std::set<std::pair<uint64_t, uint32_t>> running;
  int starts = 0, ok = 0, failed = 0, seen = 0, unknown_worker = 0, ends_without_start = 0;
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

// Each mode tells a listener of its workers and of every attempt's start and end, paired.
TEST(JobObserverTest, ListenerHearsEveryWorkerAndAttemptInEveryMode) {
  for (Mode mode : {Mode::kSerial, Mode::kThreads, Mode::kProcesses}) {
    testing::TempDir dir;
    std::string input;
    for (int i = 0; i < 40; ++i) input += std::to_string(i) + "\n";
    testing::WriteFile(dir.File("in"), input);
    JobConfig config = SerialJob(dir);
    config.input = dir.File("in");
    config.mode = mode;
    config.jobs = 2;
    config.jobs_given = true;
    config.chunking.chunks = 10;
    config.worker_bin = testing::WorkerBin();
    RecordingListener listener;
    ASSERT_EQ(RunJob(config, &listener), ExitCode::kOk) << ModeName(mode);
    // A second worker may join only after the first ran every chunk.
    EXPECT_GE(listener.workers.size(), 1u) << ModeName(mode);
    EXPECT_LE(listener.workers.size(), mode == Mode::kSerial ? 1u : 2u) << ModeName(mode);
    EXPECT_EQ(listener.ok, 10) << ModeName(mode);
    EXPECT_EQ(listener.failed, 0) << ModeName(mode);
    // Processes mode may send a queued attempt again to a worker that is free sooner.
    EXPECT_GE(listener.starts, 10) << ModeName(mode);
    EXPECT_TRUE(listener.running.empty()) << ModeName(mode);
    EXPECT_EQ(listener.unknown_worker, 0) << ModeName(mode);
    EXPECT_EQ(listener.ends_without_start, 0) << ModeName(mode);
    if (mode == Mode::kProcesses) {
      EXPECT_GE(listener.seen, 1) << "results are messages";
    }
  }
}

// ObserverTee hands every call to each observer, and the telemetry events to the ones
// that listen.
TEST(JobObserverTest, ObserverTeeFeedsEveryObserverAndListener) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("in"), "1\n2\n3\n4\n");
  JobConfig config = SerialJob(dir);
  config.input = dir.File("in");
  RecordingObserver plain;
  RecordingListener listening;
  ObserverTee tee({&plain, &listening});
  ASSERT_NE(tee.listener(), nullptr);
  ASSERT_EQ(RunJob(config, &tee), ExitCode::kOk);
  EXPECT_EQ(plain.starts, 1);
  EXPECT_EQ(plain.job_ends, 1);
  EXPECT_EQ(listening.ok, 4);
  ObserverTee deaf({&plain});
  EXPECT_EQ(deaf.listener(), nullptr);
}

}  // namespace
}  // namespace fanout
