// The `fanout` command line (CLI11): `fanout run [OPTIONS] TASK [ARGS...]` and
// `fanout tasks`. Parsing fills a JobConfig; every usage error is one line on stderr and
// exit code 2 (common/exit_code.h). main.cc is just RunCli.
#pragma once

#include "engine/job_config.h"

namespace fanout {

// Parses argv and runs the requested command. Returns the process exit code.
int RunCli(int argc, char** argv);

}  // namespace fanout
