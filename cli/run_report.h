// RunReporter: what `fanout run` shows on stderr about a job, as the engine's JobObserver
// (engine/job_observer.h): the progress line while the chunks run (--progress, or a
// terminal), then the one-line summary (unless -q, or the reader of stdout left) and the
// per-worker report (--report, or a terminal). One thread: the job's.
#pragma once

#include <optional>
#include <string>

#include "cli/progress.h"
#include "engine/job_observer.h"

namespace fanout {

class RunReporter : public JobObserver {
 public:
  struct Options {
    bool progress = false;
    bool summary = false;
    bool report = false;
  };
  explicit RunReporter(Options options) : options_(options) {}

  void OnRunStart(const Telemetry& telemetry, uint64_t chunks, Unit unit) override;
  void OnRunEnd() override { progress_.reset(); }
  void OnJobEnd(const JobEnd& end) override;

  // "fanout: mode=... workers=... chunks=... wall=... cpu=... parallelism=... retries=...
  // ... late_dropped=N[ predicted_wall=...]" (README: the summary line), no newline.
  static std::string SummaryLine(const JobEnd& end);

 private:
  Options options_;
  std::optional<Progress> progress_;
};

}  // namespace fanout
