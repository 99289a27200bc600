// How `fanout run --dashboard` reaches the dashboard. The dashboard's HTTP library
// (cpp-httplib, with OpenSSL, zlib and brotli) costs every process that links it about
// 4 ms of start-up, which a client of `fanout server` or a short job should not pay. So
// `fanout` is built without it (dashboard_exec.cc: a --dashboard run re-executes itself
// as `fanout-dashboard`, installed beside it), and `fanout-dashboard` is the same program
// with the dashboard linked in (dashboard_run.cc). Both are main.cc over fanout_cli.
#pragma once

#include <string>

#include "cli/run_report.h"
#include "engine/job_config.h"

namespace fanout {

struct DashboardFlags {
  std::string address;  // --dashboard ADDR ("": none)
  std::string token_file;
  double linger_seconds = 0;
  std::string mode;  // as given (--mode), for the page
};

// In `fanout`: replaces this process with `fanout-dashboard` and the same arguments
// (before anything was started), returning only on failure, with an exit code. In
// `fanout-dashboard`: returns -1 (go on; the dashboard is here).
int ReexecForDashboard(char** argv);

// Runs the job with the reporter and the dashboard as its observers (`fanout-dashboard`;
// in `fanout` a usage error: ReexecForDashboard ran first).
int RunJobWithDashboard(const DashboardFlags& flags, const JobConfig& config,
                        RunReporter& reporter);

}  // namespace fanout
