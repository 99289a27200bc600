#include "engine/job_log.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace fanout {
namespace {

constexpr const char* kHeader =
    "chunk\tattempt\tworker\thost\tstart\twall_seconds\tcpu_seconds\tbytes_in\tbytes_out\t"
    "exit_status\terror\n";

// A field without tabs or line breaks.
std::string Field(std::string text) {
  for (char& c : text) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return text.empty() ? "-" : text;
}

// The integer following `marker` in `text`, if any.
bool NumberAfter(const std::string& text, const char* marker, int& value) {
  auto at = text.find(marker);
  if (at == std::string::npos) return false;
  value = std::atoi(text.c_str() + at + std::strlen(marker));
  return true;
}

}  // namespace

Result<std::unique_ptr<JobLog>> JobLog::Open(const std::string& path, bool append) {
  FILE* f = std::fopen(path.c_str(), append ? "a" : "w");
  if (!f) return Status::Error("cannot write --joblog '" + path + "': " + std::strerror(errno));
  if (std::ftell(f) == 0) {
    std::fputs(kHeader, f);
    std::fflush(f);
  }
  return std::unique_ptr<JobLog>(new JobLog(f));
}

JobLog::~JobLog() { std::fclose(file_); }

int ExitStatusOf(const AttemptSpan& span) {
  if (span.ok) return 0;
  int value = 0;
  if (NumberAfter(span.error, "exited with status ", value)) return value;
  if (NumberAfter(span.error, "killed by signal ", value)) return 128 + value;
  return -1;
}

void JobLog::Write(const AttemptSpan& span, const WorkerInfo& worker, double epoch_start) {
  std::fprintf(file_, "%lu\t%u\t%s\t%s\t%.3f\t%.3f\t%.3f\t%lu\t%lu\t%d\t%s\n",
               static_cast<unsigned long>(span.chunk), span.attempt, Field(worker.name).c_str(),
               Field(worker.host).c_str(), epoch_start + span.start, span.end - span.start,
               span.cpu_seconds, static_cast<unsigned long>(span.bytes_in),
               static_cast<unsigned long>(span.bytes_out), ExitStatusOf(span),
               span.ok ? "-" : Field(span.error).c_str());
  std::fflush(file_);
}

}  // namespace fanout
