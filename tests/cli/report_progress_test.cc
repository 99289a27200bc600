// The end-of-job report and the progress line (issue #15 item 8): the report lists only
// workers that ran something, and the progress line keeps the one rate unit it started with.
#include <gtest/gtest.h>

#include <string>

#include "cli/progress.h"
#include "engine/telemetry.h"

namespace fanout {
namespace {

AttemptSpan Span(uint64_t chunk, WorkerIndex worker, double start, double end) {
  AttemptSpan s;
  s.chunk = chunk;
  s.attempt = 1;
  s.worker = worker;
  s.start = start;
  s.end = end;
  s.bytes_in = 10;
  s.bytes_out = 3;
  s.ok = true;
  return s;
}

TEST(ReportTest, ListsOnlyWorkersThatRanSomething) {
  Telemetry t;
  for (WorkerIndex w = 0; w < 64; ++w) t.SetWorker(w, {"thread-" + std::to_string(w), "h", 1});
  t.RecordAttempt(Span(0, 3, 0.0, 1.0));
  t.RecordAttempt(Span(1, 7, 0.0, 1.0));
  JobTotals totals;
  totals.wall_seconds = 1.0;
  std::string report = t.Report(totals);
  EXPECT_NE(report.find("thread-3 "), std::string::npos) << report;
  EXPECT_NE(report.find("thread-7 "), std::string::npos) << report;
  EXPECT_EQ(report.find("thread-0 "), std::string::npos) << report;
  EXPECT_NE(report.find("(62 workers ran nothing)"), std::string::npos) << report;
}

TEST(ProgressTest, KeepsOneRateUnitForTheWholeJob) {
  Telemetry t;
  // Before any chunk is done a byte job already shows MB/s, and still does after.
  EXPECT_NE(Progress::Line(t, 10, 1.0, Progress::Rate::kBytes).find("0.0 MB/s"), std::string::npos);
  t.records_done = 100;
  t.bytes_done = 2000000;
  t.chunks_done = 1;
  EXPECT_NE(Progress::Line(t, 10, 1.0, Progress::Rate::kBytes).find("2.0 MB/s"), std::string::npos);
  // A --range job counts records, whatever bytes its telemetry saw.
  EXPECT_NE(Progress::Line(t, 10, 1.0, Progress::Rate::kRecords).find("100 records/s"),
            std::string::npos);
}

}  // namespace
}  // namespace fanout
