// RunCommand: the engine of the `exec` task. Runs a command (PATH lookup, no shell) in its
// own process group with the chunk on stdin, collecting stdout as the result. stdin is fed
// and stdout/stderr drained concurrently with poll(), so chunks of any size cannot
// deadlock on pipe buffers. Thread-safe: each call owns its child and pipes; the only
// process-wide effect is that SIGPIPE is ignored from the first call on.
#pragma once

#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace fanout {

// Runs argv[0] with `input` on stdin, appending its stdout to `out`. The environment is
// the caller's plus `extra_env` (which overrides variables of the same name). Errors, one
// line each:
//   "exec: cannot start 'CMD': <strerror>"
//   "exec: 'CMD' exited with status N[: <last stderr lines, joined by ' | '>]"
//   "exec: 'CMD' was killed by signal N (SIGNAME)[: <last stderr lines>]"
//   "cancelled" when `stop` is requested (the child's whole process group is killed and
//   the child reaped before returning; `out` may then hold partial output).
// A child that exits without reading all of its input is not an error by itself. stderr
// is otherwise discarded; only a bounded tail is kept. The child's CPU time is reported
// via AddChildCpuSeconds (measured_run.h).
Status RunCommand(const std::vector<std::string>& argv, std::string_view input,
                  const std::vector<std::pair<std::string, std::string>>& extra_env,
                  std::string& out, std::stop_token stop);

}  // namespace fanout
