// Path clashes: the files a job writes beside its output (--joblog, --trace, --stats-json,
// --log-file, --state) must each be a file of their own. One that is the input, the output,
// another of them or a file fanout keeps inside --state would destroy it (a joblog
// truncates the input before it is read; a trace replaces it). Checked before anything is
// opened for writing; reads only (stat, realpath). Pure apart from those; thread-safe.
#pragma once

#include <string>

#include "common/status.h"
#include "engine/job_config.h"

namespace fanout {

// OK, or a one-line usage error naming both flags and the file. Two paths are the same
// file if they exist and share device and inode (regular files and directories; devices
// such as /dev/null may be shared), or, not existing yet, if they are the same path once
// made absolute with the parent directory resolved (realpath) and the name appended. The
// input and output include stdin and stdout when those are regular files. A --state DIR
// may contain the input or output (that is the normal case) but may not be either.
Status CheckDistinctPaths(const JobConfig& config, const std::string& log_file);

}  // namespace fanout
