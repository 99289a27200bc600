#include "engine/telemetry.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/units.h"
#include "engine/job_log.h"

namespace fanout {
namespace {

using Json = nlohmann::ordered_json;

}  // namespace

uint64_t PeakRssBytes() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kib = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "VmHWM: %llu kB", &kib) == 1) break;
  }
  std::fclose(f);
  return kib * 1024;
}

Telemetry::Telemetry(const Clock& clock)
    : clock_(&clock),
      start_(clock.Now()),
      epoch_start_(
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count()) {}

double Telemetry::Now() const { return At(clock_->Now()); }

double Telemetry::At(Clock::time_point t) const {
  return std::chrono::duration<double>(t - start_).count();
}

void Telemetry::SetWorker(WorkerIndex worker, WorkerInfo info) {
  if (listener_) listener_->OnWorker(worker, info);
  std::lock_guard lock(mu_);
  if (workers_.size() <= worker) workers_.resize(worker + 1);
  workers_[worker] = std::move(info);
}

void Telemetry::MarkLeft(WorkerIndex worker) {
  std::unique_lock lock(mu_);
  if (workers_.size() <= worker) workers_.resize(worker + 1);
  workers_[worker].left = true;
  WorkerInfo info = workers_[worker];
  lock.unlock();
  if (listener_) listener_->OnWorker(worker, info);
}

void Telemetry::MarkLost(WorkerIndex worker) {
  if (!listener_) return;
  std::unique_lock lock(mu_);
  if (workers_.size() <= worker) workers_.resize(worker + 1);
  workers_[worker].lost = true;
  WorkerInfo info = workers_[worker];
  lock.unlock();
  listener_->OnWorker(worker, info);
}

std::string Telemetry::WorkerName(WorkerIndex worker) const {
  std::lock_guard lock(mu_);
  if (worker < workers_.size() && !workers_[worker].name.empty()) return workers_[worker].name;
  return "#" + std::to_string(worker);
}

void Telemetry::RecordAttempt(AttemptSpan span) {
  if (span.ok) {
    chunks_done.fetch_add(1);
    bytes_done.fetch_add(span.bytes_in);
    records_done.fetch_add(span.records);
  } else {
    failures.fetch_add(1);
  }
  if (listener_) listener_->OnAttemptEnd(span);
  std::lock_guard lock(mu_);
  if (joblog_) {
    WorkerInfo unknown{"#" + std::to_string(span.worker), "", 1};
    joblog_->Write(span, span.worker < workers_.size() ? workers_[span.worker] : unknown,
                   epoch_start_);
  }
  if (rows_.size() <= span.worker) rows_.resize(span.worker + 1);
  WorkerRow& row = rows_[span.worker];
  (span.ok ? row.chunks : row.failures) += 1;
  if (span.measured) row.busy += std::max(0.0, span.end - span.start);
  if (span.ok) {
    ok_bytes_in_ += span.bytes_in;
    ok_bytes_out_ += span.bytes_out;
  }
  if (keep_spans_) spans_.push_back(std::move(span));
}

uint64_t Telemetry::ok_bytes_in() const {
  std::lock_guard lock(mu_);
  return ok_bytes_in_;
}

uint64_t Telemetry::ok_bytes_out() const {
  std::lock_guard lock(mu_);
  return ok_bytes_out_;
}

void Telemetry::StartedEarlier(double seconds) {
  start_ -= std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(seconds));
  epoch_start_ -= seconds;
}

std::vector<AttemptSpan> Telemetry::spans() const {
  std::lock_guard lock(mu_);
  return spans_;
}

std::vector<Telemetry::WorkerRow> Telemetry::Rows() const {
  std::lock_guard lock(mu_);
  std::vector<WorkerRow> rows = rows_;
  if (rows.size() < workers_.size()) rows.resize(workers_.size());
  return rows;
}

std::string Telemetry::Report(const JobTotals& totals) const {
  std::vector<WorkerRow> rows = Rows();
  std::string text = "fanout: per worker:\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-20s %-16s %8s %7s %8s\n", "worker", "host", "chunks",
                "busy", "failures");
  text += line;
  std::lock_guard lock(mu_);
  size_t idle = 0;
  for (size_t w = 0; w < rows.size(); ++w) {
    if (rows[w].chunks == 0 && rows[w].failures == 0 && rows[w].busy <= 0) {
      ++idle;  // joined but ran nothing: 64 threads on a 3-chunk job are not 61 rows
      continue;
    }
    std::string name = w < workers_.size() ? workers_[w].name : "#" + std::to_string(w);
    std::string host = w < workers_.size() ? workers_[w].host : "";
    double busy = totals.wall_seconds > 0 ? 100.0 * rows[w].busy / totals.wall_seconds : 0;
    std::snprintf(line, sizeof line, "  %-20s %-16s %8lu %6.0f%% %8lu\n", name.c_str(),
                  host.c_str(), static_cast<unsigned long>(rows[w].chunks), busy,
                  static_cast<unsigned long>(rows[w].failures));
    text += line;
  }
  if (idle > 0) {
    text += "  (" + std::to_string(idle) + (idle == 1 ? " worker" : " workers") + " ran nothing)\n";
  }
  double busy = 0;
  for (const auto& r : rows) busy += r.busy;
  std::snprintf(line, sizeof line,
                "fanout: totals: wall %.2fs, cpu %.2fs, parallelism %.2fx, overhead %.0f%%, "
                "in %s, out %s, retries %lu\n",
                totals.wall_seconds, totals.cpu_seconds,
                totals.wall_seconds > 0 ? totals.cpu_seconds / totals.wall_seconds : 0.0,
                busy > 0 ? std::max(0.0, 100.0 * (1.0 - totals.cpu_seconds / busy)) : 0.0,
                FormatBytes(totals.bytes_in).c_str(), FormatBytes(totals.bytes_out).c_str(),
                static_cast<unsigned long>(totals.counters.retries));
  text += line;
  return text;
}

std::string Telemetry::StatsJson(const JobTotals& t) const {
  std::vector<WorkerRow> rows = Rows();
  double busy_total = 0;
  for (const auto& r : rows) busy_total += r.busy;
  Json j;
  j["fanout_stats_version"] = 1;
  j["mode"] = t.mode;
  j["exit_code"] = t.exit_code;
  j["workers"] = t.workers;
  j["chunks"] = t.chunks;
  j["records"] = t.records;
  j["wall_seconds"] = t.wall_seconds;
  j["cpu_seconds"] = t.cpu_seconds;
  j["parallelism"] = t.wall_seconds > 0 ? t.cpu_seconds / t.wall_seconds : 0.0;
  // Share of worker busy time not spent computing (I/O waits, process start, transfer).
  j["overhead_share"] = busy_total > 0 ? std::max(0.0, 1.0 - t.cpu_seconds / busy_total) : 0.0;
  j["bytes_in"] = t.bytes_in;
  j["bytes_out"] = t.bytes_out;
  j["attempts"] = t.counters.attempts;
  j["retries"] = t.counters.retries;
  j["timeouts"] = t.counters.timeouts;
  j["workers_lost"] = t.counters.workers_lost;
  j["workers_left"] = t.counters.workers_left;
  j["respawns"] = t.respawns;
  j["speculated"] = t.counters.speculative;
  j["late_dropped"] = t.counters.late_duplicates;
  j["unknown_results"] = t.counters.unknown_results;
  j["rejected_messages"] = t.rejected_messages;
  j["peak_rss_bytes"] = t.peak_rss_bytes;
  j["failed_chunks"] = t.failed_chunks;
  if (!t.auto_choice.empty()) {
    j["auto"] = {{"choice", t.auto_choice}, {"calibration_chunks", t.auto_calibration_chunks}};
  }
  Json per_worker = Json::array();
  std::lock_guard lock(mu_);
  for (size_t w = 0; w < rows.size(); ++w) {
    per_worker.push_back({{"id", w < workers_.size() ? workers_[w].name : std::to_string(w)},
                          {"host", w < workers_.size() ? workers_[w].host : ""},
                          {"chunks", rows[w].chunks},
                          {"failures", rows[w].failures},
                          {"busy_seconds", rows[w].busy},
                          {"busy_share", t.wall_seconds > 0 ? rows[w].busy / t.wall_seconds : 0},
                          {"left", w < workers_.size() && workers_[w].left}});
  }
  j["per_worker"] = std::move(per_worker);
  return j.dump(1) + "\n";
}

std::string Telemetry::TraceJson() const {
  std::vector<AttemptSpan> spans = this->spans();
  std::sort(spans.begin(), spans.end(),
            [](const auto& a, const auto& b) { return a.start < b.start; });
  // Lanes: a worker gets one row per slot; each span goes to the row that frees up first.
  // Span starts are estimated (result arrival minus the worker's wall time), so a start a
  // little before its row's previous end is clamped to it.
  std::vector<std::vector<double>> lane_free;  // per worker: when each lane frees up
  Json events = Json::array();
  std::lock_guard lock(mu_);
  for (auto s : spans) {
    if (lane_free.size() <= s.worker) {
      lane_free.resize(s.worker + 1);
    }
    auto& lanes = lane_free[s.worker];
    if (lanes.empty()) {
      uint32_t slots = s.worker < workers_.size() ? workers_[s.worker].slots : 1;
      lanes.assign(std::max<uint32_t>(slots, 1), 0.0);
    }
    size_t lane = static_cast<size_t>(std::min_element(lanes.begin(), lanes.end()) - lanes.begin());
    s.start = std::min(std::max(s.start, lanes[lane]), s.end);
    lanes[lane] = s.end;
    Json args = {{"chunk", s.chunk},
                 {"attempt", s.attempt},
                 {"cpu_seconds", s.cpu_seconds},
                 {"bytes_in", s.bytes_in},
                 {"bytes_out", s.bytes_out}};
    if (!s.ok) args["error"] = s.error;
    events.push_back({{"name", "chunk " + std::to_string(s.chunk) +
                                   (s.attempt > 1 ? " #" + std::to_string(s.attempt) : "")},
                      {"cat", s.ok ? "ok" : "failed"},
                      {"ph", "X"},
                      {"ts", static_cast<int64_t>(s.start * 1e6)},
                      {"dur", static_cast<int64_t>(std::max(0.0, s.end - s.start) * 1e6)},
                      {"pid", 1},
                      {"tid", s.worker * 1000 + lane},
                      {"args", args}});
    if (!s.ok) events.back()["cname"] = "terrible";  // drawn red in the viewers
  }
  for (size_t w = 0; w < lane_free.size(); ++w) {
    for (size_t lane = 0; lane < lane_free[w].size(); ++lane) {
      std::string name = (w < workers_.size() ? workers_[w].name : "#" + std::to_string(w)) +
                         (lane_free[w].size() > 1 ? " slot " + std::to_string(lane) : "");
      events.push_back({{"name", "thread_name"},
                        {"ph", "M"},
                        {"pid", 1},
                        {"tid", w * 1000 + lane},
                        {"args", {{"name", name}}}});
    }
  }
  return Json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump() + "\n";
}

}  // namespace fanout
