#include "worker/worker_cli.h"

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/allocator_policy.h"
#include "common/command.h"
#include "common/curve.h"
#include "common/exit_code.h"
#include "common/log.h"
#include "common/nss_policy.h"
#include "common/plugin_loader.h"
#include "common/task.h"
#include "common/transport.h"
#include "common/units.h"
#include "tasks/builtin_tasks.h"
#include "worker/worker_loop.h"

namespace fanout {
namespace {

// Reads --curve-server-key/--curve-secret (both or neither) and --max-message. A tcp://
// endpoint needs the coordinator's key unless `insecure`: anyone on the host can bind a
// loopback port, and a worker runs whatever its coordinator sends.
Status LoadSecurity(const std::string& endpoint, const std::string& server_file,
                    const std::string& secret_file, const std::string& max_message, bool insecure,
                    SocketSecurity& security) {
  auto limit = ParseMaxMessage(max_message);
  if (!limit.ok()) return limit.status();
  security.max_message = *limit;
  if (server_file.empty() != secret_file.empty()) {
    return Status::Error("--curve-server-key and --curve-secret go together");
  }
  if (!server_file.empty() && insecure) {
    return Status::Error("--insecure contradicts --curve-server-key");
  }
  if (server_file.empty()) {
    if (endpoint.rfind("tcp://", 0) == 0 && !insecure) {
      return Status::Error("--connect " + endpoint +
                           " would run tasks for whoever binds that port, on this host or "
                           "the network; use --curve-server-key and --curve-secret (see "
                           "'fanout keygen'), or pass --insecure on a trusted network");
    }
    return Status::Ok();
  }
  auto server = ReadCurveCertificate(server_file, /*need_secret=*/false);
  if (!server.ok()) return Status::Error("--curve-server-key: " + server.status().message());
  auto own = ReadCurveCertificate(secret_file, /*need_secret=*/true);
  if (!own.ok()) return Status::Error("--curve-secret: " + own.status().message());
  security.curve_client = CurveClientKeys{server->public_key, *own};
  return Status::Ok();
}

// Reads the local token from `fd` (a pipe from the coordinator that started us) and
// closes it, so that no task's child inherits it.
Result<std::string> ReadLocalToken(int fd) {
  std::string token;
  char buf[128];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string why = std::strerror(errno);
      close(fd);
      return Status::Error("--local-token-fd " + std::to_string(fd) + ": " + why);
    }
    if (n == 0) break;
    token.append(buf, static_cast<size_t>(n));
    if (token.size() > 1024) break;
  }
  close(fd);
  if (token.empty() || token.size() > 1024) {
    return Status::Error("--local-token-fd " + std::to_string(fd) + ": no token");
  }
  return token;
}

// Raises the soft open-file limit to the hard one: each concurrent exec attempt holds
// four fds (three pipes and a pidfd), so --slots 1000 needs about 4000.
void RaiseFdLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == limit.rlim_max) return;
  rlim_t old = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    Log().debug("cannot raise the open-file limit above {}", old);
  }
}

}  // namespace

int WorkerMain(int argc, char** argv, const std::string& program) {
  signal(SIGPIPE, SIG_IGN);
  KeepFreedMemory();
  LookUpProtocolsInFiles();
  // Blocked before any thread exists, so only the loop's signalfd sees these.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A command dies with the thread that started it, and what it leaves in its process
  // group goes when it exits: a worker killed with SIGKILL leaves no command running.
  SetCommandPolicy({.parent_death_signal = SIGKILL, .kill_group_on_exit = true});

  CLI::App app{program + ": runs chunks for a fanout coordinator", program};
  app.set_version_flag("--version", program + " " + FANOUT_VERSION);
  app.footer(R"(
Examples:
  fanout-worker --connect tcp://head:5555 --curve-server-key coordinator \
      --curve-secret workers_secret --slots 8     # serve jobs until stopped (CURVE keys)
  fanout-worker --connect tcp://head:5555 --insecure     # trusted network, no keys
  fanout-worker --connect ipc:///tmp/fanout.sock --once --plugin ./libmytasks.so

A tcp:// endpoint needs --curve-server-key (the coordinator's public certificate) or
--insecure: without the key, whoever binds that port gets to run commands here.

Exit codes: 0 after a job with --once, 1 refused for its protocol version,
            2 usage error, 130/143/129 on SIGINT/SIGTERM/SIGHUP (each running
            command's process group is killed first). A worker started by a
            coordinator gets SIGTERM when that coordinator dies.

SIGTERM (Slurm's signal before a time limit, on preemption or scancel) drains a
worker: it takes no new chunks, hands back the ones it has not started, lets
the running ones finish for up to --drain-grace (then stops them and hands
them back too), says goodbye and exits 143. The coordinator runs handed-back
chunks elsewhere and charges no retry or failure for them. A second SIGTERM,
or SIGINT, stops it at once (still handing back what it held).
)");
  WorkerConfig config;
  std::string heartbeat = "500ms", log_level = "warn", max_message = "1G", drain_grace = "25s";
  std::string server_key_file, secret_file;
  bool insecure = false;
  int token_fd = -1;
  app.add_option("--connect", config.endpoint, "Coordinator endpoint (tcp://HOST:PORT, ipc://PATH)")
      ->required();
  app.add_option("--slots", config.slots,
                 "Chunks run at once (sleep/exec run on the event loop: may exceed the cores)")
      ->check(CLI::Range(1u, 65536u))
      ->capture_default_str();
  app.add_flag("--once", config.once, "Exit after one job instead of serving the next");
  app.add_option("--name", config.name, "Name in the coordinator's reports (default HOST-PID)");
  app.add_option("--heartbeat", heartbeat, "Heartbeat until the coordinator sets its own")
      ->capture_default_str();
  app.add_option("--drain-grace", drain_grace,
                 "On SIGTERM, let running chunks finish this long before stopping them and "
                 "handing them back (0: hand back at once)")
      ->capture_default_str();
  app.add_option("--curve-server-key", server_key_file,
                 "CURVE: the coordinator's public certificate");
  app.add_option("--curve-secret", secret_file,
                 "CURVE: this worker's secret certificate (from 'fanout keygen NAME')");
  app.add_flag("--insecure", insecure,
               "Connect to a tcp:// endpoint without CURVE (trusted networks only)");
  app.add_option("--local-token-fd", token_fd,
                 "Read the local token from this inherited fd (set by a coordinator)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-message", max_message,
                 "Largest frame the coordinator may send; also the largest task output "
                 "(lowered to the coordinator's own limit when it is smaller)")
      ->capture_default_str();
  std::vector<std::string> plugins;
  app.add_option("--plugin", plugins, "Load tasks from this shared library (repeatable)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", program.c_str(), e.what());
    return ToInt(ExitCode::kUsage);
  }
  auto hb = ParseDuration(heartbeat);
  if (!hb.ok() || *hb < std::chrono::milliseconds(1)) {
    std::fprintf(stderr, "%s: --heartbeat: %s\n", program.c_str(),
                 hb.ok() ? "must be at least 1ms" : hb.status().message().c_str());
    return ToInt(ExitCode::kUsage);
  }
  config.heartbeat = std::chrono::duration_cast<std::chrono::milliseconds>(*hb);
  auto grace = ParseDuration(drain_grace);
  if (!grace.ok()) {
    std::fprintf(stderr, "%s: --drain-grace: %s\n", program.c_str(),
                 grace.status().message().c_str());
    return ToInt(ExitCode::kUsage);
  }
  config.drain_grace = std::chrono::duration_cast<std::chrono::milliseconds>(*grace);
  if (Status s = LoadSecurity(config.endpoint, server_key_file, secret_file, max_message, insecure,
                              config.security);
      !s.ok()) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), s.message().c_str());
    return ToInt(ExitCode::kUsage);
  }
  auto level = spdlog::level::from_str(log_level);
  if (level == spdlog::level::off && log_level != "off") {
    std::fprintf(stderr, "%s: --log-level must be trace, debug, info, warn, error or off\n",
                 program.c_str());
    return ToInt(ExitCode::kUsage);
  }
  // A coordinator hands the workers it starts their token over a pipe: not on argv, where
  // `ps` shows it, nor in the environment, which /proc/PID/environ keeps.
  if (token_fd >= 0) {
    auto token = ReadLocalToken(token_fd);
    if (!token.ok()) {
      std::fprintf(stderr, "%s: %s\n", program.c_str(), token.status().message().c_str());
      return ToInt(ExitCode::kUsage);
    }
    config.local_token = *token;
  }
  if (config.name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    config.name = std::string(host) + "-" + std::to_string(getpid());
  }
  // fanout's own logger (common/log.h), which everything in fanout logs through; the
  // default logger is the program's (a host running as an SPMD worker keeps it).
  spdlog::logger& log = Log();
  log.sinks() = {std::make_shared<spdlog::sinks::stderr_color_sink_mt>()};
  log.set_level(level);
  log.set_pattern(program + " " + config.name + ": %^%l%$: %v");
  RaiseFdLimit();
  RegisterBuiltinTasks(TaskRegistry::Global());
  for (const std::string& plugin : plugins) {
    if (Status s = LoadPlugin(plugin, TaskRegistry::Global()); !s.ok()) {
      std::fprintf(stderr, "%s: %s\n", program.c_str(), s.message().c_str());
      return ToInt(ExitCode::kUsage);
    }
  }
  Result<int> status = RunWorker(config);
  if (!status.ok()) {
    std::fprintf(stderr, "%s: --connect: %s\n", program.c_str(), status.status().message().c_str());
    return ToInt(ExitCode::kUsage);
  }
  return *status;
}

}  // namespace fanout
