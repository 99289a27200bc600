// Test helpers: RAII temp dirs and running real binaries with captured output and a
// deadline. Integration tests run the built `fanout`/`fanout-worker` found via CMake
// (FANOUT_BIN_DIR), never via PATH.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/transport.h"

namespace fanout::testing {

// A fresh private directory, removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A named pipe at `path` whose reader never reads: a process writing to it stalls once
// the pipe is full, as behind a consumer that stopped (`| less` left waiting).
class StalledReader {
 public:
  explicit StalledReader(const std::string& path);  // makes the FIFO, opens its read end
  ~StalledReader();
  StalledReader(const StalledReader&) = delete;
  StalledReader& operator=(const StalledReader&) = delete;
  // Waits (bounded) until the pipe is full: its writer's next write waits for the reader.
  bool WaitFull(std::chrono::milliseconds timeout) const;

 private:
  int fd_ = -1;
};

// The binaries under test: FANOUT_BIN_DIR of the build, or $FANOUT_TEST_BIN_DIR when set
// (e.g. to check that a test fails on an older build).
std::string FanoutBin();  // path of build/bin/fanout
std::string WorkerBin();  // path of build/bin/fanout-worker

struct RunResult {
  int exit_code = -1;  // exit status, or 128+signal if killed by a signal
  bool timed_out = false;
  std::string out;
  std::string err;
};

struct RunOptions {
  std::string stdin_data;  // fed to the child's stdin (then closed)
  std::chrono::milliseconds timeout{30000};
  std::vector<std::string> env;  // extra NAME=VALUE entries
};

// Runs argv[0] with argv, feeding stdin and capturing stdout/stderr concurrently.
// A child still running at the deadline is killed (its process group) and timed_out set.
RunResult Run(const std::vector<std::string>& argv, const RunOptions& options = {});

// Starts argv in the background (own process group); Wait() reaps it. The destructor
// kills and reaps a child still running.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv, const std::string& stdout_path = "",
                 const std::string& stderr_path = "");
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }
  // Waits up to `timeout`; returns the exit code (128+sig if signalled) or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  void Signal(int sig);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& data);
bool FileExists(const std::string& path);
std::string Sha256(const std::string& data);  // via sha256sum, hex

// The next decodable protocol message on `socket` within `timeout` (heartbeats skipped
// unless `heartbeats`), or nothing. `router` says whether frames start with a routing id.
std::optional<Envelope> ReceiveWithin(zmq::socket_t& socket, bool router,
                                      std::chrono::milliseconds timeout, bool heartbeats = false);

// A direct-channel prefix (common/direct_channel.h) of header length `header`, flags
// `flags` and payload length `payload`, any of them out of bounds: for hostile clients,
// which EncodeDirect cannot be.
std::string DirectPrefix(uint32_t header, uint32_t flags, uint64_t payload);

// Checks `condition` every `every` until it holds (true) or `timeout` has passed (false,
// after a last check): for what gives no event to wait on (another process's state, a file
// another process writes, a server's listing).
bool PollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
               std::chrono::milliseconds every = std::chrono::milliseconds(10));

// Waits until the file at `path` contains `needle` (checking every 10 ms, up to `timeout`);
// returns the file's text then, or nothing at the deadline.
std::optional<std::string> WaitForText(const std::string& path, const std::string& needle,
                                       std::chrono::milliseconds timeout);

// The tcp:// endpoint a coordinator reports on stderr (in the file `err_path`) once it is
// listening, waiting up to 20 s; "" if none.
std::string ListeningEndpoint(const std::string& err_path);

// Pids of live processes whose /proc/PID/cmdline contains `needle` (excluding self).
std::vector<pid_t> ProcessesMatching(const std::string& needle);

// A process's peak resident size (VmHWM) in KiB, or -1 if it cannot be read.
int64_t PeakRssKiB(pid_t pid);

// The parent pid of `pid` (from /proc/PID/stat), or -1.
pid_t ParentOf(pid_t pid);

// Whether process `pid` still runs (a zombie does not).
bool Running(pid_t pid);

}  // namespace fanout::testing
