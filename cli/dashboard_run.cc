// `fanout-dashboard`: fanout with the dashboard linked in (dashboard_hook.h).
#include <cstdio>

#include "cli/dashboard_hook.h"
#include "common/exit_code.h"
#include "dashboard/dashboard.h"
#include "engine/job.h"
#include "engine/job_observer.h"

namespace fanout {

int ReexecForDashboard(char** /*argv*/) { return -1; }

int RunJobWithDashboard(const DashboardFlags& flags, const JobConfig& config,
                        RunReporter& reporter) {
  // The command line as a shell would take it: words with spaces or quotes are quoted.
  std::string task = config.task;
  for (const std::string& arg : config.args) {
    bool plain = !arg.empty() && arg.find_first_of(" \t\n'\"\\$;&|<>*?") == std::string::npos;
    std::string quoted;
    for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    task += plain ? " " + arg : " '" + quoted + "'";
  }
  // After Interrupt::Install: the dashboard's threads inherit its blocked signals.
  auto dashboard = Dashboard::Start({.address = flags.address,
                                     .token_file = flags.token_file,
                                     .linger_seconds = flags.linger_seconds,
                                     .task = task,
                                     .mode = flags.mode});
  if (!dashboard.ok()) {
    std::fprintf(stderr, "fanout: %s (see 'fanout run --help')\n",
                 dashboard.status().message().c_str());
    return ToInt(ExitCode::kUsage);
  }
  ObserverTee observers({&reporter, (*dashboard)->observer()});
  ExitCode code = RunJob(config, &observers);
  (*dashboard)->Linger();
  return ToInt(code);
}

}  // namespace fanout
