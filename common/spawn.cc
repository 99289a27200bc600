// Spawn (spawn.h): the one way fanout starts a command's process.
#include "common/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "common/group_guard.h"

extern char** environ;

namespace fanout {
namespace {

// Closes a file descriptor on scope exit (unless closed first).
struct CloseOnExit {
  int fd = -1;
  void Close() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
  ~CloseOnExit() { Close(); }
};

// A null-terminated char* array over `strings` (which must outlive it).
std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> ptrs;
  ptrs.reserve(strings.size() + 1);
  for (std::string& s : strings) ptrs.push_back(s.data());
  ptrs.push_back(nullptr);
  return ptrs;
}

// posix_spawn attributes and file actions for one child: stdio from `child`, its own
// process group, default dispositions for the signals a parent may have changed, and an
// empty signal mask.
class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  // Returns 0 or an errno value.
  int Configure(const StdFds& child) {
    sigset_t defaults, empty;
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGCHLD}) sigaddset(&defaults, sig);
    sigemptyset(&empty);
    int rc = posix_spawn_file_actions_adddup2(&actions_, child[0], STDIN_FILENO);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions_, child[1], STDOUT_FILENO);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions_, child[2], STDERR_FILENO);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr_, &defaults);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attr_, &empty);
    if (rc == 0) rc = posix_spawnattr_setpgroup(&attr_, 0);  // 0: a new group led by the child
    if (rc == 0) {
      rc = posix_spawnattr_setflags(
          &attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    }
    return rc;
  }
  const posix_spawn_file_actions_t* actions() const { return &actions_; }
  const posix_spawnattr_t* attr() const { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

// What the child of VforkSpawn needs, prepared before the vfork: it runs on the parent's
// memory until it execs, so it may only make system calls.
struct VforkArgs {
  const StdFds* stdio = nullptr;
  std::vector<char*> candidates;  // paths to try for argv[0], in PATH order
  char** argv = nullptr;
  char** envp = nullptr;
  int death_signal = 0;
  int keep_fd = -1;  // cleared of close-on-exec in the child
  pid_t parent = 0;
  int report = -1;  // close-on-exec: the child writes its errno here if it cannot exec
};

[[noreturn]] void FailChild(const VforkArgs& a, int error) {
  [[maybe_unused]] ssize_t n = write(a.report, &error, sizeof error);
  _exit(127);
}

[[noreturn]] void VforkChild(const VforkArgs& a) {
  // Every signal is blocked (by the parent) until exec. Handlers are this process's code,
  // which must never run here: each handled signal (and the ones a parent may have
  // ignored, as posix_spawn's setsigdefault does) goes back to its default first.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction sa {};
    if (sigaction(sig, nullptr, &sa) != 0) continue;
    bool reset = sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN;
    for (int d : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGCHLD}) reset = reset || sig == d;
    if (!reset || sa.sa_handler == SIG_DFL) continue;
    sa = {};
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, nullptr);
  }
  if (setpgid(0, 0) != 0 || prctl(PR_SET_PDEATHSIG, a.death_signal) != 0) FailChild(a, errno);
  if (getppid() != a.parent) FailChild(a, ESRCH);  // the parent died meanwhile
  const StdFds& p = *a.stdio;
  if (dup2(p[0], STDIN_FILENO) < 0 || dup2(p[1], STDOUT_FILENO) < 0 ||
      dup2(p[2], STDERR_FILENO) < 0) {
    FailChild(a, errno);
  }
  if (a.keep_fd >= 0 && fcntl(a.keep_fd, F_SETFD, 0) != 0) FailChild(a, errno);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  int error = ENOENT;
  for (char* path : a.candidates) {
    execve(path, a.argv, a.envp);
    if (errno == EACCES) {
      error = EACCES;  // as execvp: reported if no later candidate runs
    } else if (errno != ENOENT && errno != ENOTDIR) {
      error = errno;
      break;
    }
  }
  FailChild(a, error);
}

// Where execvp would look for `file`: itself if it names a path, else each $PATH entry.
std::vector<std::string> ExecCandidates(const std::string& file) {
  if (file.find('/') != std::string::npos) return {file};
  const char* env = std::getenv("PATH");
  std::string path = env ? env : "/bin:/usr/bin";
  std::vector<std::string> out;
  for (size_t start = 0; start <= path.size();) {
    size_t end = std::min(path.find(':', start), path.size());
    std::string dir = path.substr(start, end - start);
    out.push_back((dir.empty() ? "." : dir) + "/" + file);
    start = end + 1;
  }
  return out;
}

// Starts `argv` like posix_spawnp with the SpawnSetup settings, PR_SET_PDEATHSIG
// `death_signal` (which posix_spawn cannot set) and `keep_fd` (if >= 0) kept open: vfork (as
// posix_spawn, no copy of this process's memory), with every signal blocked until the child execs.
// Exec errors come back through a close-on-exec pipe (so this also works where vfork is a fork, as
// under ThreadSanitizer). Returns the pid, or -errno.
pid_t VforkSpawn(std::vector<std::string>& argv, std::vector<std::string>& env, const StdFds& child,
                 int death_signal, int keep_fd) {
  std::vector<std::string> candidates = ExecCandidates(argv[0]);
  std::vector<char*> c_argv = CStrings(argv);
  std::vector<char*> c_env = CStrings(env);
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return -errno;
  CloseOnExit report_read{report[0]}, report_write{report[1]};
  VforkArgs args;
  args.stdio = &child;
  args.candidates = CStrings(candidates);
  args.candidates.pop_back();  // no terminator: iterated by count
  args.argv = c_argv.data();
  args.envp = c_env.data();
  args.death_signal = death_signal;
  args.keep_fd = keep_fd;
  args.parent = getpid();
  args.report = report_write.fd;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = vfork();
  if (pid == 0) VforkChild(args);
  int err = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return -err;
  report_write.Close();
  int error = 0;
  ssize_t n;
  do {
    n = read(report_read.fd, &error, sizeof error);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof error)) return pid;  // EOF: it executed
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  return -error;
}

}  // namespace

PipeWrites::PipeWrites() {
  sigemptyset(&pipe_only_);
  sigaddset(&pipe_only_, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only_, &old_);
  // A SIGPIPE already pending for this thread is not ours to consume.
  sigset_t pending;
  sigpending(&pending);
  was_pending_ = sigismember(&pending, SIGPIPE) == 1;
}

PipeWrites::~PipeWrites() {
  int saved = errno;
  if (raised_ && !was_pending_) {
    const timespec zero{0, 0};
    while (sigtimedwait(&pipe_only_, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  if (!sigismember(&old_, SIGPIPE)) pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  errno = saved;
}

ssize_t PipeWrites::Note(ssize_t n) {
  if (n < 0 && errno == EPIPE) raised_ = true;
  return n;
}

ssize_t PipeWrites::Write(int fd, const void* data, size_t size) {
  return Note(write(fd, data, size));
}

ssize_t PipeWrites::Splice(int pipe_fd, int file_fd, uint64_t offset, size_t size) {
  auto at = static_cast<loff_t>(offset);
  return Note(splice(file_fd, &at, pipe_fd, nullptr, size, SPLICE_F_NONBLOCK));
}

std::string ErrorText(int err) {
  char buf[256];
  return strerror_r(err, buf, sizeof buf);  // GNU variant: thread-safe, returns the text
}

// Moves `fd` above 0..2 so the child's dup2 onto its standard fds cannot clobber it
// (possible when this process runs with a standard fd closed). Returns -1 on failure.
int AboveStdio(int fd) {
  if (fd > STDERR_FILENO) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  close(fd);
  return moved;
}

// This process's environment with `extra` added; `extra` wins over inherited names.
std::vector<std::string> BuildEnvironment(const EnvVars& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    bool overridden = std::any_of(extra.begin(), extra.end(), [&](const auto& kv) {
      return entry.size() > kv.first.size() && entry.starts_with(kv.first) &&
             entry[kv.first.size()] == '=';
    });
    if (!overridden) env.emplace_back(entry);
  }
  for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
  return env;
}

// The last `max_lines` non-blank lines of `text` (each shortened to `max_line`
// characters), joined with " | ".
std::string LastLines(std::string_view text, size_t max_lines, size_t max_line) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (!line.empty()) lines.push_back(line);
  }
  std::string joined;
  size_t first = lines.size() > max_lines ? lines.size() - max_lines : 0;
  for (size_t i = first; i < lines.size(); ++i) {
    if (!joined.empty()) joined += " | ";
    joined += lines[i].substr(0, max_line);
    if (lines[i].size() > max_line) joined += "...";
  }
  return joined;
}

// "exited with status N" or "was killed by signal N (SIGNAME)".
std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (!WIFSIGNALED(status)) return "ended with wait status " + std::to_string(status);
  int sig = WTERMSIG(status);
  const char* abbrev = sigabbrev_np(sig);
  return "was killed by signal " + std::to_string(sig) +
         (abbrev != nullptr ? std::string(" (SIG") + abbrev + ")" : std::string());
}

bool KilledBySignal(std::string_view error, int sig) {
  std::string words = "was killed by signal " + std::to_string(sig);
  for (size_t at = error.find(words); at != std::string_view::npos;
       at = error.find(words, at + 1)) {
    size_t end = at + words.size();
    if (end == error.size() || error[end] == ' ') return true;  // not signal 15 within 150
  }
  return false;
}

pid_t SpawnProcess(std::vector<std::string> argv, std::vector<std::string> env, const StdFds& stdio,
                   int death_signal) {
  return SpawnProcess(std::move(argv), std::move(env), stdio,
                      SpawnOptions{.death_signal = death_signal});
}

pid_t SpawnProcess(std::vector<std::string> argv, std::vector<std::string> env, const StdFds& stdio,
                   const SpawnOptions& options) {
  pid_t pid = -1;
  if (options.death_signal != 0 || options.keep_fd >= 0) {
    pid = VforkSpawn(argv, env, stdio, options.death_signal, options.keep_fd);
    if (pid < 0) return pid;
  } else {
    SpawnSetup setup;
    if (int rc = setup.Configure(stdio); rc != 0) return -rc;
    std::vector<char*> c_argv = CStrings(argv);
    std::vector<char*> c_env = CStrings(env);
    int rc =
        posix_spawnp(&pid, c_argv[0], setup.actions(), setup.attr(), c_argv.data(), c_env.data());
    if (rc != 0) return -rc;
  }
  if (options.guard_group) GuardRegister(pid);  // it leads its own process group
  return pid;
}

}  // namespace fanout
