// JobConfig: everything one `fanout run` needs, as parsed from the command line (cli.h).
// A plain value: the CLI fills it, the job (job.h) reads it. No behaviour here.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/chunking.h"
#include "common/task.h"
#include "coordinator/scheduler.h"

namespace fanout {

enum class Mode {
  kSerial,     // one chunk after another in the coordinator process (the baseline)
  kThreads,    // an in-process pool of `jobs` threads
  kProcesses,  // `jobs` local fanout-worker processes over ZeroMQ (the default)
};

std::string_view ModeName(Mode mode);

struct JobConfig {
  Mode mode = Mode::kProcesses;
  uint32_t jobs = 0;  // workers or threads; 0 = the number of cores
  ChunkingOptions chunking;
  std::optional<IntRange> range;  // --range A:B: records are integers, no input is read
  std::string input = "-";        // "-" = stdin
  std::string output = "-";       // "-" = stdout
  std::string task;
  std::vector<std::string> args;
  SchedulerOptions scheduler;  // retries, timeout, speculate, keep_going
  std::chrono::milliseconds heartbeat{500};
  uint32_t liveness = 4;
  int64_t max_respawns = -1;             // local workers respawned after dying; -1 = 2 x workers
  std::string worker_bin;                // fanout-worker to spawn; "" = next to `fanout`
  std::vector<std::string> worker_args;  // appended to each local worker's command line
  std::vector<std::string> plugins;      // --plugin: task libraries loaded here and by workers
  // processes mode: bind here (tcp://HOST:PORT or ipc://PATH) so workers started elsewhere
  // can join; "" = a private ipc:// endpoint. With --listen and no -j, no local workers are
  // started and the job waits for workers to connect.
  std::string listen;
  bool jobs_given = false;                    // -j was on the command line
  uint32_t min_workers = 0;                   // --min-workers: wait for this many before dispatch
  std::chrono::milliseconds wait_timeout{0};  // --wait-timeout: give up waiting; 0 = never
  bool quiet = false;                         // errors only: no summary, report or progress
  bool progress = false;                      // live progress line on stderr
  bool report = false;                        // per-worker report on stderr at the end
  bool dry_run = false;                       // print the chunk plan, run nothing
  std::string stats_json;                     // --stats-json FILE
  std::string trace;                          // --trace FILE (Chrome Trace Event format)
};

}  // namespace fanout
