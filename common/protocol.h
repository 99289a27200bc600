// The wire protocol between coordinator (ROUTER) and workers (DEALER): message kinds and
// their fields as plain structs. common/PROTOCOL.md is the normative description; the
// codec (codec.h) maps these structs to msgpack header frames and back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/task.h"

namespace fanout {

// Bumped on any incompatible change; peers of another version are refused at HELLO.
inline constexpr uint32_t kProtocolVersion = 1;

// The largest header frame accepted (payloads travel in their own frame).
inline constexpr size_t kMaxHeaderBytes = 1 << 20;
// Largest duration a message may carry (cpu/wall seconds): about 31 years.
inline constexpr double kMaxSeconds = 1e9;

enum class MessageKind : uint8_t {
  kHello = 1,      // worker -> coordinator: who I am, what I run, how many slots
  kWelcome = 2,    // coordinator -> worker: accepted; the job and heartbeat settings
  kTask = 3,       // coordinator -> worker: run one chunk attempt (payload frame follows)
  kResult = 4,     // worker -> coordinator: one attempt's outcome (payload frame follows)
  kHeartbeat = 5,  // either way: I am alive (any message counts as one)
  kCancel = 6,     // coordinator -> worker: abandon this attempt (timeout, speculation lost)
  kShutdown = 7,   // coordinator -> worker: the job is over; a --once worker exits
  kReject = 8,     // coordinator -> worker: refused (wrong version, not allowed)
  kTasks = 9,      // coordinator -> worker: several chunk attempts in one message
  kResults = 10,   // worker -> coordinator: several attempts' outcomes in one message
  kStarted = 11,   // worker -> coordinator: these attempts entered a running slot
  kLeave = 12,     // worker -> coordinator: draining (hands attempts back); with `bye`, gone
};

// Most attempts one TASKS or RESULTS message may carry.
inline constexpr uint32_t kMaxBatch = 1024;

std::string_view KindName(MessageKind kind);

struct Hello {
  std::string worker_id;
  std::string host;
  std::string version;  // fanout release, e.g. "0.1.0" (informational)
  int64_t pid = 0;
  uint32_t slots = 1;  // attempts the worker runs at once
  std::vector<std::string> tasks;
  uint32_t protocol = kProtocolVersion;  // the sender's version (carried in "v")
  // "local": the secret its launching coordinator handed it (--local-token-fd); proves the
  // worker is one the coordinator started. "" = any other worker.
  std::string local_token = {};
  uint32_t batch = 0;  // most attempts per TASKS message it takes (0: send TASKs only)
  // "starts": it sends STARTED when WELCOME asks for it, so that its loss charges only the
  // attempts it started.
  bool starts = false;
  // "leave": it drains on SIGTERM and says so with LEAVE when WELCOME asks for it.
  bool leave = false;
  // "ranges": it takes range chunks in TASKS (the `lo`, `hi` columns).
  bool ranges = false;
  // "echo": it can answer a RESULT whose output is exactly the attempt's input with `echo`
  // and no payload, when WELCOME allows it (a pass-through task such as identity).
  bool echo = false;
  bool operator==(const Hello&) const = default;
};

struct Welcome {
  std::string job_id;
  uint32_t heartbeat_ms = 500;
  uint32_t liveness = 4;  // intervals missed before the peer is presumed dead
  // "in": for a proven local worker, the input file to map (e.g. /proc/PID/fd/N); its
  // TASKs then carry `slice` instead of a payload. "" = payloads only.
  std::string input_path = {};
  bool starts = false;       // "starts": send STARTED (to a worker whose HELLO offered it)
  uint64_t max_message = 0;  // "max": the coordinator's --max-message in bytes; 0 = not said
  // "ok": exit statuses of an exec command that count as success (--ok-exit); absent or
  // empty = {0}. Applies to every TASK of this session.
  std::vector<uint32_t> ok_exit = {};
  // "leave": the worker may send LEAVE (to a worker whose HELLO offered it).
  bool leave = false;
  // "echo": the worker may answer `echo` (to a worker whose HELLO offered it): the
  // coordinator still has every attempt's input and takes it as the output.
  bool echo = false;
  bool operator==(const Welcome&) const = default;
};

// A chunk passed by reference: bytes [offset, offset + length) of WELCOME's input file,
// preceded by the file's first `header` bytes (--header) when that is not 0.
struct FileSlice {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t header = 0;
  bool operator==(const FileSlice&) const = default;
};

struct TaskMsg {
  std::string job_id;
  uint64_t chunk = 0;
  uint32_t attempt = 0;
  std::string task;
  std::vector<std::string> args;
  std::optional<IntRange> range;  // range chunks carry no payload
  uint64_t records = 0;
  std::optional<FileSlice> slice = {};  // by reference ("off", "len", "hlen"): no payload
  // "ok": exit statuses of an exec command that count as success for this attempt (its
  // job's --ok-exit); absent or empty = WELCOME's. A warm worker serves many jobs.
  std::vector<uint32_t> ok_exit = {};
  bool operator==(const TaskMsg&) const = default;
};

struct ResultMsg {
  uint64_t chunk = 0;
  uint32_t attempt = 0;
  bool ok = true;
  std::string error;  // set when !ok
  double cpu_seconds = 0;
  double wall_seconds = 0;
  // "echo": the output is exactly the attempt's input (header included), sent as no
  // payload; only when WELCOME said "echo". Ignored on a failed attempt.
  bool echo = false;
  bool operator==(const ResultMsg&) const = default;
};

// Several attempts of one job's task, for short chunks: one message instead of one per
// chunk. The payload frame holds the chunks' bytes back to back; `bytes[i]` is chunk i's
// share. Range chunks go only to a worker that said "ranges": one `lo` and `hi` each per
// attempt, every `bytes[i]` 0 and no payload.
struct TaskBatch {
  std::string job_id;
  std::string task;
  std::vector<std::string> args;
  std::vector<uint64_t> chunks;
  std::vector<uint32_t> attempts;
  std::vector<uint64_t> records;
  std::vector<uint64_t> bytes;
  std::vector<uint32_t> ok_exit = {};     // "ok", as TASK's, for every attempt of the batch
  std::vector<int64_t> lo = {}, hi = {};  // range chunks only: each attempt's range
  bool operator==(const TaskBatch&) const = default;
};

// Several attempts' outcomes. The payload frame holds the outputs of the ok ones back to
// back; `bytes[i]` is result i's share (0 when it failed).
struct ResultBatch {
  std::vector<ResultMsg> results;
  std::vector<uint64_t> bytes;
  // "echo": the indexes (into `results`) of the attempts answered as ResultMsg::echo, each
  // with 0 bytes; absent when none. Decoding sets those results' `echo`.
  std::vector<uint32_t> echo = {};
  bool operator==(const ResultBatch&) const = default;
};

// Attempts that entered one of the worker's running slots since its last STARTED.
struct Started {
  std::vector<uint64_t> chunks;
  std::vector<uint32_t> attempts;
  bool operator==(const Started&) const = default;
};

// The worker is leaving (drain on SIGTERM): it takes no more attempts and hands back the
// listed ones, which it will not run (never started, or stopped when its grace ran out).
// With `bye`, it has ended every attempt it held and is gone.
struct Leave {
  std::vector<uint64_t> chunks;
  std::vector<uint32_t> attempts;
  bool bye = false;
  bool operator==(const Leave&) const = default;
};

struct Heartbeat {
  bool operator==(const Heartbeat&) const = default;
};

struct Cancel {
  uint64_t chunk = 0;
  uint32_t attempt = 0;
  bool operator==(const Cancel&) const = default;
};

struct Shutdown {
  std::string reason;
  bool operator==(const Shutdown&) const = default;
};

struct Reject {
  std::string reason;
  uint32_t protocol = kProtocolVersion;  // the version the coordinator speaks
  bool operator==(const Reject&) const = default;
};

// In MessageKind order: KindOf is the index + 1.
using Message = std::variant<Hello, Welcome, TaskMsg, ResultMsg, Heartbeat, Cancel, Shutdown,
                             Reject, TaskBatch, ResultBatch, Started, Leave>;

MessageKind KindOf(const Message& message);

}  // namespace fanout
