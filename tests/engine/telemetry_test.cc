// Telemetry: per-worker rows and byte totals are kept as attempts end, whether or not the
// spans themselves are; spans (memory per attempt) are kept only for a trace.
#include "engine/telemetry.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/fake_clock.h"

namespace fanout {
namespace {

AttemptSpan Span(uint64_t chunk, WorkerIndex worker, bool ok, double start, double end) {
  AttemptSpan s;
  s.chunk = chunk;
  s.attempt = 1;
  s.worker = worker;
  s.start = start;
  s.end = end;
  s.bytes_in = 10 * (chunk + 1);
  s.bytes_out = 3 * (chunk + 1);
  s.ok = ok;
  if (!ok) s.error = "boom";
  return s;
}

void RecordSome(Telemetry& t) {
  t.SetWorker(0, {"a", "h", 1});
  t.SetWorker(1, {"b", "h", 1});
  t.RecordAttempt(Span(0, 0, true, 0.0, 1.0));
  t.RecordAttempt(Span(1, 1, false, 0.0, 0.5));
  t.RecordAttempt(Span(2, 1, true, 0.5, 2.0));
}

size_t AttemptEvents(const Telemetry& t) {
  auto trace = nlohmann::json::parse(t.TraceJson());
  size_t n = 0;
  for (const auto& e : trace["traceEvents"]) n += e["ph"] == "X";
  return n;
}

TEST(TelemetryTest, RowsAndTotalsDoNotNeedSpans) {
  Telemetry t;  // spans not kept: the default
  RecordSome(t);
  EXPECT_EQ(t.ok_bytes_in(), 10u + 30u);
  EXPECT_EQ(t.ok_bytes_out(), 3u + 9u);
  JobTotals totals;
  totals.wall_seconds = 2;
  auto stats = nlohmann::json::parse(t.StatsJson(totals));
  ASSERT_EQ(stats["per_worker"].size(), 2u);
  EXPECT_EQ(stats["per_worker"][0]["chunks"], 1);
  EXPECT_EQ(stats["per_worker"][1]["chunks"], 1);
  EXPECT_EQ(stats["per_worker"][1]["failures"], 1);
  EXPECT_DOUBLE_EQ(stats["per_worker"][1]["busy_seconds"].get<double>(), 2.0);
  EXPECT_EQ(AttemptEvents(t), 0u);
}

TEST(TelemetryTest, TraceHasEveryAttemptWhenSpansAreKept) {
  Telemetry t;
  t.KeepSpans(true);
  RecordSome(t);
  EXPECT_EQ(AttemptEvents(t), 3u);
  EXPECT_EQ(t.ok_bytes_in(), 40u);
}

}  // namespace
}  // namespace fanout

namespace fanout {
namespace {

TEST(TelemetryClockTest, JobTimeComesFromTheClockItIsGiven) {
  testing::FakeClock clock;
  Telemetry t(clock);
  EXPECT_EQ(t.Now(), 0.0);
  clock.Advance(std::chrono::milliseconds(2500));
  EXPECT_DOUBLE_EQ(t.Now(), 2.5);
}

}  // namespace
}  // namespace fanout
