#include "common/exec_task.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "common/measured_run.h"

extern char** environ;

namespace fanout {
namespace {

constexpr size_t kStderrTail = 64 * 1024;  // bytes of stderr kept for error messages
constexpr int kPollMs = 20;                // how often a running command checks `stop`

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    Reset();
    fd_ = std::exchange(o.fd_, -1);
    return *this;
  }
  ~Fd() { Reset(); }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

bool MakePipe(Fd& read_end, Fd& write_end) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return false;
  read_end = Fd(p[0]);
  write_end = Fd(p[1]);
  return true;
}

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// The last `n` non-empty lines of `text`, joined with " | ".
std::string LastLines(const std::string& text, size_t n) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) lines.push_back(line);
    start = end + 1;
  }
  std::string joined;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) {
    joined += (joined.empty() ? "" : " | ") + lines[i];
  }
  return joined;
}

std::string Describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  int sig = WTERMSIG(status);
  const char* abbrev = sigabbrev_np(sig);
  return "was killed by signal " + std::to_string(sig) +
         (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
}

// Reads what is available; returns false at EOF or on a hard error.
bool Drain(int fd, std::string& into, size_t keep_tail) {
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      into.append(buf, static_cast<size_t>(n));
      if (keep_tail && into.size() > 2 * keep_tail) into.erase(0, into.size() - keep_tail);
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN;
  }
}

struct Spawned {
  pid_t pid = -1;
  int error = 0;
};

Spawned Spawn(const std::vector<std::string>& argv,
              const std::vector<std::pair<std::string, std::string>>& extra_env, Fd& in_r,
              Fd& out_w, Fd& err_w) {
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    bool overridden = false;
    for (const auto& [k, v] : extra_env) {
      if (entry.substr(0, k.size() + 1) == k + "=") overridden = true;
    }
    if (!overridden) env_store.emplace_back(entry);
  }
  for (const auto& [k, v] : extra_env) env_store.push_back(k + "=" + v);
  std::vector<char*> envp, cargv;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_store = argv;
  for (auto& a : argv_store) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_r.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, err_w.get(), STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults, empty;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGCHLD}) sigaddset(&defaults, sig);
  sigemptyset(&empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  Spawned s;
  s.error = posix_spawnp(&s.pid, cargv[0], &fa, &attr, cargv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return s;
}

// Waits for the child, killing its process group if `stop` is requested meanwhile.
// Returns the wait status, or nullopt if it was killed for `stop`.
std::optional<int> Reap(pid_t pid, const std::stop_token& stop) {
  bool killed = false;
  for (;;) {
    int status = 0;
    rusage usage{};
    pid_t got = wait4(pid, &status, killed ? 0 : WNOHANG, &usage);
    if (got == pid) {
      AddChildCpuSeconds(static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) *
                             1e-6);
      if (killed) return std::nullopt;
      return status;
    }
    if (got < 0 && errno != EINTR) return std::nullopt;
    if (got == 0) {
      if (stop.stop_requested()) {
        killpg(pid, SIGKILL);
        killed = true;
      } else {
        poll(nullptr, 0, kPollMs);
      }
    }
  }
}

}  // namespace

Status RunCommand(const std::vector<std::string>& argv, std::string_view input,
                  const std::vector<std::pair<std::string, std::string>>& extra_env,
                  std::string& out, std::stop_token stop) {
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { signal(SIGPIPE, SIG_IGN); });
  const std::string& cmd = argv.at(0);
  Fd in_r, in_w, out_r, out_w, err_r, err_w;
  if (!MakePipe(in_r, in_w) || !MakePipe(out_r, out_w) || !MakePipe(err_r, err_w)) {
    return Status::Error("exec: cannot create pipes: " + std::string(std::strerror(errno)));
  }
  Spawned child = Spawn(argv, extra_env, in_r, out_w, err_w);
  in_r.Reset();
  out_w.Reset();
  err_w.Reset();
  if (child.error != 0) {
    return Status::Error("exec: cannot start '" + cmd + "': " + std::strerror(child.error));
  }
  for (const Fd* fd : {&in_w, &out_r, &err_r}) SetNonBlocking(fd->get());
  size_t fed = 0;
  if (input.empty()) in_w.Reset();
  std::string err_tail;
  while (out_r.open() || err_r.open()) {
    if (stop.stop_requested()) {
      killpg(child.pid, SIGKILL);
      Reap(child.pid, stop);
      return Status::Error("cancelled");
    }
    pollfd pfds[3];
    nfds_t n = 0;
    if (in_w.open()) pfds[n++] = {in_w.get(), POLLOUT, 0};
    if (out_r.open()) pfds[n++] = {out_r.get(), POLLIN, 0};
    if (err_r.open()) pfds[n++] = {err_r.get(), POLLIN, 0};
    if (poll(pfds, n, kPollMs) < 0 && errno != EINTR) break;
    if (in_w.open()) {
      ssize_t w =
          write(in_w.get(), input.data() + fed, std::min<size_t>(input.size() - fed, 1 << 16));
      if (w > 0) fed += static_cast<size_t>(w);
      // EPIPE: the command exited without reading everything; that is its business.
      if (fed == input.size() || (w < 0 && errno != EAGAIN && errno != EINTR)) in_w.Reset();
    }
    if (out_r.open() && !Drain(out_r.get(), out, 0)) out_r.Reset();
    if (err_r.open() && !Drain(err_r.get(), err_tail, kStderrTail)) err_r.Reset();
  }
  in_w.Reset();
  std::optional<int> status = Reap(child.pid, stop);
  if (!status) return Status::Error("cancelled");
  if (WIFEXITED(*status) && WEXITSTATUS(*status) == 0) return Status::Ok();
  std::string message = "exec: '" + cmd + "' " + Describe(*status);
  std::string tail = LastLines(err_tail, 5);
  if (!tail.empty()) message += ": " + tail;
  return Status::Error(message);
}

}  // namespace fanout
