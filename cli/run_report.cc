#include "cli/run_report.h"

#include <chrono>
#include <cstdio>

#include "common/exit_code.h"
#include "common/units.h"

namespace fanout {

void RunReporter::OnRunStart(const Telemetry& telemetry, uint64_t chunks, Unit unit) {
  if (!options_.progress) return;
  progress_.emplace(telemetry, chunks,
                    unit == Unit::kRecords ? Progress::Rate::kRecords : Progress::Rate::kBytes);
}

std::string RunReporter::SummaryLine(const JobEnd& end) {
  const JobTotals& t = end.totals;
  std::string mode = end.auto_mode ? "auto:" + t.mode : t.mode;
  const SchedulerCounters& c = t.counters;
  auto seconds = [](double s) {
    return FormatDuration(std::chrono::duration_cast<Micros>(std::chrono::duration<double>(s)));
  };
  double wall = t.wall_seconds;
  char parallelism[32];
  std::snprintf(parallelism, sizeof parallelism, "%.2fx", wall > 0 ? t.cpu_seconds / wall : 0);
  std::string line =
      "fanout: mode=" + mode + " workers=" + std::to_string(end.workers_started) +
      " chunks=" + std::to_string(t.chunks) + " wall=" + seconds(wall) +
      " cpu=" + seconds(t.cpu_seconds) + " parallelism=" + parallelism +
      " retries=" + std::to_string(c.retries) + " timeouts=" + std::to_string(c.timeouts) +
      " workers_lost=" + std::to_string(c.workers_lost) +
      " workers_left=" + std::to_string(c.workers_left) +
      " respawns=" + std::to_string(t.respawns) + " speculated=" + std::to_string(c.speculative) +
      " late_dropped=" + std::to_string(c.late_duplicates);
  if (end.predicted_seconds > 0) line += " predicted_wall=" + seconds(end.predicted_seconds);
  return line;
}

void RunReporter::OnJobEnd(const JobEnd& end) {
  // A reader that left (`| head`) gets no summary, as any Unix tool's would not.
  if (options_.summary && end.totals.exit_code != ToInt(ExitCode::kBrokenPipe)) {
    std::fputs((SummaryLine(end) + "\n").c_str(), stderr);
  }
  if (options_.report) std::fputs(end.telemetry.Report(end.totals).c_str(), stderr);
}

}  // namespace fanout
