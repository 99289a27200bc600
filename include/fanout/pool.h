// fanout/pool.h: run a task over chunks from C++, like Python's multiprocessing.Pool or
// concurrent.futures. A Pool runs registered tasks (fanout/task.h) in one of four modes:
// serial (the calling thread), threads (in this process), processes (local worker
// processes over ZeroMQ, started by the first call that needs them and kept warm until the
// Pool is destroyed) or remote (workers started elsewhere connect to an endpoint, which
// stays bound for the Pool's life). Results come back in chunk order (map), as futures
// (submit) or as they finish (as_completed); a chunk that fails every attempt surfaces as
// a TaskError naming the chunk and the reason. Pool::cancel() stops every job of a pool
// (and ~Pool cancels): unfinished chunks end with a Cancelled error.
// Thread-safety: one Pool may be used from several threads; each call is its own job. In
// processes and remote mode the calls share the Pool's workers and take turns on them
// (one job at a time); serial and threads mode calls run side by side.
// Logging: the library logs through its own spdlog logger named "fanout" (stderr,
// warnings and up); spdlog::get("fanout") changes its level or sinks. It never touches
// spdlog's default logger.
//
// Naming, for the whole public API (include/fanout/*.h): types CamelCase (Pool,
// PoolOptions, TaskChunk), functions and methods snake_case (map, as_completed,
// split_lines, register_task), enum values kName, macros FANOUT_NAME. An option or property
// is a getter and a chainable setter of the same name: options.workers(4), options.workers().
// ABI: libfanout.so exports only what is marked FANOUT_API (fanout/export.h); Pool,
// PoolOptions and CompletionStream keep their data behind a pointer, so adding an option
// or a private member keeps the ABI.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fanout/export.h"
#include "fanout/split.h"
#include "fanout/task.h"

namespace fanout {

struct PoolSettings;  // lib/pool_settings.h: what a PoolOptions holds (not public)

enum class PoolMode {
  kSerial,     // one chunk after another on the calling thread (the baseline)
  kThreads,    // `workers` threads in this process
  kProcesses,  // `workers` local worker processes (this program when fanout::init() was
               // called first in main, else `worker_binary` or fanout-worker)
  kRemote,     // no local workers: listen on `endpoint` for `fanout-worker --connect` ones
};

// How a Pool runs: each option is a chainable setter and a getter of the same name,
//   fanout::Pool pool(fanout::PoolOptions().mode(fanout::PoolMode::kThreads).workers(4));
// The fields live behind a pointer (lib/pool_settings.h), so new options keep the ABI.
// A value type: copyable and movable (a moved-from PoolOptions reads as the defaults).
class FANOUT_API PoolOptions {
 public:
  PoolOptions();
  PoolOptions(const PoolOptions& other);
  PoolOptions(PoolOptions&& other) noexcept;
  PoolOptions& operator=(const PoolOptions& other);
  PoolOptions& operator=(PoolOptions&& other) noexcept;
  ~PoolOptions();

  // kProcesses by default.
  PoolMode mode() const;
  PoolOptions& mode(PoolMode mode);
  // Threads or local processes; 0 (the default) = the number of cores.
  uint32_t workers() const;
  PoolOptions& workers(uint32_t workers);
  // kRemote (required) and kProcesses (optional): bind here so workers started elsewhere
  // can join, e.g. "ipc:///tmp/fanout.sock" or "tcp://0.0.0.0:5555" (with CURVE, below).
  const std::string& endpoint() const;
  PoolOptions& endpoint(std::string endpoint);
  // Wait for this many workers before dispatch (0).
  uint32_t min_workers() const;
  PoolOptions& min_workers(uint32_t min_workers);
  // kRemote: fail if no worker joins in this time; 0 (the default) = wait.
  std::chrono::milliseconds wait_timeout() const;
  PoolOptions& wait_timeout(std::chrono::milliseconds wait_timeout);
  // Extra attempts of a chunk whose task failed (threw, or its command failed or timed
  // out). 0 by default, as `fanout run --retries`: a deterministic failure fails at once.
  // A lost worker process does not use them (its chunks are re-run, up to 5 losses each).
  uint32_t retries() const;
  PoolOptions& retries(uint32_t retries);
  // Per attempt (processes, remote); 0 (the default) = none.
  std::chrono::milliseconds timeout() const;
  PoolOptions& timeout(std::chrono::milliseconds timeout);
  // kProcesses: override the worker program ("" = see README "Where user tasks run").
  const std::string& worker_binary() const;
  PoolOptions& worker_binary(std::string worker_binary);
  // Appended to each local worker's arguments.
  const std::vector<std::string>& worker_args() const;
  PoolOptions& worker_args(std::vector<std::string> worker_args);
  // Task plugins (fanout/plugin.h) loaded into this process and passed to local workers.
  const std::vector<std::string>& plugins() const;
  PoolOptions& plugins(std::vector<std::string> plugins);
  // Workers on other machines (README "Running on several machines"): the pool's secret
  // certificate and a directory of the public certificates of workers to admit, both from
  // `fanout keygen`. A tcp:// endpoint (loopback too: any local user can reach it) needs
  // them, or `insecure(true)` (anyone who reaches the port can join); otherwise the call
  // throws PoolError. ipc:// endpoints are guarded by file permissions and need neither.
  const std::string& curve_secret() const;
  PoolOptions& curve_secret(std::string curve_secret);
  const std::string& authorized_keys() const;
  PoolOptions& authorized_keys(std::string authorized_keys);
  bool insecure() const;
  PoolOptions& insecure(bool insecure);
  // Run every call on a `fanout server` (README "Running a cluster") instead: its warm
  // workers, shared with the server's other jobs. "ipc:///path/server.sock" on this machine,
  // or "tcp://HOST:PORT" with `server_key` (the server's public certificate) and
  // `client_secret` (this client's secret certificate, admitted by the server's
  // --client-keys). The server's workers run the tasks they know (built-ins, exec, the
  // server's plugins), not this program's; `mode`, `workers`, `endpoint`, the worker and
  // plugin options and `min_workers` are the server's business and are not used.
  // `retries` and `timeout` apply. A call the server has not finished when it stops (or a
  // server restart) fails with PoolError; Pool::cancel() cancels the call on the server.
  const std::string& server() const;
  PoolOptions& server(std::string server);
  const std::string& server_key() const;
  PoolOptions& server_key(std::string server_key);
  const std::string& client_secret() const;
  PoolOptions& client_secret(std::string client_secret);
  // With `server`: the calls' priority among the server's jobs, as `fanout run --priority`
  // (-1000 to 1000; 0 by default): a call of higher priority takes the free worker slots
  // first. Outside that range a call throws PoolError.
  int32_t priority() const;
  PoolOptions& priority(int32_t priority);

 private:
  friend const PoolSettings& SettingsOf(const PoolOptions& options);  // for lib/

  // Null only after a move (then the getters read the defaults).
  std::unique_ptr<PoolSettings> settings_;
};

// A chunk failed every attempt.
// what(): "chunk 3 failed on worker local-2 (attempt 3; 3 failures, retries 2): REASON", or
// "(attempt 6; 5 workers lost under it, crash limit 5)" when its workers kept dying.
class FANOUT_API TaskError : public std::runtime_error {
 public:
  TaskError(uint64_t chunk, std::string reason, const std::string& message)
      : std::runtime_error(message), chunk_(chunk), reason_(std::move(reason)) {}
  // The chunk's index in the call (map, as_completed), or for submit() the submission's
  // number (0 for the pool's first submit, then 1, 2, ...).
  uint64_t chunk() const { return chunk_; }
  const std::string& reason() const { return reason_; }

 private:
  uint64_t chunk_;
  std::string reason_;
};

// The call could not run at all: unknown task, bad arguments, no worker, bad endpoint.
class FANOUT_API PoolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The chunk did not finish because its job was cancelled: Pool::cancel(), ~Pool (for
// submitted chunks) or destroying a CompletionStream before its end. A PoolError, so a
// catch of PoolError sees it too. what(): "chunk 3 cancelled".
class FANOUT_API Cancelled : public PoolError {
 public:
  using PoolError::PoolError;
};

// One finished chunk of an as_completed stream.
struct Completed {
  uint64_t index = 0;        // position in the chunks passed in
  std::string output;        // valid when !error
  std::exception_ptr error;  // a TaskError or PoolError (Cancelled after Pool::cancel)
  // The output, or the error rethrown.
  const std::string& get() const {
    if (error) std::rethrow_exception(error);
    return output;
  }
};

// Finished chunks in completion order. Owns the job: destroying the stream before its end
// cancels the chunks not finished yet (as Pool::cancel does for this job alone) and returns
// once the job stopped. Iterate with next() or a range-for, from one thread. The stream may
// outlive its Pool.
class FANOUT_API CompletionStream {
 public:
  struct State;
  explicit CompletionStream(std::shared_ptr<State> state);
  CompletionStream(CompletionStream&&) noexcept;
  ~CompletionStream();
  // Blocks until the next chunk finishes; nullopt after the last one.
  std::optional<Completed> next();

  class iterator {
   public:
    using value_type = Completed;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(CompletionStream* s) : stream_(s) { ++*this; }
    Completed& operator*() { return *current_; }
    Completed* operator->() { return &*current_; }
    iterator& operator++() {
      current_ = stream_->next();
      if (!current_) stream_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(const iterator& o) const { return stream_ == o.stream_; }

   private:
    CompletionStream* stream_ = nullptr;
    std::optional<Completed> current_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  std::shared_ptr<State> state_;
};

class FANOUT_API Pool {
 public:
  explicit Pool(PoolOptions options = {});
  // Shorthand for the common case: PoolOptions with just `mode` and `workers` set.
  explicit Pool(PoolMode mode, uint32_t workers = 0);
  // Cancels (cancel()) the submitted chunks not finished yet, then returns: their futures
  // hold Cancelled. No other call of this pool may still be running on another thread.
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs `task` on every chunk; results in chunk order. Throws TaskError for the first
  // chunk that failed every attempt (the rest are abandoned), PoolError if it cannot run.
  std::vector<std::string> map(std::string_view task, const std::vector<std::string>& chunks,
                               const std::vector<std::string>& args = {});
  // The same over the integers [lo, hi) cut into `chunks` sub-ranges (array_split sizes);
  // tasks see each as lines of numbers, or as a NumberRange with TaskOptions::raw_ranges.
  std::vector<std::string> map_range(std::string_view task, int64_t lo, int64_t hi, uint64_t chunks,
                                     const std::vector<std::string>& args = {});
  // Queues one chunk; submissions made close together run as one job. In threads mode a
  // chunk submitted while others run starts as soon as one of the `workers` threads is
  // free; in processes and remote mode it waits for the running job (calls take turns).
  std::future<std::string> submit(std::string_view task, std::string chunk,
                                  const std::vector<std::string>& args = {});
  // Runs `task` on every chunk, yielding each as it finishes (failures included, so one
  // bad chunk does not stop the others).
  CompletionStream as_completed(std::string_view task, std::vector<std::string> chunks,
                                const std::vector<std::string>& args = {});

  // Cancels every job this pool runs or has queued, from any thread, and returns without
  // waiting for them to stop:
  //  - map and map_range calls in progress throw Cancelled (a TaskError of a chunk that had
  //    already failed for good wins) once their job has stopped;
  //  - submit(): queued chunks' futures get Cancelled at once, and those of the job running
  //    get it when it stops; chunks that finished keep their results;
  //  - as_completed streams made by this pool yield Cancelled for their unfinished chunks.
  // Stopping is prompt: no more chunks are handed out; a running `exec` command is killed
  // (as on Ctrl-C in `fanout run`); a task function already running in this process
  // (serial, threads) finishes its chunk, whose result is dropped; in processes and remote
  // mode the workers are told the job is over, which cancels their running attempts, and
  // the call returns once the pool's own worker processes have stopped. The pool stays
  // usable: calls made after cancel() returns run normally.
  void cancel();

  const PoolOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fanout
