// `fanout server`: a long-lived coordinator whose workers stay warm across jobs, and the
// clients that use it (`fanout run --server`, `fanout jobs|status|cancel|wait|output`).
//
// The server binds a ROUTER for clients (--listen) and keeps one WarmProcesses fleet
// (engine/warm_processes.h): its local workers (-j) and the workers that connect to
// --workers-listen. Clients submit a job as the arguments of `fanout run` plus its input;
// a runner thread starts the queued jobs in submission order, each on a thread of its own
// (up to --max-jobs at once), and each runs through the engine's RunJob on the fleet (the
// same code path as a one-shot `fanout run`); the fleet shares its workers' slots among
// the running jobs. The output goes back to the client that waits for it. Client and worker
// endpoints are two sockets on purpose: each has its own authorized keys, so a worker key cannot
// submit and a client key cannot take chunks, by construction.
//
// With --state DIR every job is journaled there (its arguments and input before the
// submission is acknowledged, the finished chunks as the engine's --state, the output and
// exit code when it ends); a server restarted on the same DIR continues the unfinished jobs
// without re-running finished chunks, and keeps finished ones until their output is fetched
// (or, with --keep-finished, until that long after their end).
// The wire messages are in common/PROTOCOL.md ("Client messages").
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/curve.h"
#include "common/server_protocol.h"  // ServerClient
#include "common/status.h"
#include "engine/job_config.h"

namespace fanout {

struct ServerOptions {
  std::string listen;  // clients: ipc://PATH (mode 0700 socket), or tcp:// with CURVE
  // The fleet: workers_listen is config.listen, worker CURVE and authorized keys, --slots,
  // --worker-bin, heartbeat; config.jobs local workers.
  JobConfig fleet;
  std::string state_dir;      // --state: the journal; "" = a private temp dir
  uint32_t max_running = 32;  // --max-jobs: jobs that run at once; more wait in the queue
  // --keep-finished: a finished job whose output nobody fetched within this long of its end
  // is deleted (output, report, journal). 0: kept until fetched.
  std::chrono::microseconds keep_finished{0};
  std::optional<CurveKeyPair> client_curve;  // --curve-secret: the server's pair for clients
  std::vector<std::string> client_keys;      // --client-keys DIR: who may submit
};

// Runs the server until SIGINT/SIGTERM (exit 0) or a start-up failure (exit 2, one line).
int RunServer(const ServerOptions& options);

// `fanout run --server ...`: submits `args` (what `fanout run` takes, minus the client's own
// flags; the caller has refused the flags a server refuses) with the input `parsed` names (its -i
// or stdin; none for --range), then waits for the job and writes its output to `parsed.output` and
// its report to stderr, returning the job's exit code. `detach`: prints the job id and returns 0
// once the server has it.
int SubmitToServer(const ServerClient& client, const std::vector<std::string>& args,
                   const JobConfig& parsed, bool detach);

// `fanout jobs|status ID|cancel ID|wait ID|output ID`. `output` (wait, output: "-" =
// stdout) is where the job's output goes.
int ServerCommand(const ServerClient& client, const std::string& op, const std::string& id,
                  const std::string& output);

// Parses a server job's arguments (`fanout run`'s flags, TASK and ARGS) into `config` as
// `fanout run` would; refuses flags that belong to the server (files on its machine,
// its fleet, plugins) with a one-line usage error. Defined in cli.cc.
Status ParseServerJob(const std::vector<std::string>& args, JobConfig& config);

}  // namespace fanout
