// JobLog: --joblog FILE, one tab-separated line per finished chunk attempt (accepted,
// failed, timed out, cancelled or lost), after a header line, flushed line by line so a
// killed coordinator leaves only whole lines. Columns are documented in README ("Job
// log"). Owned by the job; Telemetry writes to it under its own lock (not thread-safe
// by itself).
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "common/status.h"
#include "engine/telemetry.h"

namespace fanout {

class JobLog {
 public:
  // Opens FILE: truncated, or appended to when `append` (--resume); the header line is
  // written if the file is empty. Errors name the path.
  static Result<std::unique_ptr<JobLog>> Open(const std::string& path, bool append);
  ~JobLog();
  JobLog(const JobLog&) = delete;
  JobLog& operator=(const JobLog&) = delete;

  // `epoch_start`: the job's start, in seconds since the Unix epoch.
  void Write(const AttemptSpan& span, const WorkerInfo& worker, double epoch_start);

 private:
  explicit JobLog(FILE* file) : file_(file) {}
  FILE* file_;
};

// The exit status column for an attempt: 0 if it succeeded; the command's exit status, or
// 128 + signal number, when the error says so; -1 otherwise (lost, timed out, cancelled).
int ExitStatusOf(const AttemptSpan& span);

}  // namespace fanout
