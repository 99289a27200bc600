// Command: one child process of the `exec` task as a non-blocking state machine. It
// spawns argv[0] (PATH lookup, no shell) in its own process group, feeds the chunk on
// stdin, drains stdout (the result) and stderr (a bounded tail for error messages), then
// reaps the child. Nothing in it blocks except the destructor's reap of a killed child:
// callers wait on fds() (poll) and call Advance() when something may be ready. The blocking
// RunCommand (exec_task.h) and the worker's event loop both drive it.
// Thread-safety: one Command is used by one thread at a time; separate Commands are
// independent. No process-wide effect: writes to the child go through PipeWrites
// (spawn.h), so a child that stops reading is EPIPE whatever SIGPIPE's disposition.
#pragma once

#include <poll.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/file_backing.h"
#include "common/spawn.h"
#include "common/status.h"

namespace fanout {

// How commands started from now on are tied to this process. Off by default (a library
// user's process decides for itself); the `fanout` and `fanout-worker` programs turn both on
// before starting any thread.
struct CommandPolicy {
  // Sent to the command when the thread that started it dies (PR_SET_PDEATHSIG), e.g.
  // SIGKILL, so that a coordinator killed with SIGKILL leaves no command running; 0 = none.
  // The thread must outlive the command (RunCommand's caller and the worker's loop do).
  int parent_death_signal = 0;
  // Once the command exits, its process group (background children it left, such as
  // `sh -c 'sleep 1000 & cat'`) is killed before its pipes are drained to the end.
  bool kill_group_on_exit = false;
};
void SetCommandPolicy(const CommandPolicy& policy);

// The exit statuses (0-255) of a command that count as success: its output is used.
// Process-wide, {0} until set; `fanout run --ok-exit` sets it, and a worker sets it from
// each WELCOME ("ok", PROTOCOL.md). An empty list means {0}.
void SetOkExitCodes(const std::vector<int>& codes);
bool IsOkExit(int status);

// Overrides the process-wide codes for the commands this thread starts while the scope
// lives: a worker runs each TASK under the codes it carries (TASK's "ok", PROTOCOL.md), so
// warm workers serve jobs with different --ok-exit. An empty list overrides nothing.
class OkExitScope {
 public:
  explicit OkExitScope(const std::vector<uint32_t>& codes);
  ~OkExitScope();
  OkExitScope(const OkExitScope&) = delete;
  OkExitScope& operator=(const OkExitScope&) = delete;

 private:
  uint64_t words_[4] = {0, 0, 0, 0};
  const uint64_t* saved_ = nullptr;
};

class Command {
 public:
  // Starts argv[0] with `input` on stdin (must outlive the Command) and the caller's
  // environment plus `extra_env` (which overrides variables of the same name). Errors:
  //   "exec: missing command"
  //   "exec: cannot create pipes: <strerror>[ (hint on the open-file limit)]"
  //   "exec: cannot start 'CMD': <strerror>"
  // `max_output` > 0: once stdout passes that many bytes the process group is killed and
  // the command fails with OutputLimitError(max_output); at most one read round (1 MiB)
  // beyond it is ever held. `file`: the open file `input` shows (FileBacking), spliced
  // into the pipe instead of written from `input` (which is used from where a splice
  // cannot go on: the file ended early, or cannot be spliced).
  static Result<std::unique_ptr<Command>> Start(const std::vector<std::string>& argv,
                                                std::string_view input, const EnvVars& extra_env,
                                                uint64_t max_output = 0, FileBacking file = {});
  ~Command();  // kills the process group and reaps the child if that has not happened
  Command(const Command&) = delete;
  Command& operator=(const Command&) = delete;

  // Appends what to wait on before the next Advance: the open pipes, then (once all are
  // closed) the child's pidfd. Empty after done(), or when only deadline() applies.
  void AppendFds(std::vector<pollfd>& fds) const;
  // When Advance should run even without fd readiness (reap polling on kernels without
  // pidfd_open); nothing otherwise.
  std::optional<std::chrono::steady_clock::time_point> deadline() const;
  // Does whatever I/O is ready without blocking, and reaps the child once its pipes are
  // closed. Returns done().
  bool Advance();
  // Kills the whole process group (SIGKILL) and closes the pipes; does not block. The
  // Command is done once the child has been reaped (Advance), with status "cancelled".
  void Kill();

  bool done() const { return done_; }
  // Once done: OK for exit status 0, otherwise one line:
  //   "exec: 'CMD' exited with status N[: <last stderr lines, joined by ' | '>]"
  //   "exec: 'CMD' was killed by signal N (SIGNAME)[: <last stderr lines>]"
  //   "cancelled" after Kill().
  //   OutputLimitError(max_output) when stdout passed the limit.
  // A child that exits without reading all of its input is not an error by itself.
  const Status& status() const { return status_; }
  std::string& output() { return out_; }             // stdout so far
  double child_cpu_seconds() const { return cpu_; }  // user+system, once reaped

 private:
  struct State;
  explicit Command(std::unique_ptr<State> state);
  void Pump();
  void TryReap();
  // Kills the process group and closes the pipes (Kill and the output limit).
  void Stop();

  std::unique_ptr<State> state_;  // pipes and child handle (command.cc)
  std::string out_;
  std::string err_tail_;
  Status status_;
  double cpu_ = 0;
  uint64_t max_output_ = 0;  // 0 = unlimited
  bool killed_ = false;
  bool over_limit_ = false;  // stopped because stdout passed max_output_
  bool done_ = false;
};

// "output exceeds --max-message 16 MiB": the one-line reason of an attempt whose output
// is larger than a --max-message of `limit` bytes (exec, and the worker's check of every
// task's output).
std::string OutputLimitError(uint64_t limit);

}  // namespace fanout
