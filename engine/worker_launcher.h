// WorkerLauncher: the side effect behind local workers (starting, signalling and reaping
// worker processes), as an interface so that the policy deciding when to start and stop
// them (LocalWorkers, local_workers.h) runs against a fake in tests
// (tests/support/fake_launcher.h). The real one is LocalLauncher (local_launcher.h).
// Not thread-safe: owned by one event loop.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace fanout {

// How a child ended, from waitpid's status.
struct ChildExit {
  pid_t pid = 0;
  std::string name;
  int status = 0;
  // "exited with status 1", "was killed by signal 9 (SIGKILL)".
  std::string Describe() const;
};

class WorkerLauncher {
 public:
  virtual ~WorkerLauncher() = default;
  // The per-run secret that workers started from now on prove themselves with.
  virtual void SetLocalToken(const std::string& token) = 0;
  // Starts one worker named `name`. An error means it could not be executed at all.
  virtual Result<pid_t> Spawn(const std::string& name) = 0;
  // The fds to poll (readable when that child has exited).
  virtual std::vector<int> fds() const = 0;
  // Reaps the child behind a readable fd from fds().
  virtual std::optional<ChildExit> Reap(int fd) = 0;
  // Sends `sig` to the child `pid`; nothing if it is not our child.
  virtual void Kill(pid_t pid, int sig) = 0;
  // Sends `sig` to every child whose pid is not in `spare`.
  virtual void SignalAllExcept(const std::vector<pid_t>& spare, int sig) = 0;
  // Children started and not reaped.
  virtual size_t alive() const = 0;
  virtual bool IsChild(pid_t pid) const = 0;
  // Waits up to `grace` for every child to exit on its own, then kills and reaps the rest.
  virtual void StopAll(std::chrono::milliseconds grace) = 0;
};

}  // namespace fanout
