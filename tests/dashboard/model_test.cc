// DashboardModel and MetricsWriter without a server: what the engine's events become in
// the JSON and the Prometheus text, and the bounds on what is kept.
#include "dashboard/model.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "dashboard/dashboard.h"
#include "dashboard/metrics_writer.h"

namespace fanout {
namespace {

using Json = nlohmann::json;

AttemptSpan Span(uint64_t chunk, WorkerIndex worker, double start, double end, bool ok) {
  AttemptSpan s;
  s.chunk = chunk;
  s.attempt = 1;
  s.worker = worker;
  s.start = start;
  s.end = end;
  s.ok = ok;
  s.bytes_in = 10;
  s.bytes_out = 4;
  if (!ok) s.error = "exit status 1";
  return s;
}

TEST(MetricsWriterTest, WritesHelpTypeAndEscapedLabels) {
  MetricsWriter m;
  m.Family("fanout_x", "gauge", "A \\ help\nline.");
  m.Sample("fanout_x", 1.5, {{"state", "a\"b\\c\nd"}});
  EXPECT_EQ(m.text(),
            "# HELP fanout_x A \\\\ help\\nline.\n# TYPE fanout_x gauge\n"
            "fanout_x{state=\"a\\\"b\\\\c\\nd\"} 1.5\n");
}

TEST(MetricsWriterTest, HistogramBucketsAreCumulative) {
  MetricsWriter m;
  m.Histogram("fanout_h", "H.", {1, 2}, {3, 0, 2}, 7.5);
  EXPECT_NE(m.text().find("fanout_h_bucket{le=\"1\"} 3\n"), std::string::npos) << m.text();
  EXPECT_NE(m.text().find("fanout_h_bucket{le=\"2\"} 3\n"), std::string::npos);
  EXPECT_NE(m.text().find("fanout_h_bucket{le=\"+Inf\"} 5\n"), std::string::npos);
  EXPECT_NE(m.text().find("fanout_h_sum 7.5\nfanout_h_count 5\n"), std::string::npos);
}

TEST(DashboardModelTest, CountsAttemptsAndWorkerStates) {
  DashboardModel model({.task = "sleep 1", .mode = "processes"});
  model.OnWorker(0, {"w0", "hostA", 2});
  model.OnWorker(1, {"w1", "hostB", 1});
  model.OnAttemptStart(0, 1, 0, 0.1);
  model.OnAttemptStart(1, 1, 1, 0.1);
  model.OnAttemptEnd(Span(0, 0, 0.1, 0.5, true));
  model.OnAttemptEnd(Span(1, 1, 0.1, 0.6, false));
  model.OnAttemptStart(1, 2, 0, 0.7);
  WorkerInfo lost{"w1", "hostB", 1};
  lost.lost = true;
  model.OnWorker(1, lost);
  Json workers = Json::parse(model.WorkersJson())["workers"];
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0]["state"], "busy");
  EXPECT_EQ(workers[0]["slots_busy"], 1);
  EXPECT_EQ(workers[0]["chunks"], 1);
  EXPECT_EQ(workers[1]["state"], "lost");
  EXPECT_EQ(workers[1]["failures"], 1);
  Json tasks = Json::parse(model.TasksJson(0));
  ASSERT_EQ(tasks["events"].size(), 2u);
  EXPECT_EQ(tasks["events"][1]["ok"], false);
  EXPECT_EQ(tasks["events"][1]["error"], "exit status 1");
  EXPECT_EQ(Json::parse(model.TasksJson(1))["events"].size(), 1u);
  std::string metrics = model.MetricsText();
  EXPECT_NE(metrics.find("fanout_chunks_done_total 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("fanout_attempts_ended_total{outcome=\"failed\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("fanout_workers{state=\"lost\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("fanout_slots_busy 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("fanout_attempts_dispatched_total 3\n"), std::string::npos);
  EXPECT_NE(metrics.find("fanout_input_bytes_total 10\n"), std::string::npos);
}

TEST(DashboardModelTest, KeepsOnlyTheLatestEvents) {
  DashboardModel model({.task = "t", .mode = "serial", .max_events = 5});
  model.OnWorker(0, {"serial", "local", 1});
  for (uint64_t c = 0; c < 20; ++c) model.OnAttemptEnd(Span(c, 0, c, c + 0.5, true));
  Json tasks = Json::parse(model.TasksJson(0));
  ASSERT_EQ(tasks["events"].size(), 5u);
  EXPECT_EQ(tasks["events"][0]["chunk"], 15);
  EXPECT_EQ(tasks["last_seq"], 20);
}

TEST(DashboardModelTest, JobEndAdoptsTheTotals) {
  DashboardModel model({.task = "t", .mode = "auto"});
  Telemetry telemetry;
  model.OnRunStart(telemetry, 2, JobObserver::Unit::kBytes);
  model.OnAttemptEnd(Span(3, 0, 0, 1, true));
  model.OnAttemptEnd(Span(4, 0, 0, 1, true));
  JobTotals totals;
  totals.mode = "threads";
  totals.chunks = 5;  // three were found finished by --resume
  totals.bytes_in = 20;
  totals.counters.retries = 2;
  model.OnRunEnd();
  model.OnJobEnd({.totals = totals, .auto_mode = true, .telemetry = telemetry});
  Json job = Json::parse(model.JobJson());
  EXPECT_EQ(job["state"], "succeeded");
  EXPECT_EQ(job["mode"], "auto:threads");
  EXPECT_EQ(job["chunks_done"], 5);
  EXPECT_EQ(job["chunks_total"], 5);
  EXPECT_EQ(job["retries"], 2);
  EXPECT_DOUBLE_EQ(job["progress"].get<double>(), 1.0);
}

TEST(DashboardAddressTest, ParsesAndClassifies) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(ParseDashboardAddress(":0", host, port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(ParseDashboardAddress("[::1]:8080", host, port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8080);
  EXPECT_FALSE(ParseDashboardAddress("8080", host, port).ok());
  EXPECT_FALSE(ParseDashboardAddress("host:99999", host, port).ok());
  EXPECT_FALSE(ParseDashboardAddress("host:x", host, port).ok());
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
  EXPECT_FALSE(IsLoopbackHost("::"));
}

}  // namespace
}  // namespace fanout
