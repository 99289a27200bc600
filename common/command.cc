// Command (command.h): a child started through SpawnProcess (spawn.h) into a new process
// group, non-blocking pipes fed and drained by Advance, and a reap once the pipes are
// closed. Every fd and the child itself
// are owned by RAII handles, so each path releases them.
#include "common/command.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <mutex>

#include "common/async_attempt.h"
#include "common/group_guard.h"
#include "common/spawn.h"
#include "common/unique_fd.h"

namespace fanout {
namespace {

constexpr int kMaxReapBackoffMs = 20;                    // reap polling interval without a pidfd
constexpr size_t kIoBlock = 64 * 1024;                   // bytes per read()/write() call
constexpr int kReadsPerRound = 16;                       // reads per stream before polling again
constexpr size_t kStderrTail = 64 * 1024;                // bytes of stderr kept for error messages
constexpr uint64_t kOutputReserve = uint64_t{64} << 20;  // stdout reserved at most (Start)
constexpr size_t kStderrLines = 5;                       // stderr lines quoted in an error message

std::atomic<int> g_death_signal{0};
std::atomic<bool> g_kill_group_on_exit{false};

// One end of each of the child's standard streams (stdin, stdout, stderr).
struct StdPipes {
  UniqueFd in, out, err;
};

bool MakePipe(UniqueFd& read_end, UniqueFd& write_end) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return false;
  read_end = UniqueFd(AboveStdio(p[0]));
  write_end = UniqueFd(AboveStdio(p[1]));
  return read_end.open() && write_end.open();
}

// Names the open-file limit when `err` says it was hit (many concurrent exec children).
std::string FdHint(int err) {
  if (err != EMFILE && err != ENFILE) return "";
  return std::string(kFdLimitNote);
}

// Creates the three pipes: `child` gets the ends to dup onto 0..2, `parent` the others
// (made non-blocking).
Status MakeStdPipes(StdPipes& parent, StdPipes& child) {
  if (!MakePipe(child.in, parent.in) || !MakePipe(parent.out, child.out) ||
      !MakePipe(parent.err, child.err)) {
    int err = errno;
    return Status::Error("exec: cannot create pipes: " + ErrorText(err) + FdHint(err));
  }
  for (const UniqueFd* fd : {&parent.in, &parent.out, &parent.err}) {
    int flags = fcntl(fd->get(), F_GETFL);
    if (flags < 0 || fcntl(fd->get(), F_SETFL, flags | O_NONBLOCK) != 0) {
      return Status::Error("exec: cannot configure pipes: " + ErrorText(errno));
    }
  }
  return Status::Ok();
}

// A started child process, leader of its own process group. The destructor kills the
// group and reaps the child if that has not happened yet, so no path leaks a process.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { KillAndReap(); }

  // Starts argv[0] (PATH lookup) with `env` and stdio from `child`. Returns 0 or errno.
  int Spawn(std::vector<std::string> argv, std::vector<std::string> env, const StdPipes& child);

  // Reaps the child if it has exited (or waits for that when `block`): 1 reaped (status
  // and cpu_seconds set), 0 still running, -1 wait failed (errno set; the child is then
  // given up on).
  int TryReap(bool block, int& status, double& cpu_seconds);

  // Whether the child has exited (it stays unreaped, so its pid and process group id are
  // not reused yet).
  bool Exited() const {
    if (pid_ < 0) return true;
    siginfo_t info{};
    return waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid != 0;
  }
  // Kills the child's whole process group with SIGKILL. No-op once reaped.
  void Kill() {
    if (pid_ >= 0) killpg(pid_, SIGKILL);
  }
  void KillAndReap() {
    if (pid_ < 0) return;
    Kill();
    int status = 0;
    double cpu = 0;
    TryReap(/*block=*/true, status, cpu);
  }
  // Readable once the child exits; -1 if pidfd_open is unavailable.
  int pidfd() const { return pidfd_.get(); }

 private:
  pid_t pid_ = -1;  // -1 when there is no unreaped child
  UniqueFd pidfd_;
};

int ChildProcess::Spawn(std::vector<std::string> argv, std::vector<std::string> env,
                        const StdPipes& child) {
  pid_t pid =
      SpawnProcess(std::move(argv), std::move(env),
                   {child.in.get(), child.out.get(), child.err.get()}, g_death_signal.load());
  if (pid < 0) return -pid;
  pid_ = pid;
#ifdef SYS_pidfd_open
  pidfd_ = UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, pid_, 0)));  // close-on-exec
#endif
  return 0;
}

int ChildProcess::TryReap(bool block, int& status, double& cpu_seconds) {
  if (pid_ < 0) return -1;
  rusage usage{};
  pid_t got;
  do {
    got = wait4(pid_, &status, block ? 0 : WNOHANG, &usage);
  } while (got < 0 && errno == EINTR);
  if (got == 0) return 0;
  GuardUnregister(pid_);
  pid_ = -1;
  pidfd_.Reset();
  if (got < 0) return -1;
  cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
  return 1;
}

// Writes as much of `input` as the pipe takes, dropping the written prefix: spliced from
// `file` while it has them (its offset following), else from `input` itself. Closes `in`
// once everything is written or the child stopped reading (EPIPE is not an error: e.g.
// `head -1` exits without reading the rest).
void WriteSome(UniqueFd& in, std::string_view& input, FileBacking& file) {
  PipeWrites writes;
  while (!input.empty()) {
    size_t n = std::min(input.size(), kIoBlock);
    ssize_t w = file.fd >= 0 ? writes.Splice(in.get(), file.fd, file.offset, n)
                             : writes.Write(in.get(), input.data(), n);
    if (w > 0) {
      input.remove_prefix(static_cast<size_t>(w));
      file.offset += static_cast<uint64_t>(w);
    } else if (w < 0 && errno == EAGAIN) {
      return;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (file.fd >= 0 && !(w < 0 && errno == EPIPE)) {
      file.fd = -1;  // the file ended early (it shrank), or cannot be spliced
    } else {
      break;
    }
  }
  in.Reset();
}

// Appends what `fd` has to `into`, keeping only about the last `keep_tail` bytes if that
// is non-zero. Reads at most kReadsPerRound blocks, so a chatty child cannot keep its
// driver from checking for cancellation or serving other work. Returns false at EOF or on a read
// error.
bool ReadSome(int fd, std::string& into, size_t keep_tail) {
  char buf[kIoBlock];
  for (int i = 0; i < kReadsPerRound; ++i) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      into.append(buf, static_cast<size_t>(n));
      if (keep_tail > 0 && into.size() > 2 * keep_tail) into.erase(0, into.size() - keep_tail);
    } else if (n == 0) {
      return false;
    } else if (errno == EAGAIN) {
      return true;
    } else if (errno != EINTR) {
      return false;
    }
  }
  return true;
}

}  // namespace

struct Command::State {
  std::string cmd;
  std::string_view input;  // not yet written
  FileBacking file;        // the file `input` shows (its offset following what was written)
  StdPipes parent;         // our ends; each closed at EOF/EPIPE (Invariant: non-blocking)
  ChildProcess child;
  std::chrono::steady_clock::time_point next_reap{};
  int reap_backoff_ms = 1;
  // CommandPolicy::kill_group_on_exit, while the group has not been killed yet.
  bool watch_exit = false;
  uint64_t ok_exit[4] = {1, 0, 0, 0};  // the exit statuses that succeed, as at Start
};

namespace {
// Bit s of word s / 64: exit status s is a success.
std::atomic<uint64_t> g_ok_exit[4] = {1, 0, 0, 0};
}  // namespace

void SetOkExitCodes(const std::vector<int>& codes) {
  uint64_t words[4] = {codes.empty() ? 1u : 0u, 0, 0, 0};
  for (int code : codes)
    if (code >= 0 && code < 256) words[code / 64] |= uint64_t{1} << (code % 64);
  for (int i = 0; i < 4; ++i) g_ok_exit[i].store(words[i]);
}

bool IsOkExit(int status) {
  if (status < 0 || status >= 256) return false;
  return (g_ok_exit[status / 64].load() >> (status % 64)) & 1;
}

namespace {
thread_local const uint64_t* t_ok_exit = nullptr;  // OkExitScope's, if one is open
}  // namespace

OkExitScope::OkExitScope(const std::vector<uint32_t>& codes) : saved_(t_ok_exit) {
  if (codes.empty()) return;
  for (uint32_t code : codes)
    if (code < 256) words_[code / 64] |= uint64_t{1} << (code % 64);
  t_ok_exit = words_;
}

OkExitScope::~OkExitScope() { t_ok_exit = saved_; }

void SetCommandPolicy(const CommandPolicy& policy) {
  g_death_signal.store(policy.parent_death_signal);
  g_kill_group_on_exit.store(policy.kill_group_on_exit);
}

Command::Command(std::unique_ptr<State> state) : state_(std::move(state)) {}

Command::~Command() = default;  // ~ChildProcess kills and reaps

std::string OutputLimitError(uint64_t limit) {
  // Exact when the limit is a whole number of a unit (as --max-message 16M gives), so the
  // message repeats what the user typed.
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  uint64_t value = limit;
  int unit = 0;
  while (unit < 4 && value >= 1024 && value % 1024 == 0) {
    value /= 1024;
    ++unit;
  }
  return "output exceeds --max-message " + std::to_string(value) + " " + units[unit];
}

Result<std::unique_ptr<Command>> Command::Start(const std::vector<std::string>& argv,
                                                std::string_view input, const EnvVars& extra_env,
                                                uint64_t max_output, FileBacking file) {
  if (argv.empty() || argv[0].empty()) return Status::Error("exec: missing command");
  auto state = std::make_unique<State>();
  state->cmd = argv[0];
  state->input = input;
  state->file = file;
  StdPipes child_ends;
  if (Status s = MakeStdPipes(state->parent, child_ends); !s.ok()) return s;
  int rc = state->child.Spawn(argv, BuildEnvironment(extra_env), child_ends);
  child_ends = StdPipes();  // the child has its copies; our EOF detection needs these closed
  if (rc != 0) {
    return Status::Error("exec: cannot start '" + argv[0] + "': " + ErrorText(rc) + FdHint(rc));
  }
  if (input.empty()) state->parent.in.Reset();
  state->watch_exit = g_kill_group_on_exit.load() && state->child.pidfd() >= 0;
  for (int i = 0; i < 4; ++i) state->ok_exit[i] = t_ok_exit ? t_ok_exit[i] : g_ok_exit[i].load();
  auto command = std::unique_ptr<Command>(new Command(std::move(state)));
  command->max_output_ = max_output;
  // Its output as big as its input, reserved once: grown by doubling instead, a command that
  // prints what it reads (cat, sed, a transform) had its output copied about twice, each
  // time into fresh memory (31 MB through cat: 9,000 page faults, 175 ms, against 856 and
  // 53 ms). Memory a command that prints little never touches; the chunks of a job reserve
  // no more than its input between them, and none over kOutputReserve or --max-message.
  uint64_t reserve = std::min<uint64_t>(input.size(), kOutputReserve);
  if (max_output > 0) reserve = std::min<uint64_t>(reserve, max_output + kIoBlock);
  command->out_.reserve(static_cast<size_t>(reserve));
  return command;
}

void Command::AppendFds(std::vector<pollfd>& fds) const {
  if (done_) return;
  const StdPipes& p = state_->parent;
  if (p.in.open()) fds.push_back({p.in.get(), POLLOUT, 0});
  if (p.out.open()) fds.push_back({p.out.get(), POLLIN, 0});
  if (p.err.open()) fds.push_back({p.err.get(), POLLIN, 0});
  bool pipes_open = p.in.open() || p.out.open() || p.err.open();
  if ((!pipes_open || state_->watch_exit) && state_->child.pidfd() >= 0) {
    fds.push_back({state_->child.pidfd(), POLLIN, 0});
  }
}

std::optional<std::chrono::steady_clock::time_point> Command::deadline() const {
  const StdPipes& p = state_->parent;
  if (done_ || p.in.open() || p.out.open() || p.err.open() || state_->child.pidfd() >= 0) {
    return std::nullopt;
  }
  return state_->next_reap;
}

void Command::Pump() {
  // Non-blocking fds: trying a stream that is not ready just returns EAGAIN.
  StdPipes& p = state_->parent;
  if (p.in.open()) WriteSome(p.in, state_->input, state_->file);
  if (p.out.open() && !ReadSome(p.out.get(), out_, 0)) p.out.Reset();
  if (max_output_ > 0 && out_.size() > max_output_) {
    over_limit_ = true;
    std::string().swap(out_);  // the memory goes back now, not when the attempt ends
    Stop();
    return;
  }
  if (p.err.open() && !ReadSome(p.err.get(), err_tail_, kStderrTail)) p.err.Reset();
}

void Command::TryReap() {
  int status = 0;
  int reaped = state_->child.TryReap(/*block=*/false, status, cpu_);
  if (reaped == 0) {
    state_->next_reap =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(state_->reap_backoff_ms);
    state_->reap_backoff_ms = std::min(2 * state_->reap_backoff_ms, kMaxReapBackoffMs);
    return;
  }
  done_ = true;
  const std::string& cmd = state_->cmd;
  if (over_limit_) {
    status_ = Status::Error("exec: '" + cmd + "' " + OutputLimitError(max_output_));
  } else if (killed_) {
    status_ = Status::Error("cancelled");
  } else if (reaped < 0) {
    status_ = Status::Error("exec: '" + cmd + "': cannot wait for the child: " + ErrorText(errno));
  } else if (!WIFEXITED(status) ||
             !((state_->ok_exit[WEXITSTATUS(status) / 64] >> (WEXITSTATUS(status) % 64)) & 1)) {
    std::string message = "exec: '" + cmd + "' " + DescribeWaitStatus(status);
    if (std::string tail = LastLines(err_tail_, kStderrLines); !tail.empty()) {
      message += ": " + tail;
    }
    status_ = Status::Error(message);
  }
}

bool Command::Advance() {
  if (done_) return true;
  const StdPipes& p = state_->parent;
  if (!killed_) Pump();
  if (state_->watch_exit && state_->child.Exited()) {
    // What the command left in its group goes now; the pipes then reach EOF (unless a
    // process escaped to a group of its own).
    state_->watch_exit = false;
    state_->child.Kill();
    if (!killed_) Pump();
  }
  if (!p.in.open() && !p.out.open() && !p.err.open()) TryReap();
  return done_;
}

void Command::Kill() {
  if (done_ || killed_) return;
  over_limit_ = false;  // a cancel wins: its result is dropped anyway
  Stop();
}

void Command::Stop() {
  killed_ = true;
  state_->child.Kill();
  state_->parent = StdPipes();  // a grandchild holding the pipes must not delay the reap
}

}  // namespace fanout
