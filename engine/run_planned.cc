#include "engine/run_planned.h"

#include "engine/coordinator.h"
#include "engine/local_modes.h"

namespace fanout {

ModeResult RunPlannedJob(const PlannedJob& job, uint32_t workers, Scheduler& scheduler,
                         ResultSink& sink, RunStats& stats) {
  switch (job.config.mode) {
    case Mode::kSerial:
      return RunSerial(job, scheduler, sink, stats);
    case Mode::kThreads:
      return RunThreads(job, workers, scheduler, sink, stats);
    case Mode::kProcesses:
      return RunProcesses(job, workers, scheduler, sink, stats);
    case Mode::kAuto:
      break;  // resolved by PlanAuto before any mode runs
  }
  return ModeResult::Failed("unknown mode");
}

}  // namespace fanout
