// JobConfig: everything one `fanout run` needs, as parsed from the command line (cli.h).
// A plain value: the CLI fills it, the job (job.h) reads it. No behaviour here.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/chunking.h"
#include "common/curve.h"
#include "common/task.h"
#include "common/transport.h"
#include "engine/scheduler.h"

namespace fanout {

enum class Mode {
  kSerial,     // one chunk after another in the coordinator process (the baseline)
  kThreads,    // an in-process pool of `jobs` threads
  kProcesses,  // `jobs` local fanout-worker processes over ZeroMQ
  kAuto,       // calibrate, then one of the above (auto_mode.h); resolved before running
};

std::string_view ModeName(Mode mode);

// --priority's bound, either way (JobConfig::priority).
constexpr int32_t kMaxPriority = 1000;

struct JobConfig {
  Mode mode = Mode::kAuto;
  uint32_t jobs = 0;  // workers or threads; 0 = the number of cores
  ChunkingOptions chunking;
  std::optional<IntRange> range;  // --range A:B: records are integers, no input is read
  std::string input = "-";        // "-" = stdin
  std::string output = "-";       // "-" = stdout
  std::string output_shown;       // how errors name the output ("" = `output`)
  std::string task;
  std::vector<std::string> args;
  SchedulerOptions scheduler;  // retries, crash_limit, timeout, speculate, keep_going
  // --priority: where jobs share warm workers (a fanout server), a job of higher priority
  // takes the free slots first and leaves the queue first; equals share (event_loop.h).
  // From -kMaxPriority to kMaxPriority.
  int32_t priority = 0;
  // --ok-exit: exec exit statuses that count as success (in every mode; workers learn them
  // from WELCOME); empty = {0}.
  std::vector<uint32_t> ok_exit;
  std::chrono::milliseconds heartbeat{500};
  uint32_t liveness = 4;
  uint32_t local_slots = 1;              // --slots: attempts each local worker runs at once
  int64_t max_respawns = -1;             // local workers respawned after dying; -1 = 2 x workers
  std::string worker_bin;                // fanout-worker to spawn; "" = next to `fanout`
  std::vector<std::string> worker_args;  // appended to each local worker's command line
  std::vector<std::string> plugins;      // --plugin: task libraries loaded here and by workers
  // processes mode: bind here (tcp://HOST:PORT or ipc://PATH) so workers started elsewhere
  // can join; "" = a private ipc:// endpoint. With --listen and no -j, no local workers are
  // started and the job waits for workers to connect.
  std::string listen;
  // --curve-secret / --authorized-keys (read and checked by the CLI): with a server pair,
  // --listen speaks CURVE and admits only these worker keys (plus the coordinator's own
  // local workers, which get a throwaway pair).
  std::optional<CurveKeyPair> curve_server;
  std::vector<std::string> authorized_keys;
  int64_t max_message = kDefaultMaxMessage;  // --max-message: largest frame a peer may send
  // --max-spool: most bytes of a stream (stdin, FIFO) copied to the spool file; 0 = no
  // limit but the spool filesystem's free-space margin (JobInput::Open).
  uint64_t max_spool = 0;
  // --local-input ref|copy: local workers the coordinator started read their chunks from
  // the input file by offset (ref) or receive them as payloads like remote workers (copy).
  bool local_input_by_ref = true;
  // The `fanout` program only: this process's children are all its own workers, so it may
  // adopt and kill the commands of workers that die (LocalLauncher). Off in the library.
  bool adopt_orphans = false;
  bool jobs_given = false;                    // -j was on the command line
  uint32_t min_workers = 0;                   // --min-workers: wait for this many before dispatch
  std::chrono::milliseconds wait_timeout{0};  // --wait-timeout: give up waiting; 0 = never
  bool quiet = false;                         // errors only: no summary, report or progress
  bool dry_run = false;                       // print the chunk plan, run nothing
  std::string stats_json;                     // --stats-json FILE
  std::string trace;                          // --trace FILE (Chrome Trace Event format)
  bool header = false;        // --header: the first line goes to every chunk; output header once
  bool unordered = false;     // --unordered: write each chunk's output as soon as it is done
  bool window_given = false;  // --window N was given (config.scheduler.window)
  std::string joblog;         // --joblog FILE: one TSV line per finished attempt
  std::string state_dir;      // --state DIR: journal + finished chunks' outputs, for --resume
  bool resume = false;        // --resume: run only the chunks DIR does not hold yet
  bool keep_state = false;    // --keep-state: keep DIR after success
};

}  // namespace fanout
