// WarmProcesses: a processes-mode event loop (event_loop.h) on a thread of its own whose
// workers stay across jobs, for the library's Pool and `fanout server`: the first job
// starts the local workers; later jobs find them connected and welcomed, so a one-chunk
// job costs a message round trip instead of a process start. The thread serves the workers
// throughout (heartbeats, liveness, respawns), with or without jobs, so they neither time
// out nor reconnect.
//
// Jobs run side by side: each Run hands its job to the loop and blocks until that job ends
// (its outcomes reach its ResultSink on the loop's thread); calls from several threads run
// their jobs at once on the same workers, whose free slots go to the job with the fewest
// attempts out (event_loop.h, Fill). One job's stop or failure ends only that job. Every
// job must share the options that make the fleet (endpoint, security, worker binary and
// flags, slots, heartbeat: all but the task, its arguments and the scheduler options) and
// hold its input in memory. Thread-safe: Run may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

#include "common/status.h"
#include "engine/planned_job.h"
#include "engine/result_sink.h"

namespace fanout {

class WarmProcesses {
 public:
  // `config`: the fleet's options (copied); at most `workers` local workers (0: only those
  // that connect to config.listen). Nothing starts until the first Run.
  WarmProcesses(const JobConfig& config, uint32_t workers);
  // Stops the workers (SHUTDOWN, then signals) and joins the thread.
  ~WarmProcesses();
  WarmProcesses(const WarmProcesses&) = delete;
  WarmProcesses& operator=(const WarmProcesses&) = delete;

  // Starts the loop now instead of at the first Run (binds config.listen, so workers can
  // join before any job; local workers still start with the first job that needs them).
  // Returns whether the loop could start. Idempotent.
  Status Open();

  // Runs `job` on the warm workers, beside the jobs of other callers; as RunPlannedJob for
  // kProcesses (`stop` ends the job, kInterrupted, and the workers stay). Fails (kFailed)
  // if the loop could not start (e.g. the endpoint is taken) or broke down in an earlier job.
  ModeResult Run(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink, RunStats& stats,
                 std::stop_token stop = {});

 private:
  struct Request;
  void Main();
  void Wake();
  void Drain();

  const JobConfig config_;
  const uint32_t workers_;
  int wake_fd_ = -1;  // an eventfd: a job came, or stop
  std::mutex mu_;     // guards what follows
  std::condition_variable cv_;
  std::vector<Request*> pending_;  // jobs for the loop to admit
  bool stop_ = false;
  bool opened_ = false;  // the loop's Start has returned (broken_ says how)
  bool broken_ = false;
  std::string broken_why_;
  std::thread thread_;  // started by the first Run
};

}  // namespace fanout
