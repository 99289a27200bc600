#include "engine/run_planned.h"

#include "engine/coordinator.h"
#include "engine/local_modes.h"

namespace fanout {

ModeResult RunPlannedJob(const PlannedJob& job, uint32_t workers, Scheduler& scheduler,
                         ResultSink& sink, RunStats& stats, std::stop_token stop) {
  if (stop.stop_requested()) return ModeResult::Interrupted();
  switch (job.config.mode) {
    case Mode::kSerial:
      return RunSerial(job, scheduler, sink, stats, std::move(stop));
    case Mode::kThreads:
      return RunThreads(job, workers, scheduler, sink, stats, std::move(stop));
    case Mode::kProcesses:
      return RunProcesses(job, workers, scheduler, sink, stats, std::move(stop));
    case Mode::kAuto:
      break;  // resolved by PlanAuto before any mode runs
  }
  return ModeResult::Failed("unknown mode");
}

}  // namespace fanout
