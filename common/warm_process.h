// WarmProcess: one long-lived child of `exec --warm`, fed chunk after chunk over the warm
// framing (warm_protocol.h, WARM_PROTOCOL.md), as a non-blocking state machine like
// Command (command.h): callers poll AppendFds() and call Advance(). WarmPool keeps the
// idle ones between chunks, so each worker slot (runner thread, async slot, local thread)
// starts its command once and reuses it.
// Ownership: a WarmProcess owns its child (own process group) and pipes; its destructor
// kills the group and reaps the child. Thread-safety: a WarmProcess is used by one thread
// at a time (it moves between threads through the pool); WarmPool is thread-safe.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/command.h"
#include "common/status.h"
#include "common/warm_protocol.h"

namespace fanout {

class WarmProcess {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Starts argv[0] (PATH lookup, no shell) with the caller's environment plus `extra_env`
  // and FANOUT_WARM=1. Errors as Command::Start's (with kFdLimitNote when fds ran out).
  static Result<std::unique_ptr<WarmProcess>> Start(const std::vector<std::string>& argv,
                                                    const EnvVars& extra_env);
  ~WarmProcess();  // kills the process group and reaps the child if still there
  WarmProcess(const WarmProcess&) = delete;
  WarmProcess& operator=(const WarmProcess&) = delete;

  // Sends one chunk (`data` must stay valid until the chunk is done). Precondition:
  // reusable() (or freshly started) and no chunk in flight.
  void BeginChunk(uint64_t chunk, uint32_t attempt, std::string_view data);
  // Waits (without a chunk) for the READY line: true once seen. For warm-up only.
  bool ready() const { return parser_.ready() && !parser_.broken(); }

  // What to poll before the next Advance; empty once the chunk is done.
  void AppendFds(std::vector<pollfd>& fds) const;
  // When Advance is due without fd readiness (a grace period, reap polling), if ever.
  std::optional<TimePoint> deadline() const;
  // Does the ready I/O without blocking; returns chunk_done().
  bool Advance();
  // Kills the process group now; the chunk (if any) ends "cancelled" once reaped.
  void Kill();

  // The chunk in flight has an outcome (and, if the process broke or died, it is reaped).
  bool chunk_done() const { return chunk_done_; }
  // Once chunk_done(): OK, or one line naming the cause (see WARM_PROTOCOL.md), e.g.
  //   "exec --warm: 'CMD' failed the chunk: <ERR message>"
  //   "exec --warm: 'CMD' exited with status 3 during the chunk: <stderr tail>"
  //   "exec --warm: 'CMD' broke the framing: <what>[: <stderr tail>]"
  //   "cancelled" after Kill().
  const Status& status() const { return status_; }
  std::string& output() { return parser_.body(); }  // the OK frame's bytes
  // CPU seconds the process used since the previous chunk ended (start-up included for
  // its first chunk).
  double chunk_cpu_seconds() const { return chunk_cpu_; }
  // The next chunk's CPU time counts from now (a warm-up's start-up is not a chunk's).
  void MarkCpu() { cpu_mark_ = CpuNow(); }
  // True when the process may take another chunk: alive, and in step with the framing.
  bool reusable() const;
  // False once the child is known to have exited (checked without blocking).
  bool Alive();

 private:
  friend class WarmPool;  // closes idle processes' stdin at shutdown
  struct State;
  explicit WarmProcess(std::unique_ptr<State> state);
  void Pump();
  void OnOutputClosed();
  void Finish(Status status);
  void TryReap();
  double CpuNow() const;

  std::unique_ptr<State> state_;
  WarmResponseParser parser_;
  std::string err_tail_;  // stderr since the last successful chunk
  Status status_;
  double cpu_mark_ = 0;  // CpuNow() when the previous chunk ended
  double chunk_cpu_ = 0;
  bool in_flight_ = false;
  bool chunk_done_ = false;
  bool killed_ = false;
};

// Idle warm processes, by key (the worker name and the command). Take() hands one out
// (live ones only), Give() takes it back after a chunk. A slot therefore holds at most one
// process, and a process is never shared by two attempts. The destructor closes their
// stdin (the command's cue to exit), waits briefly, then kills what is left.
class WarmPool {
 public:
  static WarmPool& Global();
  ~WarmPool();

  std::unique_ptr<WarmProcess> Take(const std::string& key);
  void Give(const std::string& key, std::unique_ptr<WarmProcess> process);
  size_t idle() const;

 private:
  mutable std::mutex mu_;
  std::multimap<std::string, std::unique_ptr<WarmProcess>> idle_;
};

}  // namespace fanout
