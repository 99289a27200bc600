// The process exit codes of `fanout` and `fanout-worker`, documented in README.md ("Exit
// codes"; the worker's under "Running on several machines").
#pragma once

namespace fanout {

enum class ExitCode : int {
  kOk = 0,             // the job completed and every chunk succeeded
  kJobFailed = 1,      // a chunk failed every attempt, or no worker could run the job
  kUsage = 2,          // bad command line or unusable input/output; nothing was written
  kPartial = 3,        // --keep-going: completed, but some chunks failed (listed on stderr)
  kInterrupted = 130,  // stopped by SIGINT/SIGTERM/SIGHUP
  // stdout was closed by its reader (`fanout run ... | head -1`): the job stopped quietly,
  // with the status of a tool killed by SIGPIPE (128 + 13), as a shell reports it.
  kBrokenPipe = 141,
  // fanout-worker: the coordinator refused its protocol version (REJECT naming another).
  kProtocolRefused = 1,
};

inline int ToInt(ExitCode code) { return static_cast<int>(code); }

// 128 + `signal`, as a shell reports a process killed by it: how fanout-worker ends on
// SIGINT (130, kInterrupted), SIGHUP (129) and SIGTERM (143, also after a drain).
inline int SignalExit(int signal) { return 128 + signal; }

}  // namespace fanout
