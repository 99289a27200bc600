// LocalLauncher: starts, watches and reaps the local `fanout-worker` processes of a
// `processes` job. Each child gets PR_SET_PDEATHSIG(SIGTERM), so no worker outlives the
// coordinator even if it is killed (the worker kills its commands' process groups first);
// stdin/stdout go to /dev/null (stdout may be the job's output), stderr is shared. Exits
// are noticed through a pidfd per child that the event loop polls next to its socket. The
// destructor kills and reaps every child still alive. With `adopt_orphans` (the `fanout`
// program, whose only children are its workers) the process becomes a child subreaper
// (PR_SET_CHILD_SUBREAPER): a worker that dies (SIGKILL, a crash) cannot take its exec
// commands down with it, so they are reparented here, and the launcher kills their process
// groups and reaps them when it reaps a worker. A library user's process keeps its own
// children: there the option is off.
// Signals go only to children this launcher started, through their pidfds (never kill(2)
// on a pid that came from elsewhere). With a local token each child gets it over an
// inherited pipe (`--local-token-fd N`), never in its environment or argv.
// The WorkerLauncher (worker_launcher.h) of the programs. Not thread-safe: owned by the
// coordinator's event loop.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/worker_launcher.h"

namespace fanout {

class LocalLauncher final : public WorkerLauncher {
 public:
  // `argv_tail` is appended to every worker's command line (after --connect/--name).
  LocalLauncher(std::string worker_bin, std::string endpoint, std::vector<std::string> argv_tail,
                bool adopt_orphans = false);
  ~LocalLauncher() override;
  LocalLauncher(const LocalLauncher&) = delete;
  LocalLauncher& operator=(const LocalLauncher&) = delete;

  // The per-run secret that workers started from now on prove themselves with: each gets
  // a pipe holding it as `--local-token-fd N` (not on argv, where `ps` shows it, nor in
  // its environment, which /proc/PID/environ keeps for the process's lifetime).
  void SetLocalToken(const std::string& token) override { token_ = token; }
  // Starts one worker named `name`. An error means it could not be executed at all.
  Result<pid_t> Spawn(const std::string& name) override;

  // The pidfds to poll (readable when that child has exited).
  std::vector<int> fds() const override;
  // Reaps the child behind a readable pidfd.
  std::optional<ChildExit> Reap(int fd) override;
  // Sends `sig` to the child `pid` (through its pidfd); nothing if it is not our child.
  void Kill(pid_t pid, int sig) override;
  // Sends `sig` to every child whose pid is not in `spare`.
  void SignalAllExcept(const std::vector<pid_t>& spare, int sig) override;
  size_t alive() const override { return children_.size(); }
  bool IsChild(pid_t pid) const override;
  // Waits up to `grace` for every child to exit on its own, then SIGKILLs and reaps the rest.
  void StopAll(std::chrono::milliseconds grace) override;

 private:
  // Kills and reaps children that are not workers (orphans of dead workers): without
  // waiting for them to exit, or waiting (at the end).
  void CollectOrphans(bool wait);

  struct Child {
    pid_t pid;
    std::string name;
  };
  std::string worker_bin_;
  std::string endpoint_;
  std::vector<std::string> argv_tail_;
  std::map<int, Child> children_;  // pidfd -> child
  std::string token_;              // "" = workers get no --local-token-fd
  bool adopt_orphans_ = false;
};

// The worker binary to run: `configured` if set, else $FANOUT_WORKER, else fanout-worker
// next to the running executable, else "fanout-worker" on PATH. Error if not executable.
Result<std::string> FindWorkerBinary(const std::string& configured);

}  // namespace fanout
