// Local input by reference (common/PROTOCOL.md, "Local workers: input by reference"): the
// per-run secret that proves a worker was started by this coordinator, and the path under
// which such a worker opens the job's input file itself. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "engine/job_input.h"

namespace fanout {

// A fresh random token (32 hex digits, 128 bits from getrandom).
Result<std::string> NewLocalToken();

// Compares a HELLO's token with ours in time independent of where they differ. An empty
// `expected` never matches.
bool LocalTokenMatches(std::string_view got, std::string_view expected);

// "/proc/PID/fd/N" for the input's open file (also for an unlinked stdin spool), or ""
// when the input has no file (an in-memory buffer, an empty input, --range).
std::string LocalInputPath(const JobInput& input);

}  // namespace fanout
