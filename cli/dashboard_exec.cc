// `fanout` without the dashboard linked in (dashboard_hook.h): --dashboard re-executes as
// `fanout-dashboard` from the same directory.
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/dashboard_hook.h"
#include "common/exit_code.h"

namespace fanout {

int ReexecForDashboard(char** argv) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    std::fprintf(stderr, "fanout: --dashboard: cannot find this program: %s\n",
                 std::strerror(errno));
    return ToInt(ExitCode::kUsage);
  }
  std::string path(self, static_cast<size_t>(n));
  path = path.substr(0, path.rfind('/') + 1) + "fanout-dashboard";
  execv(path.c_str(), argv);
  std::fprintf(stderr, "fanout: --dashboard needs %s: %s\n", path.c_str(), std::strerror(errno));
  return ToInt(ExitCode::kUsage);
}

int RunJobWithDashboard(const DashboardFlags&, const JobConfig&, RunReporter&) {
  std::fprintf(stderr, "fanout: this build has no dashboard\n");
  return ToInt(ExitCode::kUsage);
}

}  // namespace fanout
