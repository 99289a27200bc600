// Coordinator: the event loop of a `processes` job. It owns the ROUTER socket (on ipc://
// in a private temporary directory removed at exit), the local worker processes
// (LocalLauncher) and the peers' liveness; it asks the Scheduler what to send where and
// hands accepted outputs to the ResultSink. One thread; nothing here blocks except
// zmq::poll, whose timeout is the nearest deadline (heartbeat, liveness, attempt timeout,
// respawn). The conversation is specified in common/PROTOCOL.md.
//
// Failure handling (issue #3): a local worker that exits is noticed through its pidfd at
// once; a silent one after `liveness` heartbeat intervals (and is then killed). Either way
// its attempts go back to the queue (Scheduler::RemoveWorker) and a replacement is started
// with back-off while --max-respawns allows. With no worker left and none startable the
// job fails with a message; it never hangs.
#pragma once

#include <cstdint>
#include <stop_token>

#include "engine/planned_job.h"
#include "engine/result_sink.h"

namespace fanout {

// `stop` ends the job as Ctrl-C does (engine/run_planned.h), waking the loop's poll at once.
ModeResult RunProcesses(const PlannedJob& job, uint32_t workers, Scheduler& scheduler,
                        ResultSink& sink, RunStats& stats, std::stop_token stop = {});

}  // namespace fanout
