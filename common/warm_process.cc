// WarmProcess and WarmPool (warm_process.h). Started as Command's children are (spawn.h):
// own process group, default signal dispositions, registered with the group guard;
// close-on-exec pipes above fds 0..2. Unlike
// Command, stdin stays open between chunks and stdout is read through the framing parser.
#include "common/warm_process.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/async_attempt.h"
#include "common/group_guard.h"
#include "common/spawn.h"

namespace fanout {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kIoBlock = 64 * 1024;     // bytes per read()/write() call
constexpr int kReadsPerRound = 16;         // reads per stream before polling again
constexpr size_t kStderrTail = 64 * 1024;  // bytes of stderr kept for error messages
constexpr size_t kStderrLines = 5;         // stderr lines quoted in an error message
constexpr auto kExitGrace = std::chrono::milliseconds(200);  // stdout closed: wait for exit
constexpr auto kReapPoll = std::chrono::milliseconds(5);     // without a pidfd
constexpr auto kShutdownGrace = std::chrono::milliseconds(300);

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

bool SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

}  // namespace

struct WarmProcess::State {
  std::string cmd;
  pid_t pid = -1;  // -1 once reaped
  int pidfd = -1;
  int in = -1, out = -1, err = -1;  // our pipe ends (non-blocking)
  clockid_t cpu_clock{};
  bool has_cpu_clock = false;
  std::string header;     // request header bytes not yet written
  std::string_view data;  // chunk bytes not yet written
  bool exiting = false;   // stdout closed: waiting for the exit, up to grace_end
  SteadyClock::time_point grace_end{};
  SteadyClock::time_point next_reap{};
  std::optional<Status> failure;  // the chunk's outcome once the child is reaped
  double reaped_cpu = -1;

  ~State() {
    CloseFd(in);
    CloseFd(out);
    CloseFd(err);
    if (pid >= 0) {
      killpg(pid, SIGKILL);
      int status;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      GuardUnregister(pid);
    }
    CloseFd(pidfd);
  }
};

WarmProcess::WarmProcess(std::unique_ptr<State> state) : state_(std::move(state)) {}
WarmProcess::~WarmProcess() = default;

Result<std::unique_ptr<WarmProcess>> WarmProcess::Start(const std::vector<std::string>& argv,
                                                        const EnvVars& extra_env) {
  if (argv.empty() || argv[0].empty()) return Status::Error("exec --warm: missing command");
  auto state = std::make_unique<State>();
  state->cmd = argv[0];
  int child[3] = {-1, -1, -1};  // the child's stdin, stdout, stderr
  auto close_child = [&] {
    for (int& fd : child) CloseFd(fd);
  };
  int p[2];
  bool piped = true;
  for (int i = 0; i < 3 && piped; ++i) {
    if (pipe2(p, O_CLOEXEC) != 0) {
      piped = false;
      break;
    }
    int mine = AboveStdio(i == 0 ? p[1] : p[0]);
    child[i] = AboveStdio(i == 0 ? p[0] : p[1]);
    (i == 0 ? state->in : i == 1 ? state->out : state->err) = mine;
    piped = mine >= 0 && child[i] >= 0 && SetNonBlocking(mine);
  }
  if (!piped) {
    int err = errno;
    close_child();
    return Status::Error("exec --warm: cannot create pipes: " + ErrorText(err) +
                         ((err == EMFILE || err == ENFILE) ? std::string(kFdLimitNote) : ""));
  }
  EnvVars env = extra_env;
  env.emplace_back("FANOUT_WARM", std::to_string(kWarmProtocolVersion));
  // No parent-death signal: a warm process outlives the thread that started it (pools are
  // shared across threads, and calibration threads end), and ends on its stdin's EOF.
  pid_t pid = SpawnProcess(argv, BuildEnvironment(env), {child[0], child[1], child[2]},
                           /*death_signal=*/0);
  close_child();  // the child has its copies; EOF detection needs ours closed
  if (pid < 0) {
    int rc = static_cast<int>(-pid);
    return Status::Error("exec --warm: cannot start '" + argv[0] + "': " + ErrorText(rc) +
                         ((rc == EMFILE || rc == ENFILE) ? std::string(kFdLimitNote) : ""));
  }
  state->pid = pid;  // registered with the group guard by SpawnProcess
#ifdef SYS_pidfd_open
  state->pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));  // close-on-exec
#endif
  state->has_cpu_clock = clock_getcpuclockid(pid, &state->cpu_clock) == 0;
  return std::unique_ptr<WarmProcess>(new WarmProcess(std::move(state)));
}

double WarmProcess::CpuNow() const {
  if (state_->reaped_cpu >= 0) return state_->reaped_cpu;
  timespec ts{};
  if (!state_->has_cpu_clock || clock_gettime(state_->cpu_clock, &ts) != 0) return cpu_mark_;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void WarmProcess::BeginChunk(uint64_t chunk, uint32_t attempt, std::string_view data) {
  parser_.NextChunk();
  state_->header = WarmRequestHeader(chunk, attempt, data.size());
  state_->data = data;
  in_flight_ = true;
  chunk_done_ = false;
  status_ = Status::Ok();
}

void WarmProcess::AppendFds(std::vector<pollfd>& fds) const {
  if (chunk_done_ || state_->pid < 0) return;
  const State& s = *state_;
  if (killed_ || s.exiting) {
    if (s.pidfd >= 0) fds.push_back({s.pidfd, POLLIN, 0});
    return;
  }
  if (s.in >= 0 && (!s.header.empty() || !s.data.empty())) fds.push_back({s.in, POLLOUT, 0});
  if (s.out >= 0) fds.push_back({s.out, POLLIN, 0});
  if (s.err >= 0) fds.push_back({s.err, POLLIN, 0});
}

std::optional<WarmProcess::TimePoint> WarmProcess::deadline() const {
  const State& s = *state_;
  if (chunk_done_ || s.pid < 0 || !(killed_ || s.exiting)) return std::nullopt;
  TimePoint due = s.exiting && !killed_ ? s.grace_end : TimePoint::max();
  if (s.pidfd < 0) due = std::min(due, s.next_reap);
  return due == TimePoint::max() ? std::nullopt : std::optional(due);
}

void WarmProcess::Pump() {
  State& s = *state_;
  // Write the request: header, then the chunk's bytes, with SIGPIPE blocked once for the
  // round (PipeWrites), as Command feeds a command's stdin.
  if (s.in >= 0 && (!s.header.empty() || !s.data.empty())) {
    PipeWrites writes;
    while (s.in >= 0 && (!s.header.empty() || !s.data.empty())) {
      std::string_view pending = !s.header.empty() ? std::string_view(s.header) : s.data;
      ssize_t w = writes.Write(s.in, pending.data(), std::min(pending.size(), kIoBlock));
      if (w > 0) {
        if (!s.header.empty()) {
          s.header.erase(0, static_cast<size_t>(w));
        } else {
          s.data.remove_prefix(static_cast<size_t>(w));
        }
      } else if (w < 0 && errno == EAGAIN) {
        break;
      } else if (!(w < 0 && errno == EINTR)) {
        CloseFd(s.in);  // EPIPE: it stopped reading (it is probably dying: stdout tells)
      }
    }
  }
  char buf[kIoBlock];
  for (int i = 0; i < kReadsPerRound && s.out >= 0 && !parser_.broken(); ++i) {
    ssize_t n = read(s.out, buf, sizeof buf);
    if (n > 0) {
      parser_.Feed(std::string_view(buf, static_cast<size_t>(n)));
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      CloseFd(s.out);
    } else if (errno == EAGAIN) {
      break;
    }
  }
  for (int i = 0; i < kReadsPerRound && s.err >= 0; ++i) {
    ssize_t n = read(s.err, buf, sizeof buf);
    if (n > 0) {
      err_tail_.append(buf, static_cast<size_t>(n));
      if (err_tail_.size() > 2 * kStderrTail) err_tail_.erase(0, err_tail_.size() - kStderrTail);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      CloseFd(s.err);
    } else if (errno == EAGAIN) {
      break;
    }
  }
}

void WarmProcess::Finish(Status status) {
  chunk_done_ = true;
  in_flight_ = false;
  status_ = std::move(status);
  double now = CpuNow();
  chunk_cpu_ = std::max(0.0, now - cpu_mark_);
  cpu_mark_ = now;
}

void WarmProcess::TryReap() {
  State& s = *state_;
  if (s.pid < 0) return;
  int status = 0;
  rusage usage{};
  pid_t got;
  do {
    got = wait4(s.pid, &status, WNOHANG, &usage);
  } while (got < 0 && errno == EINTR);
  auto now = SteadyClock::now();
  if (got == 0) {
    if (s.exiting && !killed_ && now >= s.grace_end) {
      killpg(s.pid, SIGKILL);  // closed its stdout but lives on: a broken frame
      killed_ = true;
      if (!s.failure) {
        s.failure = Status::Error("exec --warm: '" + s.cmd +
                                  "' broke the framing: it closed its stdout mid-chunk");
      }
    }
    s.next_reap = now + kReapPoll;
    return;
  }
  GuardUnregister(s.pid);
  s.pid = -1;
  CloseFd(s.pidfd);
  s.reaped_cpu =
      got > 0 ? static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                    static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6
              : cpu_mark_;
  Status outcome;
  if (s.failure) {
    outcome = *s.failure;
  } else if (killed_) {
    outcome = Status::Error("cancelled");
  } else {
    outcome = Status::Error("exec --warm: '" + s.cmd + "' " +
                            (got > 0 ? DescribeWaitStatus(status) : "ended") +
                            (in_flight_ ? " during the chunk" : " before its first chunk"));
  }
  if (!outcome.ok() && outcome.message() != "cancelled") {
    if (std::string tail = LastLines(err_tail_, kStderrLines); !tail.empty()) {
      outcome = Status::Error(outcome.message() + ": " + tail);
    }
  }
  Finish(std::move(outcome));
}

void WarmProcess::OnOutputClosed() {
  State& s = *state_;
  s.exiting = true;
  s.grace_end = SteadyClock::now() + kExitGrace;
  if (parser_.partial() && !s.failure) {
    s.failure = Status::Error("exec --warm: '" + s.cmd + "' broke the framing: its stdout ended " +
                              "mid-frame");
  }
  CloseFd(s.in);
}

bool WarmProcess::Advance() {
  if (chunk_done_) return true;
  State& s = *state_;
  if (!killed_ && !s.exiting) {
    Pump();
    if (parser_.broken()) {
      s.failure =
          Status::Error("exec --warm: '" + s.cmd + "' broke the framing: " + parser_.error() +
                        " (see WARM_PROTOCOL.md)");
      Kill();
    } else if (parser_.done() && !in_flight_) {
      s.failure = Status::Error("exec --warm: '" + s.cmd +
                                "' broke the framing: it answered a chunk it was not sent");
      Kill();
    } else if (parser_.done()) {
      if (!s.header.empty() || !s.data.empty()) {
        s.failure =
            Status::Error("exec --warm: '" + s.cmd +
                          "' broke the framing: it answered before reading the whole chunk");
        Kill();
      } else if (parser_.ok()) {
        err_tail_.clear();  // stderr of a good chunk is not kept
        Finish(Status::Ok());
        return true;
      } else {
        std::string message = LastLines(parser_.body(), kStderrLines);
        if (message.empty()) message = "(no message)";
        Finish(Status::Error("exec --warm: '" + s.cmd + "' failed the chunk: " + message));
        err_tail_.clear();
        return true;
      }
    } else if (s.out < 0) {
      OnOutputClosed();
    }
  }
  if (killed_ || s.exiting) TryReap();
  return chunk_done_;
}

void WarmProcess::Kill() {
  State& s = *state_;
  if (killed_ || s.pid < 0) return;
  killed_ = true;
  killpg(s.pid, SIGKILL);
  CloseFd(s.in);
  CloseFd(s.out);
  CloseFd(s.err);
}

bool WarmProcess::reusable() const {
  const State& s = *state_;
  return !killed_ && !s.exiting && s.pid >= 0 && s.in >= 0 && s.out >= 0 && !in_flight_ &&
         !parser_.broken();
}

bool WarmProcess::Alive() {
  State& s = *state_;
  if (s.pid < 0) return false;
  int status;
  pid_t got = waitpid(s.pid, &status, WNOHANG);
  if (got == 0) return true;
  if (got > 0) {
    GuardUnregister(s.pid);
    s.pid = -1;
  }
  return false;
}

WarmPool& WarmPool::Global() {
  static WarmPool pool;
  return pool;
}

WarmPool::~WarmPool() {
  // Closing stdin asks each command to exit; whatever is left at the deadline is killed
  // (by each WarmProcess's destructor).
  std::lock_guard lock(mu_);
  std::vector<int> pidfds;
  for (auto& [key, process] : idle_) {
    CloseFd(process->state_->in);
    if (process->state_->pidfd >= 0) pidfds.push_back(process->state_->pidfd);
  }
  auto end = SteadyClock::now() + kShutdownGrace;
  for (int fd : pidfds) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(end - SteadyClock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    poll(&p, 1, static_cast<int>(left));
  }
  idle_.clear();
}

std::unique_ptr<WarmProcess> WarmPool::Take(const std::string& key) {
  std::unique_ptr<WarmProcess> dead;  // destroyed (reaped) outside the lock
  std::lock_guard lock(mu_);
  while (true) {
    auto it = idle_.find(key);
    if (it == idle_.end()) return nullptr;
    std::unique_ptr<WarmProcess> process = std::move(it->second);
    idle_.erase(it);
    if (process->Alive()) return process;
    dead = std::move(process);  // exited while idle: start afresh
  }
}

void WarmPool::Give(const std::string& key, std::unique_ptr<WarmProcess> process) {
  if (!process || !process->reusable()) return;
  std::lock_guard lock(mu_);
  idle_.emplace(key, std::move(process));
}

size_t WarmPool::idle() const {
  std::lock_guard lock(mu_);
  return idle_.size();
}

}  // namespace fanout
