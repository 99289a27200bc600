// WorkerLoop: the worker side of common/PROTOCOL.md (the ZeroMQ guide's Paranoid Pirate
// worker). It connects a DEALER, says HELLO, runs the TASKs it is sent on a TaskRunner,
// answers with RESULTs, and heartbeats. If the coordinator goes silent for `liveness`
// intervals (or forgets this worker and says REJECT), it abandons its attempts, closes the
// socket, backs off (1 s doubling to 32 s) and says HELLO again: workers outlive
// coordinators. SHUTDOWN ends the loop. One thread owns the socket; attempts of tasks
// with an async form (sleep, exec) run on that thread's poll too, others on the runner's
// threads (task_runner.h). SIGINT/SIGTERM must be blocked in every thread (main does it) and are
// read through a signalfd.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "common/transport.h"

namespace fanout {

struct WorkerConfig {
  std::string endpoint;
  std::string name;  // shown in the coordinator's logs and errors
  uint32_t slots = 1;
  bool once = false;  // exit after one job (SHUTDOWN) instead of serving the next one
  std::chrono::milliseconds heartbeat{500};  // until WELCOME brings the coordinator's
  uint32_t liveness = 4;
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{32000};
  // CURVE client keys (--curve-server-key, --curve-secret) and --max-message: results larger
  // than max_message are reported as chunk errors instead of being sent.
  SocketSecurity security{
      .curve_server = {}, .curve_client = {}, .max_message = kDefaultMaxMessage};
  // From --local-token-fd (a pipe from the coordinator that started this worker): sent in
  // HELLO to prove the worker is that coordinator's own (chunks by reference, signals).
  std::string local_token;
  // --drain-grace: on SIGTERM (a coordinator that takes LEAVE permitting), how long running
  // attempts may take to finish before they are stopped and handed back. Less than Slurm's
  // default KillWait (30 s, SIGTERM to SIGKILL), so the goodbye is said before SIGKILL.
  std::chrono::milliseconds drain_grace{25000};
  // Where the loop's time comes from (liveness, back-off, the drain deadline); it must
  // outlive RunWorker.
  const Clock* clock = &Clock::Steady();
};

// Serves job after job (after SHUTDOWN it says HELLO again, to the next coordinator on the
// endpoint) until SIGINT/SIGTERM (returns 128 + signal) or a REJECT of another protocol
// version (1). With `once`, SHUTDOWN ends it (0). SIGTERM during a session whose coordinator
// takes LEAVE drains first (PROTOCOL.md, Drain): it hands back what waits, finishes what
// runs within drain_grace, says goodbye, then returns 128 + SIGTERM; a second signal
// ends the drain at once. An endpoint no DEALER can connect to (malformed, unknown
// transport) is an error Status (the caller reports it as a usage error), never an exception.
Result<int> RunWorker(const WorkerConfig& config);

}  // namespace fanout
