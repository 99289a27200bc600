#include "engine/local_launcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "common/group_guard.h"
#include "common/log.h"
#include "common/spawn.h"
#include "common/unique_fd.h"

namespace fanout {
namespace {

bool Executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

// pidfd_send_signal(2) (glibc 2.36 declares it without C linkage for C++). A pidfd names
// one process for good: the signal cannot reach another that reused the pid.
void SignalPidfd(int pidfd, int sig) { syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0); }

// A pipe whose read end holds `token` (the write end is closed: the reader gets EOF after
// it). Both ends are close-on-exec; the child clears the flag on its copy. -1 on failure.
int TokenPipe(const std::string& token) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  // A token is far smaller than a pipe's buffer: this write never blocks.
  bool ok = write(fds[1], token.data(), token.size()) == static_cast<ssize_t>(token.size());
  close(fds[1]);
  if (!ok) {
    close(fds[0]);
    return -1;
  }
  return fds[0];
}

}  // namespace

std::string ChildExit::Describe() const {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return "was killed by signal " + std::to_string(sig) +
           (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
  }
  return "ended with wait status " + std::to_string(status);
}

Result<std::string> FindWorkerBinary(const std::string& configured) {
  std::string path = configured;
  if (path.empty()) {
    if (const char* env = std::getenv("FANOUT_WORKER"); env && *env) path = env;
  }
  if (path.empty()) {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
      auto beside = self.parent_path() / "fanout-worker";
      if (Executable(beside)) return beside.string();
    }
    path = "fanout-worker";
  }
  if (path.find('/') == std::string::npos) {
    const char* env_path = std::getenv("PATH");
    std::string dirs = env_path ? env_path : "/usr/bin:/bin";
    for (size_t start = 0; start <= dirs.size();) {
      size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      std::string candidate = dirs.substr(start, end - start) + "/" + path;
      if (Executable(candidate)) return candidate;
      start = end + 1;
    }
    return Status::Error("worker binary '" + path + "' not found on PATH (use --worker-bin)");
  }
  if (!Executable(path)) {
    return Status::Error("worker binary '" + path + "' is not executable: " + std::strerror(errno));
  }
  return path;
}

LocalLauncher::LocalLauncher(std::string worker_bin, std::string endpoint,
                             std::vector<std::string> argv_tail, bool adopt_orphans)
    : worker_bin_(std::move(worker_bin)),
      endpoint_(std::move(endpoint)),
      argv_tail_(std::move(argv_tail)),
      adopt_orphans_(adopt_orphans) {
  // Orphans of dead workers come here (CollectOrphans).
  if (adopt_orphans_) prctl(PR_SET_CHILD_SUBREAPER, 1);
}

LocalLauncher::~LocalLauncher() { StopAll(std::chrono::milliseconds(0)); }

Result<pid_t> LocalLauncher::Spawn(const std::string& name) {
  UniqueFd token;
  if (!token_.empty()) {
    token = UniqueFd(TokenPipe(token_));
    if (!token.open()) {
      return Status::Error(std::string("cannot pass a worker its token: ") + std::strerror(errno));
    }
  }
  std::vector<std::string> args = {worker_bin_, "--connect", endpoint_, "--name", name};
  if (token.open()) {
    args.insert(args.end(), {"--local-token-fd", std::to_string(token.get())});
  }
  args.insert(args.end(), argv_tail_.begin(), argv_tail_.end());
  UniqueFd devnull(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull.open()) {
    return Status::Error(std::string("cannot start a worker: ") + std::strerror(errno));
  }
  // SIGTERM on our death, which the worker catches: it kills its commands' process groups,
  // then exits. Its own process group: terminal signals go to the coordinator, which stops
  // workers itself (so no group guard either).
  pid_t pid = SpawnProcess(
      std::move(args), BuildEnvironment({}), {devnull.get(), devnull.get(), STDERR_FILENO},
      SpawnOptions{.death_signal = SIGTERM, .keep_fd = token.get(), .guard_group = false});
  if (pid < 0) {
    return Status::Error("cannot execute worker '" + worker_bin_ + "': " + ErrorText(-pid));
  }
  // glibc 2.36 declares pidfd_open without C linkage for C++; use the system call.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return Status::Error(std::string("pidfd_open failed: ") + std::strerror(errno));
  }
  children_[pidfd] = Child{pid, name};
  Log().debug("started worker {} (pid {})", name, pid);
  return pid;
}

std::vector<int> LocalLauncher::fds() const {
  std::vector<int> out;
  for (const auto& [fd, child] : children_) out.push_back(fd);
  return out;
}

namespace {

// Pids of this process's children from every process's /proc/PID/stat (field 4 is the
// parent pid). Plain read(2): a process may vanish while it is read (ESRCH), which must
// not throw.
std::vector<pid_t> ChildrenByScanningProc() {
  std::vector<pid_t> pids;
  pid_t self = getpid();
  DIR* proc = opendir("/proc");
  if (!proc) return pids;
  while (dirent* e = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    UniqueFd stat(
        open((std::string("/proc/") + e->d_name + "/stat").c_str(), O_RDONLY | O_CLOEXEC));
    if (!stat.open()) continue;
    char buf[512];
    ssize_t n = read(stat.get(), buf, sizeof buf - 1);
    if (n <= 0) continue;
    buf[n] = '\0';
    const char* paren = std::strrchr(buf, ')');
    char state = 0;
    long ppid = 0;
    if (paren && std::sscanf(paren + 1, " %c %ld", &state, &ppid) == 2 && ppid == self) {
      pids.push_back(static_cast<pid_t>(pid));
    }
  }
  closedir(proc);
  return pids;
}

// Pids of this process's children: each of its threads' /proc/self/task/TID/children (an
// orphan handed to this subreaper is listed under the thread the kernel chose); a handful
// of small reads, where scanning every process's stat took 1-2 ms of each job's start
// and end on a machine running a hundred processes (every worker's exit asks). A kernel
// without those files (CONFIG_PROC_CHILDREN) gets the scan. The files are exact for
// children that are not being created or exiting right then; orphans arrive when a worker
// exits, and the kernel hands them over before that exit is seen here (Reap), so those
// of an exit just seen are listed.
std::vector<pid_t> OwnChildren() {
  DIR* tasks = opendir("/proc/self/task");
  if (!tasks) return ChildrenByScanningProc();
  std::vector<pid_t> pids;
  bool listed = true;
  while (dirent* e = readdir(tasks)) {
    if (e->d_name[0] == '.') continue;
    std::string task = std::string("/proc/self/task/") + e->d_name;
    UniqueFd file(open((task + "/children").c_str(), O_RDONLY | O_CLOEXEC));
    if (!file.open()) {
      if (errno == ENOENT && access(task.c_str(), F_OK) != 0) continue;  // the thread ended
      listed = false;
      break;
    }
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = read(file.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    const char* p = text.c_str();
    char* end = nullptr;
    for (long pid = std::strtol(p, &end, 10); end != p; pid = std::strtol(p, &end, 10)) {
      if (pid > 0) pids.push_back(static_cast<pid_t>(pid));
      p = end;
    }
  }
  closedir(tasks);
  return listed ? pids : ChildrenByScanningProc();
}

}  // namespace

void LocalLauncher::CollectOrphans(bool wait) {
  if (!adopt_orphans_) return;
  for (pid_t pid : OwnChildren()) {
    if (IsChild(pid) || pid == GroupGuardPid()) continue;
    // An exec command of a worker that died: it leads its own process group, so the
    // group (its children too) goes with it.
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    pid_t got;
    do {
      got = waitpid(pid, nullptr, wait ? 0 : WNOHANG);
    } while (got < 0 && errno == EINTR);
    if (got == pid) Log().debug("stopped and reaped pid {}, orphaned by a dead worker", pid);
  }
}

std::optional<ChildExit> LocalLauncher::Reap(int fd) {
  auto it = children_.find(fd);
  if (it == children_.end()) return std::nullopt;
  int status = 0;
  pid_t got;
  do {
    got = waitpid(it->second.pid, &status, WNOHANG);
  } while (got < 0 && errno == EINTR);
  if (got == 0) return std::nullopt;  // not exited after all
  ChildExit exit{it->second.pid, it->second.name, status};
  close(fd);
  children_.erase(it);
  Log().debug("worker {} (pid {}) {}", exit.name, exit.pid, exit.Describe());
  CollectOrphans(/*wait=*/false);
  return exit;
}

void LocalLauncher::Kill(pid_t pid, int sig) {
  for (const auto& [fd, child] : children_) {
    if (child.pid == pid) SignalPidfd(fd, sig);
  }
}

void LocalLauncher::SignalAllExcept(const std::vector<pid_t>& spare, int sig) {
  for (const auto& [fd, child] : children_) {
    if (std::find(spare.begin(), spare.end(), child.pid) == spare.end()) SignalPidfd(fd, sig);
  }
}

bool LocalLauncher::IsChild(pid_t pid) const {
  for (const auto& [fd, child] : children_) {
    if (child.pid == pid) return true;
  }
  return false;
}

void LocalLauncher::StopAll(std::chrono::milliseconds grace) {
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (!children_.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    std::vector<pollfd> pfds;
    for (const auto& [fd, child] : children_) pfds.push_back({fd, POLLIN, 0});
    if (poll(pfds.data(), pfds.size(), static_cast<int>(left.count())) <= 0) continue;
    for (const auto& p : pfds) {
      if (p.revents) Reap(p.fd);
    }
  }
  for (auto& [fd, child] : children_) {
    SignalPidfd(fd, SIGKILL);
    while (waitpid(child.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    close(fd);
  }
  children_.clear();
  CollectOrphans(/*wait=*/true);
}

}  // namespace fanout
