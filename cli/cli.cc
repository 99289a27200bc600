#include "cli/cli.h"

#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "cli/bench.h"
#include "cli/dashboard_hook.h"
#include "cli/path_clash.h"
#include "cli/run_report.h"
#include "cli/server.h"
#include "common/command.h"
#include "common/curve.h"
#include "common/exit_code.h"
#include "common/group_guard.h"
#include "common/log.h"
#include "common/units.h"
#include "engine/auto_mode.h"
#include "engine/interrupt.h"
#include "engine/job.h"
#include "engine/listen_security.h"
#include "engine/plugins.h"
#include "tasks/builtin_tasks.h"

namespace fanout {
namespace {

constexpr const char* kRunExamples = R"(
Examples:
  seq 1 1000000 | fanout run --chunks 8 exec -- awk '{s+=$1} END {print s}'
  fanout run -i big.txt -o out.txt -j 4 exec -- tr a-z A-Z
  fanout run --range 1:10000 --chunks 10 product
  fanout run --mode threads -i rows.txt sleep 10

Exit codes: 0 ok, 1 job failed, 2 usage or input error,
            3 completed with failed chunks (--keep-going), 130 interrupted.
)";

// Flags whose values need our own parsing (durations, ranges), kept as text until then.
struct RawFlags {
  std::string mode = "auto";
  std::string local_input = "ref";
  std::string range;
  std::string timeout;
  std::string heartbeat = "500ms";
  std::string log_level = "warn";
  std::string log_file;
  int verbose = 0;
  bool progress = false;
  bool report = false;
  bool insecure = false;
  std::string wait_timeout;
  std::string curve_secret;
  std::string authorized_keys;
  std::string max_message = "1G";
  std::string max_spool;
  std::string block;
  std::string record_size;
  bool null = false;
  std::string ok_exit;
  std::string dashboard;
  std::string dashboard_token;
  double dashboard_linger = 0;
  ServerClient client;  // --server, --server-key, --client-secret
  bool detach = false;
};

// --ok-exit 0,1: a comma-separated list of exit statuses 0-255.
Status ParseOkExit(const std::string& text, std::vector<uint32_t>& codes) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    char* rest = nullptr;
    errno = 0;
    long code = item.empty() ? -1 : std::strtol(item.c_str(), &rest, 10);
    if (code < 0 || code > 255 || errno != 0 || (rest && *rest != '\0')) {
      return Status::Error("--ok-exit: '" + item +
                           "' is not an exit status 0-255 (give a list such as 0,1)");
    }
    codes.push_back(static_cast<uint32_t>(code));
    start = end + 1;
  }
  return Status::Ok();
}

// A usage error (exit 2), pointing at the help of `command` ("": fanout's own).
int UsageError(const std::string& message, const std::string& command = "run") {
  std::string help = command.empty() ? "fanout --help" : "fanout " + command + " --help";
  std::fprintf(stderr, "fanout: %s (see '%s')\n", message.c_str(), help.c_str());
  return ToInt(ExitCode::kUsage);
}

// --curve-secret, --authorized-keys, --insecure and --max-message.
Status FinishSecurity(const RawFlags& raw, JobConfig& config) {
  auto max_message = ParseMaxMessage(raw.max_message);
  if (!max_message.ok()) return max_message.status();
  config.max_message = *max_message;
  return ApplyListenSecurity({raw.curve_secret, raw.authorized_keys, raw.insecure}, config);
}

// Record kind, --block and --header, checked for combinations that make no sense.
Status FinishRecords(const RawFlags& raw, JobConfig& config) {
  ChunkingOptions& c = config.chunking;
  if (!raw.block.empty()) {
    auto size = ParseSize(raw.block);
    if (!size.ok()) return Status::Error("--block: " + size.status().message());
    c.block_bytes = *size;
  }
  if (!raw.max_spool.empty()) {
    auto size = ParseSize(raw.max_spool);
    if (!size.ok()) return Status::Error("--max-spool: " + size.status().message());
    config.max_spool = *size;
  }
  if (!raw.record_size.empty()) {
    auto size = ParseSize(raw.record_size);
    if (!size.ok()) return Status::Error("--record-size: " + size.status().message());
    c.kind = RecordKind::kFixed;
    c.record_size = *size;
  }
  if (raw.null) {
    if (c.kind == RecordKind::kFixed) {
      return Status::Error("--null and --record-size are mutually exclusive");
    }
    c.kind = RecordKind::kNul;
  }
  if (c.block_bytes > 0 && (c.chunks > 0 || c.chunk_size > 0)) {
    return Status::Error("--block excludes --chunks and --chunk-size (choose one way to cut)");
  }
  if (config.range && (c.block_bytes > 0 || c.kind != RecordKind::kLines || config.header)) {
    return Status::Error(
        "--range reads no input: --block, --null, --record-size and --header "
        "do not apply");
  }
  if (config.header && c.kind != RecordKind::kLines) {
    return Status::Error("--header needs line records (not --null or --record-size)");
  }
  return Status::Ok();
}

// Turns the text flags into config fields; a usage error message on failure.
Status Finish(const RawFlags& raw, JobConfig& config) {
  static const std::map<std::string, Mode> kModes = {{"serial", Mode::kSerial},
                                                     {"threads", Mode::kThreads},
                                                     {"processes", Mode::kProcesses},
                                                     {"auto", Mode::kAuto}};
  auto mode = kModes.find(raw.mode);
  if (mode == kModes.end()) {
    return Status::Error("--mode must be auto, serial, threads or processes, not '" + raw.mode +
                         "'");
  }
  config.mode = mode->second;
  if (!raw.ok_exit.empty()) {
    if (Status s = ParseOkExit(raw.ok_exit, config.ok_exit); !s.ok()) return s;
  }
  if (raw.local_input != "ref" && raw.local_input != "copy") {
    return Status::Error("--local-input must be ref or copy, not '" + raw.local_input + "'");
  }
  config.local_input_by_ref = raw.local_input == "ref";
  if (!raw.range.empty()) {
    auto range = ParseRange(raw.range);
    if (!range.ok()) return Status::Error("--range: " + range.status().message());
    config.range = *range;
  }
  if (!raw.timeout.empty()) {
    auto spec = ParseDurationSpec(raw.timeout);
    if (!spec.ok()) return Status::Error("--timeout: " + spec.status().message());
    config.scheduler.timeout = spec->absolute;
    config.scheduler.timeout_percent = spec->percent;
  }
  if (Status s = FinishSecurity(raw, config); !s.ok()) return s;
  if (!raw.wait_timeout.empty()) {
    auto wait = ParseDuration(raw.wait_timeout);
    if (!wait.ok()) return Status::Error("--wait-timeout: " + wait.status().message());
    config.wait_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*wait);
  }
  if (Status s = FinishRecords(raw, config); !s.ok()) return s;
  if (auto flags = ProcessOnlyFlags(config);
      !flags.empty() && (config.mode == Mode::kSerial || config.mode == Mode::kThreads)) {
    return Status::Error(flags.front() + " is for worker processes: use it with --mode " +
                         "processes or auto, not " + raw.mode);
  }
  // Without --listen only the local workers can join: the wait would never end. (The
  // count of cores is read only when it matters: a warm server parses every job it runs.)
  if (config.listen.empty() && config.min_workers > 0) {
    if (uint32_t local = config.jobs_given ? config.jobs : DefaultJobs();
        config.min_workers > local) {
      return Status::Error("--min-workers " + std::to_string(config.min_workers) +
                           " can never be reached: only " + std::to_string(local) +
                           " local workers start (-j) and without --listen no other can join");
    }
  }
  if ((config.resume || config.keep_state) && config.state_dir.empty()) {
    return Status::Error(std::string(config.resume ? "--resume" : "--keep-state") +
                         " needs --state DIR");
  }
  auto hb = ParseDuration(raw.heartbeat);
  if (!hb.ok()) return Status::Error("--heartbeat: " + hb.status().message());
  config.heartbeat = std::chrono::duration_cast<std::chrono::milliseconds>(*hb);
  if (config.heartbeat.count() < 1) return Status::Error("--heartbeat must be at least 1ms");
  if (spdlog::level::from_str(raw.log_level) == spdlog::level::off && raw.log_level != "off") {
    return Status::Error("--log-level must be trace, debug, info, warn, error or off");
  }
  return Status::Ok();
}

// Log lines go to stderr (stdout may be the job's output), and to --log-file if given.
// NO_COLOR (https://no-color.org) turns colours off.
Status SetupLogging(const RawFlags& raw, bool quiet) {
  auto level = spdlog::level::from_str(raw.log_level);
  if (raw.verbose == 1) level = std::min(level, spdlog::level::info);
  if (raw.verbose >= 2) level = spdlog::level::debug;
  if (quiet) level = std::max(level, spdlog::level::err);
  const char* no_color = std::getenv("NO_COLOR");
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(
      no_color && *no_color ? spdlog::color_mode::never : spdlog::color_mode::automatic);
  std::vector<spdlog::sink_ptr> sinks = {console};
  if (!raw.log_file.empty()) {
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(raw.log_file));
    } catch (const spdlog::spdlog_ex& e) {
      return Status::Error("--log-file: cannot write '" + raw.log_file + "': " + e.what());
    }
  }
  // fanout's own logger (common/log.h), which everything in fanout logs through.
  spdlog::logger& log = Log();
  log.sinks() = sinks;
  log.set_level(level);
  log.set_pattern("%^fanout: %l: %v%$");
  if (sinks.size() > 1) sinks[1]->set_pattern("%Y-%m-%d %H:%M:%S.%e fanout: %l: %v");
  return Status::Ok();
}

// Loads --plugin libraries into this process's registry (serial/threads run them here)
// and passes them on to local workers, as absolute paths (engine/plugins.h).
Status LoadPlugins(JobConfig& config) {
  auto args = LoadJobPlugins(config.plugins);
  if (!args.ok()) return args.status();
  config.worker_args.insert(config.worker_args.end(), args->begin(), args->end());
  return Status::Ok();
}

void AddRunOptions(CLI::App& run, JobConfig& config, RawFlags& raw) {
  run.add_option("--mode", raw.mode,
                 "auto | serial | threads | processes (auto: calibrate, then pick; -v says why)")
      ->capture_default_str();
  run.add_option("-j,--jobs", config.jobs,
                 "Workers or threads (default: number of cores; 0 with --listen: remote only)")
      ->check(CLI::Range(0u, 4096u));
  auto* chunks = run.add_option("--chunks", config.chunking.chunks,
                                "Split into N chunks (numpy.array_split; default 4 per worker)")
                     ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  run.add_option("--chunk-size", config.chunking.chunk_size, "Records per chunk")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 60))
      ->excludes(chunks);
  run.add_option("--block", raw.block,
                 "Cut chunks of about SIZE bytes (K/M/G) at record boundaries")
      ->type_name("SIZE");
  run.add_flag("--null", raw.null, "Records end with NUL (\\0) instead of newline");
  run.add_option("--record-size", raw.record_size, "Records are fixed-size binary, N bytes each")
      ->type_name("N");
  run.add_flag("--header", config.header,
               "First line is a header: sent with every chunk; each output's first line "
               "written once");
  run.add_flag("--unordered", config.unordered,
               "Write each chunk's output as soon as it is done (not in input order)");
  run.add_option("--window", config.scheduler.window,
                 "Max chunks in flight or waiting ahead of the oldest unfinished one "
                 "(default: 4 per worker slot, at least 8)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  run.add_option("--joblog", config.joblog,
                 "Write one TSV line per finished chunk attempt to FILE (appended with --resume)")
      ->type_name("FILE");
  run.add_option("--state", config.state_dir,
                 "Keep finished chunks and a journal in DIR so the job can --resume (DIR: new, "
                 "empty, or made by fanout; locked while the job runs)")
      ->type_name("DIR");
  run.add_flag("--resume", config.resume, "Run only the chunks --state DIR does not hold yet");
  run.add_flag("--keep-state", config.keep_state, "Keep the --state DIR after success");
  run.add_option("--range", raw.range, "Records are the integers A..B-1 (no input is read)");
  run.add_option("-i,--input", config.input, "Input file (default: stdin)");
  run.add_option("-o,--output", config.output, "Output file, written atomically (default: stdout)");
  run.add_option("--retries", config.scheduler.retries,
                 "Extra attempts of a chunk whose task failed (exit status, error, timeout)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 1000u));
  run.add_option("--crash-limit", config.scheduler.crash_limit,
                 "Attempts of a chunk that may be lost with their worker (killed, hung) before "
                 "the chunk fails; these do not use --retries (0 = no limit)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 1000000u));
  run.add_option("--ok-exit", raw.ok_exit,
                 "Exit statuses of an exec command that count as success, e.g. 0,1 for grep "
                 "(default 0); such an attempt's output is used")
      ->type_name("LIST");
  run.add_option("--timeout", raw.timeout,
                 "Per-attempt limit: 30s, 500ms (every attempt), or 300% of the median chunk "
                 "time (doubled for each retry: attempt k gets 300% x 2^(k-1))");
  run.add_flag("--keep-going", config.scheduler.keep_going,
               "Finish despite failed chunks (exit 3, failures listed)");
  run.add_flag("--speculate", config.scheduler.speculate,
               "Re-issue chunks running > 2x the median to idle workers");
  run.add_option("--heartbeat", raw.heartbeat, "Heartbeat interval")->capture_default_str();
  run.add_option("--liveness", config.liveness, "Missed heartbeats before a worker is dead")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000u));
  run.add_option("--slots", config.local_slots,
                 "Attempts each local worker runs at once (default 1; sleep and exec wait on "
                 "the worker's event loop, so N may far exceed the cores)")
      ->check(CLI::Range(1u, 65536u));
  run.add_option("--max-respawns", config.max_respawns,
                 "Most local worker restarts (default: no cap; restarts stop once workers keep "
                 "dying with no chunk finished in between)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  run.add_option("--worker-bin", config.worker_bin,
                 "fanout-worker to start (default: $FANOUT_WORKER, or beside fanout)");
  run.add_option("--plugin", config.plugins,
                 "Load tasks from this plugin library, here and in local workers (repeatable)");
  run.add_option("--listen", config.listen,
                 "Bind here (tcp://HOST:PORT, ipc://PATH) so other workers can join");
  run.add_option("--min-workers", config.min_workers,
                 "Wait until this many workers have joined before dispatching")
      ->check(CLI::Range(0u, 100000u));
  run.add_option("--wait-timeout", raw.wait_timeout,
                 "Fail if workers are missing this long (--min-workers, or none at all); "
                 "once every worker is lost and none can be started: default 5m");
  run.add_option("--curve-secret", raw.curve_secret,
                 "CURVE: this coordinator's secret certificate (from 'fanout keygen')");
  run.add_option("--authorized-keys", raw.authorized_keys,
                 "CURVE: directory of the public certificates of workers to admit");
  run.add_flag("--insecure", raw.insecure,
               "Allow --listen on tcp:// (loopback too) without CURVE: trusted networks only");
  run.add_option("--max-message", raw.max_message,
                 "Largest frame a worker may send; a chunk's output over it fails the attempt "
                 "(exec is stopped as soon as it passes it, in every mode)")
      ->capture_default_str();
  run.add_option("--max-spool", raw.max_spool,
                 "Most bytes of stdin or a FIFO to copy to $TMPDIR before the job (default: "
                 "stop while min(1G, 10%) of that filesystem is still free)")
      ->type_name("SIZE");
  run.add_option("--local-input", raw.local_input,
                 "ref: local workers read chunks from the input file by offset; copy: send "
                 "chunk bytes over ZeroMQ as to remote workers")
      ->capture_default_str();
  run.add_flag("-q,--quiet", config.quiet, "Errors only: no summary, report or progress");
  run.add_flag("--progress,--bar", raw.progress,
               "Live progress line on stderr (default: when stderr is a terminal)");
  run.add_flag("--report", raw.report,
               "Per-worker report at the end (default: when stderr is a terminal)");
  run.add_option("--stats-json", config.stats_json, "Write job statistics as JSON to FILE");
  run.add_option("--trace", config.trace,
                 "Write a Chrome trace (open in Perfetto or chrome://tracing) to FILE");
  run.add_flag("--dry-run", config.dry_run, "Print the chunk plan and exit; run nothing");
  run.add_option("--dashboard", raw.dashboard,
                 "Serve a read-only web dashboard and Prometheus /metrics on ADDR while the job "
                 "runs (127.0.0.1:8080, :0 = a free port; the URL goes to stderr; DASHBOARD.md)")
      ->type_name("ADDR");
  run.add_option("--dashboard-token", raw.dashboard_token,
                 "The dashboard's access token, read from FILE (default: none on loopback, a "
                 "generated one, printed, on any other address)")
      ->type_name("FILE");
  run.add_option("--dashboard-linger", raw.dashboard_linger,
                 "Keep the dashboard up SECONDS after the job ended (Ctrl-C ends it sooner)")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.0, 86400.0));
  run.add_option("--server", raw.client.server,
                 "Run the job on a `fanout server` at ADDR (README: Running a cluster)")
      ->group("Server");
  run.add_flag("--detach", raw.detach,
               "With --server: print the job id and return (fanout wait ID gets the output)")
      ->group("Server");
  run.add_option("--priority", config.priority,
                 "With --server: jobs of higher priority take free worker slots first and "
                 "start first when --max-jobs run (-1000 to 1000; default 0)")
      ->type_name("N")
      ->check(CLI::Range(-kMaxPriority, kMaxPriority))
      ->group("Server");
  run.add_option("--server-key", raw.client.server_key,
                 "With --server over tcp: the server's public certificate (CURVE)")
      ->type_name("FILE")
      ->group("Server");
  run.add_option("--client-secret", raw.client.client_secret,
                 "With --server over tcp: this client's secret certificate (CURVE)")
      ->type_name("FILE")
      ->group("Server");
  run.add_option("--log-file", raw.log_file, "Also write log lines to FILE");
  run.add_flag("-v,--verbose", raw.verbose, "More logging (-v info, -vv debug)");
  run.add_option("--log-level", raw.log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
}

// Commands die with the thread that started them (a coordinator killed with SIGKILL in
// threads mode leaves none running), and what one leaves in its process group goes when it
// exits (processes mode's workers do the same). What those commands start themselves
// (`sh -c 'sleep 60; cat'`) is out of the death signal's reach: a guard process kills
// their groups once this process is gone.
void GuardCommands(int argc, char** argv) {
  SetCommandPolicy({.parent_death_signal = SIGKILL, .kill_group_on_exit = true});
  if (Status s = StartGroupGuard(argc, argv); !s.ok()) Log().warn("{}", s.message());
}

// TASK and ARGS (what follows the flags) and the flags CLI11 only counts.
Status TakeTask(CLI::App& run, JobConfig& config) {
  std::vector<std::string> rest = run.remaining();
  if (!rest.empty() && rest.front() == "--") rest.erase(rest.begin());
  if (rest.empty()) return Status::Error("missing TASK");
  config.task = rest.front();
  rest.erase(rest.begin());
  if (!rest.empty() && rest.front() == "--") rest.erase(rest.begin());
  config.args = rest;
  config.jobs_given = run.count("-j") > 0;
  config.window_given = run.count("--window") > 0;
  return Status::Ok();
}

// `fanout run`'s own arguments (after "run") minus the flags that only tell the client how
// to reach the server: what the server parses (ParseServerJob).
std::vector<std::string> ServerJobArgs(int argc, char** argv) {
  static const std::set<std::string> kValued = {"--server", "--server-key", "--client-secret", "-i",
                                                "--input",  "-o",           "--output"};
  std::vector<std::string> args;
  bool flags = true;  // until TASK: its arguments are passed on untouched
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (flags && kValued.count(a)) {
      ++i;
      continue;
    }
    auto eq = a.find('=');
    if (flags && ((eq != std::string::npos && kValued.count(a.substr(0, eq))) || a == "--detach")) {
      continue;
    }
    if (flags && (a == "--" || a.empty() || a[0] != '-')) flags = false;
    args.push_back(a);
  }
  return args;
}

// How a client command reaches the server.
void AddClientOptions(CLI::App& command, ServerClient& client) {
  command.add_option("--server", client.server, "The server's address (default: $FANOUT_SERVER)");
  command
      .add_option("--server-key", client.server_key,
                  "Over tcp: the server's public certificate (CURVE)")
      ->type_name("FILE");
  command
      .add_option("--client-secret", client.client_secret,
                  "Over tcp: this client's secret certificate (CURVE)")
      ->type_name("FILE");
}

struct ServerFlags {
  ServerOptions options;
  std::string keep_finished;
  std::string curve_secret;
  std::string client_keys;
  std::string authorized_keys;
  bool insecure = false;
  std::string log_level = "info";
  int verbose = 0;
};

void AddServerOptions(CLI::App* server, ServerFlags& flags) {
  ServerOptions& o = flags.options;
  o.fleet.jobs = DefaultJobs();
  server
      ->add_option("--listen", o.listen,
                   "Clients connect here: ipc://PATH (this user only), or tcp://HOST:PORT "
                   "with --curve-secret and --client-keys")
      ->required();
  server->add_option("--workers-listen", o.fleet.listen,
                     "Workers started elsewhere join here (fanout-worker --connect ADDR)");
  server
      ->add_option("-j,--jobs", o.fleet.jobs,
                   "Local workers (default: number of cores; 0: only workers that join)")
      ->check(CLI::Range(0u, 4096u));
  server->add_option("--slots", o.fleet.local_slots, "Chunks each local worker runs at once")
      ->check(CLI::Range(1u, 1024u));
  server
      ->add_option("--max-jobs", o.max_running,
                   "Jobs that run at once, sharing the workers (default 32); more wait")
      ->check(CLI::Range(1u, 4096u));
  server->add_option("--state", o.state_dir,
                     "Journal jobs in DIR: a server restarted on DIR continues unfinished jobs");
  server
      ->add_option("--keep-finished", flags.keep_finished,
                   "Delete a finished job whose output is not fetched within DURATION of its "
                   "end (default: keep it until fetched)")
      ->type_name("DURATION");
  server
      ->add_option("--curve-secret", flags.curve_secret,
                   "The server's secret certificate: CURVE on its tcp endpoints")
      ->type_name("FILE");
  server
      ->add_option("--client-keys", flags.client_keys,
                   "DIR of the public certificates of clients that may submit")
      ->type_name("DIR");
  server
      ->add_option("--authorized-keys", flags.authorized_keys,
                   "DIR of the public certificates of workers that may join")
      ->type_name("DIR");
  server->add_flag("--insecure", flags.insecure, "Allow tcp endpoints without CURVE");
  server->add_option("--worker-bin", o.fleet.worker_bin, "fanout-worker to start");
  server->add_option("--log-level", flags.log_level, "trace|debug|info|warn|error|off");
  server->add_flag("-v,--verbose", flags.verbose, "More logging (-v debug)");
  server->footer(R"(
Examples (README: Running a cluster):
  fanout server --listen ipc:///tmp/fanout.sock -j 4 --state ~/.fanout-server
  FANOUT_SERVER=ipc:///tmp/fanout.sock fanout run --server "$FANOUT_SERVER" -i in.txt exec -- ./score.sh
  fanout server --listen tcp://0.0.0.0:5560 --workers-listen tcp://0.0.0.0:5561 \
      --curve-secret server_secret --client-keys clients --authorized-keys workers
)");
}

int StartServer(ServerFlags& flags, int argc, char** argv) {
  ServerOptions& o = flags.options;
  JobConfig& fleet = o.fleet;
  auto usage = [](const std::string& message) { return UsageError(message, "server"); };
  RawFlags raw;
  raw.log_level = flags.verbose ? "debug" : flags.log_level;
  if (Status s = SetupLogging(raw, false); !s.ok()) return usage(s.message());
  if (fleet.jobs == 0 && fleet.listen.empty()) {
    return usage("-j 0 starts no local workers: give --workers-listen ADDR for others to join");
  }
  if (!flags.keep_finished.empty()) {
    auto keep = ParseDuration(flags.keep_finished);
    if (!keep.ok()) return usage("--keep-finished: " + keep.status().message());
    o.keep_finished = *keep;
  }
  fleet.adopt_orphans = true;
  // --curve-secret also serves the clients' --listen: it concerns workers only when some
  // may join (--workers-listen) or keys for them are given.
  bool workers_join = !fleet.listen.empty() || !flags.authorized_keys.empty();
  if (Status s = ApplyListenSecurity({workers_join ? flags.curve_secret : "", flags.authorized_keys,
                                      flags.insecure, "--workers-listen"},
                                     fleet);
      !s.ok()) {
    return usage(s.message());
  }
  if (Status s = CheckPeerEndpoint("--listen", o.listen); !s.ok()) return usage(s.message());
  if (EndpointNeedsCurve(o.listen) && !flags.insecure) {
    if (flags.curve_secret.empty() || flags.client_keys.empty()) {
      return usage("--listen " + o.listen +
                   ": any local user can reach a tcp port and submit commands; give "
                   "--curve-secret and --client-keys (or use ipc://)");
    }
  }
  if (!flags.client_keys.empty()) {
    if (flags.curve_secret.empty()) return usage("--client-keys needs --curve-secret");
    auto pair = ReadCurveCertificate(flags.curve_secret, true);
    if (!pair.ok()) return usage("--curve-secret: " + pair.status().message());
    auto keys = ReadAuthorizedKeys(flags.client_keys);
    if (!keys.ok()) return usage("--client-keys: " + keys.status().message());
    o.client_curve = *pair;
    o.client_keys = *keys;
  }
  GuardCommands(argc, argv);
  Interrupt::Install();
  return RunServer(o);
}

int Keygen(const std::string& name) {
  auto keys = GenerateCurveKeyPair();
  Status s = keys.ok() ? WriteCurveCertificates(name, *keys) : keys.status();
  if (!s.ok()) {
    std::fprintf(stderr, "fanout: keygen: %s\n", s.message().c_str());
    return ToInt(ExitCode::kUsage);
  }
  std::printf("public key %s\nwrote %s (share it) and %s_secret (keep it private)\n",
              keys->public_key.c_str(), name.c_str(), name.c_str());
  return ToInt(ExitCode::kOk);
}

// A job for a server may not use the flags that touch the server's machine or its fleet:
// they are the server's to decide. `run` has parsed the job's arguments.
Status RefuseServerOnlyFlags(const CLI::App& run, const RawFlags& raw) {
  static const std::set<std::string> kServerOnly = {"-j",
                                                    "--joblog",
                                                    "--state",
                                                    "--resume",
                                                    "--keep-state",
                                                    "--heartbeat",
                                                    "--liveness",
                                                    "--slots",
                                                    "--max-respawns",
                                                    "--worker-bin",
                                                    "--plugin",
                                                    "--listen",
                                                    "--min-workers",
                                                    "--wait-timeout",
                                                    "--curve-secret",
                                                    "--authorized-keys",
                                                    "--insecure",
                                                    "--max-message",
                                                    "--max-spool",
                                                    "--local-input",
                                                    "--stats-json",
                                                    "--trace",
                                                    "--dry-run",
                                                    "--dashboard",
                                                    "--dashboard-token",
                                                    "--dashboard-linger",
                                                    "--log-file"};
  for (const CLI::Option* option : run.get_options()) {
    if (option->count() == 0) continue;
    for (const std::string& name : option->get_lnames()) {
      if (!kServerOnly.count("--" + name)) continue;
      return Status::Error("--" + name +
                           " is not for a job on a server (the server decides it, or it names "
                           "a file on its machine)");
    }
    for (const std::string& name : option->get_snames()) {
      if (kServerOnly.count("-" + name)) {
        return Status::Error("-" + name +
                             " is not for a job on a server (the server's -j "
                             "decides its workers)");
      }
    }
  }
  if (raw.mode != "auto" && raw.mode != "processes") {
    return Status::Error("--mode " + raw.mode +
                         ": a server runs every job on its workers (auto or processes)");
  }
  return Status::Ok();
}

// The parser of a server's jobs, built once per thread: CLI11 builds every option (with its
// help text and checks) afresh for each App, a fifth of a millisecond here, and a warm
// server parses each job it is sent. CLI11 writes only the options given, so the bound
// flags start from their defaults again before each parse; App::clear forgets the last
// parse's counts and remaining arguments.
struct ServerJobParser {
  CLI::App run{"a server job", "run"};
  JobConfig config;
  RawFlags raw;

  ServerJobParser() {
    run.prefix_command();
    AddRunOptions(run, config, raw);
  }
  ServerJobParser(const ServerJobParser&) = delete;
  ServerJobParser& operator=(const ServerJobParser&) = delete;

  Status Parse(const std::vector<std::string>& args) {
    config = JobConfig{};
    raw = RawFlags{};
    run.clear();  // parse clears only after a parse that got far enough to count
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11's order
    try {
      run.parse(reversed);
    } catch (const CLI::ParseError& e) {
      return Status::Error(e.what());
    }
    if (!raw.client.server.empty() || raw.detach || !raw.client.server_key.empty() ||
        !raw.client.client_secret.empty()) {
      return Status::Error("a job on a server cannot name another server");
    }
    if (Status s = RefuseServerOnlyFlags(run, raw); !s.ok()) return s;
    if (Status s = TakeTask(run, config); !s.ok()) return s;
    return Finish(raw, config);
  }
};

}  // namespace

Status ParseServerJob(const std::vector<std::string>& args, JobConfig& config) {
  thread_local ServerJobParser parser;
  Status s = parser.Parse(args);
  if (s.ok()) config = parser.config;
  return s;
}

namespace {

// The subcommand `argv` names (its first word that is not a flag: fanout's own flags take no
// value), or "" (`fanout`, `fanout --help`, `fanout --version`).
std::string NamedCommand(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] != '-') return argv[i];
  }
  return "";
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{"fanout: run a task over chunks of input on parallel workers", "fanout"};
  app.set_version_flag("--version", std::string("fanout ") + FANOUT_VERSION);
  app.require_subcommand(1);
  // Only the subcommand named gets its options: the others keep their names and summaries
  // (for `fanout --help` and CLI11's own errors) but not their options, help texts and
  // checks, whose making took 0.7 ms of every start on the EPYC guest (`fanout --version`
  // 5.9 -> 5.1 ms; `run`, which every job and server client is, has most of them).
  const std::string named = NamedCommand(argc, argv);
  std::string help_command;  // the subcommand whose help a usage error points at
  auto add = [&](const std::string& name, const std::string& summary) {
    if (named == name) help_command = name;
    return std::pair{app.add_subcommand(name, summary), named == name};
  };
  JobConfig config;
  RawFlags raw;
  auto [run, full_run] = add("run", "Run TASK over the input's chunks");
  if (full_run) {
    run->footer(kRunExamples);
    run->prefix_command();  // everything from TASK on belongs to the task
    AddRunOptions(*run, config, raw);
  }
  auto [tasks, full_tasks] = add("tasks", "List the available tasks");
  if (full_tasks) {
    tasks->footer("\nExample:\n  fanout tasks        # name, arguments and what each task does\n");
  }
  std::string key_name;
  auto [keygen, full_keygen] =
      add("keygen", "Write a CURVE key pair: NAME (public, to share) and NAME_secret (mode 0600)");
  if (full_keygen) {
    keygen->add_option("NAME", key_name, "Path of the public certificate")->required();
    keygen->footer(R"(
Examples (README: Running on several machines):
  fanout keygen coordinator     # coordinator + coordinator_secret
  fanout keygen workers         # workers + workers_secret; copy 'workers' to --authorized-keys
  fanout run --listen tcp://0.0.0.0:5555 --curve-secret coordinator_secret \
      --authorized-keys authorized -j 0 --chunks 64 -i in.txt exec -- ./model.sh
  fanout-worker --connect tcp://HOST:5555 --curve-server-key coordinator \
      --curve-secret workers_secret
)");
  }
  ServerFlags server_flags;
  auto [server, full_server] =
      add("server", "Run a long-lived server whose workers stay warm across jobs");
  if (full_server) AddServerOptions(server, server_flags);
  ServerClient client;
  if (const char* env = std::getenv("FANOUT_SERVER")) client.server = env;
  std::string job_id, job_output = "-";
  std::map<std::string, CLI::App*> client_commands;
  for (auto [name, help] :
       {std::pair{"jobs", "List your jobs on a server"},
        {"status", "Show one job of yours on a server"},
        {"cancel", "Cancel a job on a server (its output is discarded)"},
        {"wait", "Wait for a job on a server and write its output"},
        {"output", "Write a finished job's output (the server then drops it)"}}) {
    auto [c, full] = add(name, help);
    client_commands[name] = c;
    if (!full) continue;
    AddClientOptions(*c, client);
    if (std::string(name) != "jobs") c->add_option("ID", job_id, "The job id")->required();
    if (std::string(name) == "wait" || std::string(name) == "output") {
      c->add_option("-o,--output", job_output, "Write the output here (default: stdout)");
    }
  }
  BenchOptions bench_options;
  auto [bench, full_bench] =
      add("bench", "Time the classic experiments in every mode (one Markdown table, < 60 s)");
  if (full_bench) {
    bench->add_flag("--quick", bench_options.quick, "Smaller inputs: a smoke run of a few seconds");
    bench->add_option("--only", bench_options.only, "Only experiments whose name contains TEXT");
    bench->footer(R"(
Examples:
  fanout bench                  # every experiment in serial, threads, processes and auto
  fanout bench --quick          # a smoke run of a few seconds
  fanout bench --only sleep     # just the 10 x sleep 1 s experiment
)");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return UsageError(e.what(), help_command);
  }
  if (run->parsed() && !raw.dashboard.empty() && raw.client.server.empty()) {
    if (int code = ReexecForDashboard(argv); code >= 0) return code;
  }
  if (bench->parsed()) return RunBench(bench_options);
  for (auto& [name, command] : client_commands) {
    if (command->parsed()) return ServerCommand(client, name, job_id, job_output);
  }
  RegisterBuiltinTasks(TaskRegistry::Global());
  // A job for a server loads nothing here: the server refuses --plugin (its workers' tasks
  // are the server's to choose).
  if (Status s = raw.client.server.empty() ? LoadPlugins(config) : Status::Ok(); !s.ok()) {
    return UsageError(s.message());
  }
  if (tasks->parsed()) {
    // One column as wide as the longest usage (plugins' usages may be long).
    std::vector<const TaskDef*> all = TaskRegistry::Global().All();
    int width = 0;
    for (const TaskDef* def : all) width = std::max(width, static_cast<int>(def->usage.size()));
    for (const TaskDef* def : all) {
      std::printf("%-*s  %s\n", width, def->usage.c_str(), def->summary.c_str());
    }
    return ToInt(ExitCode::kOk);
  }

  if (keygen->parsed()) return Keygen(key_name);
  if (server->parsed()) return StartServer(server_flags, argc, argv);

  if (Status s = TakeTask(*run, config); !s.ok()) return UsageError(s.message());
  config.adopt_orphans = true;
  if (raw.dashboard.empty() && (!raw.dashboard_token.empty() || raw.dashboard_linger > 0)) {
    return UsageError("--dashboard-token and --dashboard-linger need --dashboard ADDR");
  }
  if (Status s = Finish(raw, config); !s.ok()) return UsageError(s.message());
  SetOkExitCodes(std::vector<int>(config.ok_exit.begin(), config.ok_exit.end()));
  // Before --log-file (the first file written) is opened.
  if (Status s = CheckDistinctPaths(config, raw.log_file); !s.ok()) {
    return UsageError(s.message());
  }
  if (Status s = SetupLogging(raw, config.quiet); !s.ok()) return UsageError(s.message());
  if (!raw.client.server.empty()) {
    // The server would refuse these too: no need to reach it to say so.
    if (Status s = RefuseServerOnlyFlags(*run, raw); !s.ok()) return UsageError(s.message());
    return SubmitToServer(raw.client, ServerJobArgs(argc, argv), config, raw.detach);
  }
  if (raw.detach) return UsageError("--detach needs --server ADDR");
  if (run->count("--priority") > 0) return UsageError("--priority needs --server ADDR");
  // Only `exec` (and a plugin's task, which may do anything) starts commands here: the
  // built-ins that never do spare every run the guard's fork (0.3-1 ms of a short job).
  static const std::set<std::string> kNoCommands = {"identity", "sleep", "product"};
  if (!kNoCommands.contains(config.task)) GuardCommands(argc, argv);
  bool terminal = isatty(STDERR_FILENO) == 1;
  Interrupt::Install();
  RunReporter reporter({.progress = (raw.progress || terminal) && !config.quiet,
                        .summary = !config.quiet,
                        .report = (raw.report || terminal) && !config.quiet});
  if (raw.dashboard.empty()) return ToInt(RunJob(config, &reporter));
  return RunJobWithDashboard({raw.dashboard, raw.dashboard_token, raw.dashboard_linger, raw.mode},
                             config, reporter);
}

}  // namespace fanout
