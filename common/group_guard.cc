// GroupGuard (group_guard.h). The guard runs between fork and _exit only async-signal-safe
// calls (no allocation: a fork of a threaded process may not take locks), on a fixed table.
#include "common/group_guard.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

namespace fanout {
namespace {

std::atomic<int> g_guard_fd{-1};
std::atomic<pid_t> g_guard_pid{-1};

// Commands running at once in one coordinator: at most one per thread or slot (65536).
constexpr size_t kMaxGroups = 65536;
pid_t g_groups[kMaxGroups];  // the guard's table (in the guard process only)

// Overwrites this process's command line (what /proc/PID/cmdline shows) with `title`.
void SetTitle(int argc, char** argv, const char* title) {
  if (argc <= 0 || argv == nullptr || argv[0] == nullptr) return;
  for (int i = 0; i + 1 < argc; ++i) {  // only the kernel's own layout: one block of strings
    if (argv[i + 1] != argv[i] + strlen(argv[i]) + 1) return;
  }
  char* begin = argv[0];
  char* end = argv[argc - 1] + strlen(argv[argc - 1]);
  memset(begin, 0, static_cast<size_t>(end - begin));
  size_t n = strlen(title);
  if (n > static_cast<size_t>(end - begin)) n = static_cast<size_t>(end - begin);
  memcpy(begin, title, n);
}

[[noreturn]] void GuardMain(int in) {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU}) {
    sigaction(sig, &ignore, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  setpgid(0, 0);  // a kill of the job's process group must not take the guard with it
  prctl(PR_SET_NAME, "fanout-guard");
  int null = open("/dev/null", O_RDWR);
  for (int fd = 0; fd <= 2; ++fd) dup2(null, fd);  // hold none of the job's pipes open
  if (in != 3) {
    dup2(in, 3);
    in = 3;
  }
  close_range(4, ~0U, 0);
  size_t count = 0;
  pid_t buf[256];
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (size_t i = 0; i < static_cast<size_t>(n) / sizeof(pid_t); ++i) {
      pid_t g = buf[i];
      if (g > 0) {
        if (count < kMaxGroups) g_groups[count++] = g;
      } else {
        for (size_t j = 0; j < count; ++j) {
          if (g_groups[j] == -g) {
            g_groups[j] = g_groups[--count];
            break;
          }
        }
      }
    }
  }
  // The parent is gone (or closed the pipe): nothing it started may run on.
  for (size_t j = 0; j < count; ++j) killpg(g_groups[j], SIGKILL);
  _exit(0);
}

void Send(pid_t record) {
  int fd = g_guard_fd.load();
  if (fd < 0) return;
  ssize_t w;
  do {
    w = write(fd, &record, sizeof record);  // atomic: under PIPE_BUF
  } while (w < 0 && errno == EINTR);
}

}  // namespace

Status StartGroupGuard(int argc, char** argv) {
  if (g_guard_fd.load() >= 0) return Status::Ok();
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    return Status::Error(std::string("cannot start the group guard: ") + std::strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(p[0]);
    close(p[1]);
    return Status::Error(std::string("cannot start the group guard: ") + std::strerror(err));
  }
  if (pid == 0) {
    close(p[1]);
    SetTitle(argc, argv, "fanout: group guard");
    GuardMain(p[0]);
  }
  close(p[0]);
  g_guard_pid.store(pid);
  g_guard_fd.store(p[1]);
  return Status::Ok();
}

pid_t GroupGuardPid() { return g_guard_pid.load(); }

void GuardRegister(pid_t pgid) {
  if (pgid > 0) Send(pgid);
}

void GuardUnregister(pid_t pgid) {
  if (pgid > 0) Send(-pgid);
}

}  // namespace fanout
