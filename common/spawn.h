// Spawn: the one way fanout starts a command's process (the `exec` task's Command and the
// warm processes of `exec --warm`, the coordinator's local workers): PATH lookup, stdio from three
// given fds, the leader of a new process group, default dispositions for the signals a parent may
// have changed, an empty signal mask, optionally a parent-death signal, and registered with the
// group guard (group_guard.h) until the caller reaps it (GuardUnregister). Plus the small helpers
// both need to describe what happened. Thread-safe: no shared state.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fanout {

using EnvVars = std::vector<std::pair<std::string, std::string>>;

// The child's stdin, stdout and stderr.
using StdFds = std::array<int, 3>;

// Starts argv[0] (PATH lookup) with `env` as its whole environment. `death_signal` != 0:
// PR_SET_PDEATHSIG in the child (vfork and exec, which posix_spawn cannot do), sent when
// the calling thread ends. Returns the pid, or -errno if it could not start.
pid_t SpawnProcess(std::vector<std::string> argv, std::vector<std::string> env, const StdFds& stdio,
                   int death_signal);

// What else a child gets besides its stdio and environment.
struct SpawnOptions {
  // != 0: PR_SET_PDEATHSIG in the child (sent when the calling thread ends).
  int death_signal = 0;
  // >= 0: a close-on-exec fd of this process that the child keeps, at the same number.
  int keep_fd = -1;
  // Register the child's process group with the group guard (false: the caller stops it
  // itself, e.g. the coordinator's local workers, which stop their own commands).
  bool guard_group = true;
};
// As above, with `options`.
pid_t SpawnProcess(std::vector<std::string> argv, std::vector<std::string> env, const StdFds& stdio,
                   const SpawnOptions& options);

// This process's environment with `extra` added; `extra` wins over inherited names.
std::vector<std::string> BuildEnvironment(const EnvVars& extra);

// Writes to pipes whose readers may be gone, without a process-wide effect: while one of
// these lives, SIGPIPE is blocked in the calling thread, and one its writes raised is
// consumed when it ends (not one pending before), so EPIPE comes back as an error value
// whatever the program's SIGPIPE disposition is (a library must not ignore SIGPIPE for its
// host). One for a round of writes costs three system calls, not three a write.
class PipeWrites {
 public:
  PipeWrites();
  ~PipeWrites();
  PipeWrites(const PipeWrites&) = delete;
  PipeWrites& operator=(const PipeWrites&) = delete;
  // write(2), with its return value and errno.
  ssize_t Write(int fd, const void* data, size_t size);
  // splice(2) of `size` bytes at `offset` of the file `file_fd` into the pipe `pipe_fd`,
  // never blocking on the pipe (EAGAIN when it is full); 0 past the file's end.
  ssize_t Splice(int pipe_fd, int file_fd, uint64_t offset, size_t size);

 private:
  ssize_t Note(ssize_t n);  // remembers an EPIPE
  sigset_t pipe_only_{};    // SIGPIPE alone
  sigset_t old_{};
  bool was_pending_ = false;
  bool raised_ = false;
};

// strerror_r's text for `err`.
std::string ErrorText(int err);

// Moves `fd` above 0..2 (a close-on-exec duplicate; the original is closed) so a child's
// dup2 onto its standard fds cannot clobber it. Returns -1 on failure.
int AboveStdio(int fd);

// The last `max_lines` non-blank lines of `text` (each shortened to `max_line`
// characters), joined with " | ": a command's stderr tail in an error message.
std::string LastLines(std::string_view text, size_t max_lines, size_t max_line = 300);

// "exited with status N" or "was killed by signal N (SIGNAME)".
std::string DescribeWaitStatus(int status);
// Whether `error` reports a process killed by `sig` in DescribeWaitStatus's words.
bool KilledBySignal(std::string_view error, int sig);

}  // namespace fanout
