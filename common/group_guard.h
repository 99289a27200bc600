// GroupGuard: a small helper process that outlives its parent just long enough to kill the
// process groups of the parent's commands. PR_SET_PDEATHSIG reaches only a command itself;
// what the command started (the `sleep` of `sh -c 'sleep 60; cat'`, a pipeline's other
// members) would run on under init after the parent is killed with SIGKILL. The guard
// holds the read end of a pipe; Command writes "+pgid" when it starts a command and "-pgid"
// when it has reaped it. When the pipe ends (the parent exited, however it died) the guard
// kills every group still registered with SIGKILL and exits.
// The `fanout` program starts one before any thread (threads and serial modes run their
// commands in the coordinator). Thread-safety: Register/Unregister may be called from any
// thread (each is one atomic write of at most PIPE_BUF bytes).
#pragma once

#include <sys/types.h>

#include "common/status.h"

namespace fanout {

// Forks the guard. `argv`/`argc` of this process (optional) are overwritten in the guard
// so that `ps` and `pgrep -f` show "fanout: group guard", not the job's command line.
// Signals that stop a job (SIGINT, SIGTERM, SIGHUP, SIGQUIT) are ignored by the guard: it
// ends only with its pipe. Calling it twice is a no-op.
Status StartGroupGuard(int argc = 0, char** argv = nullptr);

// The guard's pid, or -1 if none was started (a subreaper must not take it for an orphan).
pid_t GroupGuardPid();

// Tell the guard (if one was started) about a command's process group.
void GuardRegister(pid_t pgid);
void GuardUnregister(pid_t pgid);

}  // namespace fanout
