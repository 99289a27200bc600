#include "tests/support/test_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/direct_channel.h"

extern char** environ;

namespace fanout::testing {
namespace {

std::vector<char*> CArgv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Polls waitpid until the child exits or the deadline passes (no signal handler needed).
int WaitDeadline(pid_t pid, std::chrono::steady_clock::time_point deadline) {
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return DecodeStatus(status);
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() >= deadline) return -2;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/fanout-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {
std::string BinDir() {
  const char* dir = std::getenv("FANOUT_TEST_BIN_DIR");
  return dir && *dir ? dir : FANOUT_BIN_DIR;
}
}  // namespace

StalledReader::StalledReader(const std::string& path) {
  if (mkfifo(path.c_str(), 0600) != 0) throw std::runtime_error("mkfifo failed: " + path);
  // Non-blocking, so this open does not wait for the writer; the writer's open then finds a
  // reader at once.
  fd_ = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error("cannot open the FIFO's read end: " + path);
}

StalledReader::~StalledReader() { close(fd_); }

bool StalledReader::WaitFull(std::chrono::milliseconds timeout) const {
  int capacity = fcntl(fd_, F_GETPIPE_SZ);
  return PollUntil(
      [&] {
        int held = 0;
        // Within a page of full: a write of more than that waits.
        return ioctl(fd_, FIONREAD, &held) == 0 && capacity > 0 && held >= capacity - 4096;
      },
      timeout);
}

bool PollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
               std::chrono::milliseconds every) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(every);  // between checks of a condition
  }
  return true;
}

std::string FanoutBin() { return BinDir() + "/fanout"; }
std::string WorkerBin() { return BinDir() + "/fanout-worker"; }

RunResult Run(const std::vector<std::string>& argv, const RunOptions& options) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
    throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
  for (const auto& e : options.env) env_store.push_back(e);
  auto cargv = CArgv(argv);
  auto cenv = CArgv(env_store);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0].c_str(), &fa, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  RunResult result;
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    close(err[0]);
    result.err = std::string("spawn failed: ") + std::strerror(rc);
    return result;
  }
  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  size_t written = 0;
  int in_fd = in[1];
  if (options.stdin_data.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  int out_fd = out[0], err_fd = err[0];
  char buf[65536];
  while (out_fd >= 0 || err_fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    pollfd fds[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    int n = poll(fds, 3, static_cast<int>(std::min<long>(left.count(), 1000)));
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      if (r > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        close(fds[i].fd);
        (i == 0 ? out_fd : err_fd) = -1;
      }
    }
    if (in_fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w =
          write(in_fd, options.stdin_data.data() + written, options.stdin_data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) written = options.stdin_data.size();
      if (written >= options.stdin_data.size()) {
        close(in_fd);
        in_fd = -1;
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  if (out_fd >= 0) close(out_fd);
  if (err_fd >= 0) close(err_fd);
  int code = WaitDeadline(pid, result.timed_out
                                   ? std::chrono::steady_clock::now() + std::chrono::seconds(5)
                                   : deadline);
  if (code == -2) {
    result.timed_out = true;
    kill(-pid, SIGKILL);
    code = WaitDeadline(pid, std::chrono::steady_clock::now() + std::chrono::seconds(5));
  }
  result.exit_code = code;
  return result;
}

Child::Child(const std::vector<std::string>& argv, const std::string& stdout_path,
             const std::string& stderr_path) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (!stdout_path.empty())
    posix_spawn_file_actions_addopen(&fa, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  if (!stderr_path.empty())
    posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  auto cargv = CArgv(argv);
  int rc = posix_spawn(&pid_, argv[0].c_str(), &fa, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("spawn failed: " + argv[0]);
}

Child::~Child() {
  if (!reaped_ && pid_ > 0) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
}

int Child::Wait(std::chrono::milliseconds timeout) {
  if (reaped_) return -1;
  int code = WaitDeadline(pid_, std::chrono::steady_clock::now() + timeout);
  if (code == -2) return -1;
  reaped_ = true;
  return code;
}

void Child::Signal(int sig) {
  if (!reaped_) kill(pid_, sig);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string Sha256(const std::string& data) {
  RunOptions opts;
  opts.stdin_data = data;
  auto r = Run({"/usr/bin/sha256sum"}, opts);
  return r.out.substr(0, 64);
}

std::optional<std::string> WaitForText(const std::string& path, const std::string& needle,
                                       std::chrono::milliseconds timeout) {
  std::string text;
  bool found = PollUntil(
      [&] {
        text = FileExists(path) ? ReadFile(path) : "";
        return text.find(needle) != std::string::npos;
      },
      timeout);
  return found ? std::optional<std::string>(text) : std::nullopt;
}

std::vector<pid_t> ProcessesMatching(const std::string& needle) {
  std::vector<pid_t> pids;
  DIR* d = opendir("/proc");
  if (!d) return pids;
  while (dirent* e = readdir(d)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0 || pid == getpid()) continue;
    std::string cmdline = ReadFile("/proc/" + std::string(e->d_name) + "/cmdline");
    for (auto& c : cmdline)
      if (c == '\0') c = ' ';
    // Zombies have an empty cmdline and are not "left running".
    if (!cmdline.empty() && cmdline.find(needle) != std::string::npos) pids.push_back(pid);
  }
  closedir(d);
  return pids;
}

std::string ListeningEndpoint(const std::string& err_path) {
  auto text = WaitForText(err_path, "tcp://", std::chrono::milliseconds(20000));
  if (!text) return "";
  std::smatch m;
  std::regex_search(*text, m, std::regex("tcp://[0-9.]+:[0-9]+"));
  return m.str();
}

int64_t PeakRssKiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

pid_t ParentOf(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  char state = 0;
  int ppid = -1;
  if (std::sscanf(stat.c_str() + paren + 1, " %c %d", &state, &ppid) != 2) return -1;
  return ppid;
}

bool Running(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

std::string DirectPrefix(uint32_t header, uint32_t flags, uint64_t payload) {
  std::string p(kDirectPrefixBytes, '\0');
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(header >> (8 * i));
  for (int i = 0; i < 4; ++i) p[4 + i] = static_cast<char>(flags >> (8 * i));
  for (int i = 0; i < 8; ++i) p[8 + i] = static_cast<char>(payload >> (8 * i));
  return p;
}

std::optional<Envelope> ReceiveWithin(zmq::socket_t& socket, bool router,
                                      std::chrono::milliseconds timeout, bool heartbeats) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    PollOnce(&item, 1,
             std::chrono::duration_cast<std::chrono::milliseconds>(
                 deadline - std::chrono::steady_clock::now()));
    Received got = ReceiveMessage(socket, router);
    if (auto* env = std::get_if<Envelope>(&got)) {
      if (heartbeats || !std::holds_alternative<Heartbeat>(env->message)) return std::move(*env);
    }
  }
  return std::nullopt;
}

}  // namespace fanout::testing
