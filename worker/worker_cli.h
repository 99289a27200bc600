// WorkerMain: the `fanout-worker` command line (flags -> WorkerConfig, logging, plugins)
// followed by the worker loop, for programs that serve as workers with their own tasks
// (fanout::worker_main, SPMD binaries). Call from main's thread before other threads exist.
#pragma once

#include <string>

namespace fanout {

// `program` names the command in messages. Returns the exit status.
int WorkerMain(int argc, char** argv, const std::string& program);

}  // namespace fanout
