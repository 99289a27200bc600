// fanout/worker.h: programs that serve as fanout workers with their own tasks.
// worker_main() is the whole `fanout-worker` command (--connect, --slots, --once, --name,
// --heartbeat, --log-level, --plugin, the CURVE flags or --insecure for tcp://) running this
// program's registered tasks plus the built-ins. init() enables the SPMD style: one binary is both
// the coordinator (its Pool in processes mode starts copies of it) and the worker (the copies,
// recognised by their arguments). Call these from main's thread before starting any other thread.
#pragma once

#include "fanout/export.h"

namespace fanout {

// Runs the worker loop until it is told to stop; returns the process exit status
// (0, 1 after a protocol mismatch, 2 on bad arguments or plugins, 128+signal).
FANOUT_API int worker_main(int argc, char** argv);

// Call first thing in main. If this process was started as a worker (its first argument
// is --connect, as processes-mode Pools start it, or --fanout-worker, which is then
// dropped), runs worker_main and exits with its status. Otherwise returns, and
// processes-mode Pools of this program start copies of it as their workers.
FANOUT_API void init(int argc, char** argv);

}  // namespace fanout
