#include "coordinator/coordinator.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <zmq.hpp>

#include "common/curve.h"
#include "common/transport.h"
#include "common/zap.h"
#include "coordinator/interrupt.h"
#include "coordinator/local_input.h"
#include "coordinator/local_launcher.h"
#include "coordinator/private_dir.h"

namespace fanout {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint32_t kMaxPrefetch = 64;  // attempts queued on a worker beyond its slots
constexpr Micros kPipeline{4000};      // of work queued per slot when chunks are short
// Attempts go out several to a TASKS message (to workers that take them) when the median
// attempt is under kBatchBelow and the chunk is at most kBatchChunkBytes; a batch holds
// at most kBatchBytes of input. Per-message costs (encode, frames, wake-ups on both sides)
// then stop dominating microsecond chunks; longer or bigger chunks gain nothing from it.
constexpr Micros kBatchBelow{500};
constexpr size_t kBatchChunkBytes = 64 * 1024;
constexpr size_t kBatchBytes = 1024 * 1024;

std::string NewJobId() {
  std::random_device rd;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return buf;
}

class EventLoop {
 public:
  EventLoop(const PlannedJob& job, uint32_t workers, Scheduler& scheduler, ResultSink& sink,
            RunStats& stats)
      : job_(job),
        config_(job.config),
        local_workers_(workers),
        scheduler_(scheduler),
        sink_(sink),
        stats_(stats),
        heartbeat_(config_.heartbeat),
        max_respawns_(config_.max_respawns >= 0 ? static_cast<uint64_t>(config_.max_respawns)
                                                : 2ull * workers) {}

  ModeResult Run();

 private:
  // A connected, welcomed worker.
  struct Peer {
    WorkerIndex index = 0;
    std::string id;  // ROUTER routing id
    std::string name;
    pid_t pid = 0;
    uint32_t slots = 1;
    uint32_t batch = 0;  // most attempts per TASKS message it takes (HELLO)
    bool local = false;
    bool by_ref = false;  // proved local (HELLO's token): TASKs carry file slices
    Clock::time_point last_seen;
  };

  // Attempts for one peer collected by Fill and sent as one TASKS message.
  struct PendingBatch {
    TaskBatch msg;
    std::vector<std::string_view> bytes;
    size_t total = 0;
  };

  Status Start();
  // With --local-input ref: a token for the workers we start and the input's path for them.
  Status StartLocalInput();
  Result<std::vector<std::string>> StartCurve(SocketSecurity& security);
  void Step(Clock::time_point now, const std::vector<zmq::pollitem_t>& items);
  Clock::time_point NextWakeup(Clock::time_point now) const;
  void OnMessage(Envelope& env, Clock::time_point now);
  void OnHello(const std::string& id, const Hello& hello, Clock::time_point now);
  // `output` is the result's payload (empty when it has none).
  void OnResult(Peer& peer, const ResultMsg& result, Blob output, Clock::time_point now);
  void OnResults(Peer& peer, const ResultBatch& batch, std::optional<zmq::message_t>& payload,
                 Clock::time_point now);
  void OnChildExit(const ChildExit& exit, Clock::time_point now);
  void LoseWorker(WorkerIndex index, const std::string& reason, Clock::time_point now);
  void CheckLiveness(Clock::time_point now);
  void SendCancels(const std::vector<CancelOrder>& orders, const std::string& why);
  void Fill(Peer& peer, Clock::time_point now);
  // Whether chunk `chunk` may go to `peer` in a TASKS batch.
  bool Batchable(const Peer& peer, uint64_t chunk) const;
  // Sends one attempt as a TASK; false if the peer is unreachable.
  bool SendTask(const Peer& peer, const Assignment& a);
  // Sends the collected batch as one TASKS message (a TASK if it holds one attempt).
  bool SendBatch(const Peer& peer, PendingBatch& batch);
  // Attempts queued on `peer` beyond its running ones: deeper for shorter chunks.
  uint32_t PrefetchDepth(const Peer& peer);
  // Free slots on the other workers, counting local workers still starting as one each.
  uint64_t IdleSlotsElsewhere(const Peer& self) const;
  // False until --min-workers have joined (then true for the rest of the job).
  bool Dispatching();
  // A reason to give up waiting for workers (--wait-timeout), or "".
  std::string WaitExpired(Clock::time_point now) const;
  // Records the span of an attempt that ended without a result (cancelled, timed out, lost).
  void EndAttempt(uint64_t chunk, uint32_t attempt, const std::string& why);
  void MaybeRespawn(Clock::time_point now);
  void Note(const Status& s) {
    if (!s.ok() && error_.empty()) error_ = s.message();
  }
  Peer* FindPeer(WorkerIndex index);

  const PlannedJob& job_;
  const JobConfig& config_;
  uint32_t local_workers_;
  Scheduler& scheduler_;
  ResultSink& sink_;
  RunStats& stats_;
  milliseconds heartbeat_;
  uint64_t max_respawns_;

  // Declaration order is destruction order in reverse: sockets close before the context,
  // children die before the directory holding their endpoint is removed.
  PrivateDir dir_;
  zmq::context_t context_{1};
  std::unique_ptr<ZapAuthenticator> zap_;  // with CURVE: admits authorized worker keys
  std::optional<zmq::socket_t> router_;
  std::optional<LocalLauncher> launcher_;
  std::string job_id_ = NewJobId();
  std::string local_token_;         // "" = every worker gets payloads
  std::string input_path_;          // what by-reference workers map (WELCOME's "in")
  uint64_t median_checked_at_ = 0;  // chunks done when median_ was last read
  Micros median_{0};
  std::map<std::string, Peer> peers_;  // by routing id
  std::map<WorkerIndex, std::string> peer_of_;
  WorkerIndex next_index_ = 0;
  uint64_t spawned_ = 0;
  uint64_t respawns_used_ = 0;
  uint32_t consecutive_deaths_ = 0;
  std::optional<Clock::time_point> respawn_at_;
  std::string last_loss_;  // why the most recent worker was lost
  Clock::time_point next_heartbeat_;
  std::string error_;  // a fatal write error
  bool dispatching_ = false;
  Clock::time_point started_ = Clock::now();
  // Attempts sent and not yet ended: (chunk, attempt) -> (worker, dispatch time), for spans.
  std::map<std::pair<uint64_t, uint32_t>, std::pair<WorkerIndex, double>> in_flight_;
};

// With CURVE, starts the ZAP handler and gives local workers a throwaway key pair that it
// admits, passed as certificate files in the private directory. Returns their extra flags.
Result<std::vector<std::string>> EventLoop::StartCurve(SocketSecurity& security) {
  if (!config_.curve_server) return std::vector<std::string>{};
  auto local = GenerateCurveKeyPair();
  if (!local.ok()) return local.status();
  std::set<std::string> allowed(config_.authorized_keys.begin(), config_.authorized_keys.end());
  allowed.insert(local->public_key);
  auto zap = ZapAuthenticator::Start(context_, std::move(allowed));
  if (!zap.ok()) return zap.status();
  zap_ = std::move(zap).value();
  security.curve_server = *config_.curve_server;
  std::string server_cert = dir_.path() + "/coordinator.key";
  std::string local_cert = dir_.path() + "/local-worker.key";
  Status s = WriteCurveCertificates(server_cert, {config_.curve_server->public_key, ""});
  if (s.ok()) s = WriteCurveCertificates(local_cert, *local);
  if (!s.ok()) return s;
  return std::vector<std::string>{"--curve-server-key", server_cert, "--curve-secret",
                                  local_cert + "_secret"};
}

Status EventLoop::Start() {
  if (dir_.path().empty()) return Status::Error("cannot create a private temporary directory");
  std::string endpoint = config_.listen;
  if (endpoint.empty()) endpoint = "ipc://" + dir_.path() + "/coordinator.sock";
  SocketSecurity security;
  security.max_message = config_.max_message;
  auto curve_flags = StartCurve(security);
  if (!curve_flags.ok()) return curve_flags.status();
  auto router = MakeRouter(context_, endpoint, security);
  if (!router.ok()) return router.status();
  router_.emplace(std::move(router).value());
  endpoint = LastEndpoint(*router_);
  if (!config_.listen.empty()) {
    if (local_workers_ == 0) {
      spdlog::warn("waiting for workers: fanout-worker --connect {}{}",
                   ConnectableEndpoint(endpoint),
                   config_.curve_server ? " --curve-server-key SERVER_PUBLIC_CERT --curve-secret "
                                          "WORKER_secret"
                                        : "");
    } else {
      spdlog::info("listening on {} for more workers", ConnectableEndpoint(endpoint));
    }
  }
  auto bin = FindWorkerBinary(config_.worker_bin);
  if (!bin.ok()) return bin.status();
  std::vector<std::string> flags = {"--once",
                                    "--slots",
                                    std::to_string(config_.local_slots),
                                    "--heartbeat",
                                    std::to_string(heartbeat_.count()) + "ms",
                                    "--max-message",
                                    std::to_string(config_.max_message)};
  flags.insert(flags.end(), curve_flags->begin(), curve_flags->end());
  flags.insert(flags.end(), config_.worker_args.begin(), config_.worker_args.end());
  launcher_.emplace(*bin, endpoint, std::move(flags), config_.adopt_orphans);
  if (Status s = StartLocalInput(); !s.ok()) return s;
  for (uint32_t i = 0; i < local_workers_; ++i) {
    auto pid = launcher_->Spawn("local-" + std::to_string(++spawned_));
    if (!pid.ok()) return pid.status();
  }
  stats_.workers = local_workers_;
  next_heartbeat_ = Clock::now() + heartbeat_;
  return Status::Ok();
}

Status EventLoop::StartLocalInput() {
  input_path_ = config_.local_input_by_ref ? LocalInputPath(job_.input) : "";
  if (input_path_.empty()) return Status::Ok();
  auto token = NewLocalToken();
  if (!token.ok()) return token.status();
  local_token_ = *token;
  launcher_->SetEnv(kLocalTokenEnv, local_token_);
  return Status::Ok();
}

EventLoop::Peer* EventLoop::FindPeer(WorkerIndex index) {
  auto it = peer_of_.find(index);
  if (it == peer_of_.end()) return nullptr;
  auto p = peers_.find(it->second);
  return p == peers_.end() ? nullptr : &p->second;
}

void EventLoop::EndAttempt(uint64_t chunk, uint32_t attempt, const std::string& why) {
  auto it = in_flight_.find({chunk, attempt});
  if (it == in_flight_.end()) return;
  double now = stats_.telemetry.Now();
  AttemptSpan span = job_.Span(stats_.telemetry, chunk, attempt, it->second.first,
                               now - it->second.second, 0, Status::Error(why));
  span.measured = false;
  stats_.telemetry.RecordAttempt(std::move(span));
  in_flight_.erase(it);
}

void EventLoop::SendCancels(const std::vector<CancelOrder>& orders, const std::string& why) {
  for (const CancelOrder& order : orders) {
    EndAttempt(order.chunk, order.attempt, why);
    if (Peer* peer = FindPeer(order.worker)) {
      spdlog::debug("cancel chunk {} attempt {} on {}: {}", order.chunk, order.attempt, peer->name,
                    why);
      SendTo(*router_, peer->id, Cancel{order.chunk, order.attempt});
    }
  }
}

void EventLoop::LoseWorker(WorkerIndex index, const std::string& reason, Clock::time_point now) {
  Peer* peer = FindPeer(index);
  if (!peer) return;
  std::string name = peer->name;
  spdlog::warn("worker {} lost: {}", name, reason);
  last_loss_ = "worker " + name + " " + reason;
  if (peer->local && launcher_) launcher_->Kill(peer->pid, SIGKILL);  // a hung one stays dead
  std::string id = peer->id;
  peers_.erase(id);
  peer_of_.erase(index);
  stats_.telemetry.workers_running = static_cast<uint32_t>(peers_.size());
  std::vector<std::pair<uint64_t, uint32_t>> lost;
  for (const auto& [key, flight] : in_flight_) {
    if (flight.first == index) lost.push_back(key);
  }
  for (const auto& [chunk, attempt] : lost) EndAttempt(chunk, attempt, "worker lost: " + reason);
  scheduler_.RemoveWorker(index, "worker " + reason, now);
  Note(sink_.SyncFailures());
}

void EventLoop::OnHello(const std::string& id, const Hello& hello, Clock::time_point now) {
  if (hello.protocol != kProtocolVersion) {
    spdlog::warn("refusing worker {} on {}: protocol version {} (this coordinator speaks {})",
                 hello.worker_id, hello.host, hello.protocol, kProtocolVersion);
    SendTo(*router_, id,
           Reject{"protocol version " + std::to_string(hello.protocol) +
                      " is not supported; this coordinator speaks version " +
                      std::to_string(kProtocolVersion),
                  kProtocolVersion});
    ++stats_.rejected_messages;
    return;
  }
  if (std::find(hello.tasks.begin(), hello.tasks.end(), config_.task) == hello.tasks.end()) {
    spdlog::warn("refusing worker {}: it does not provide task '{}'", hello.worker_id,
                 config_.task);
    SendTo(*router_, id,
           Reject{"task '" + config_.task + "' is not available on this worker", kProtocolVersion});
    // Local workers all run the same program: none of them will ever have the task.
    if (launcher_ && launcher_->IsChild(static_cast<pid_t>(hello.pid)) && config_.listen.empty()) {
      Note(Status::Error("local worker " + hello.worker_id + " does not provide task '" +
                         config_.task + "'"));
    }
    return;
  }
  if (auto it = peers_.find(id); it != peers_.end()) {
    LoseWorker(it->second.index, "said HELLO again", now);  // restarted behind the same id
  }
  Peer peer;
  peer.index = next_index_++;
  peer.id = id;
  peer.name = hello.worker_id;
  peer.pid = static_cast<pid_t>(hello.pid);
  peer.local = launcher_ && launcher_->IsChild(peer.pid);
  peer.by_ref = LocalTokenMatches(hello.local_token, local_token_);
  peer.slots = hello.slots;
  peer.batch = hello.batch;
  peer.last_seen = now;
  stats_.telemetry.SetWorker(peer.index, {peer.name, hello.host, hello.slots});
  scheduler_.AddWorker(peer.index, hello.slots, hello.slots + kMaxPrefetch);
  spdlog::debug("worker {} joined (host {}, pid {}, {} slots, input {})", peer.name, hello.host,
                hello.pid, hello.slots, peer.by_ref ? "by reference" : "as payloads");
  peer_of_[peer.index] = id;
  auto& stored = peers_[id] = std::move(peer);
  stats_.telemetry.workers_running = static_cast<uint32_t>(peers_.size());
  SendTo(*router_, id,
         Welcome{job_id_, static_cast<uint32_t>(heartbeat_.count()), config_.liveness,
                 stored.by_ref ? input_path_ : ""});
  Fill(stored, now);
}

void EventLoop::OnResult(Peer& peer, const ResultMsg& result, Blob output, Clock::time_point now) {
  bool ok = result.ok;
  std::string error = result.error;
  if (ok) {
    if (Status vetted = sink_.Vet(output.view()); !vetted.ok()) {
      ok = false;
      error = vetted.message();
    }
  }
  ResultOutcome outcome =
      scheduler_.OnResult(peer.index, result.chunk, result.attempt, ok, error, now);
  if (auto it = in_flight_.find({result.chunk, result.attempt});
      it != in_flight_.end() && it->second.first == peer.index) {
    double since_dispatch = stats_.telemetry.Now() - it->second.second;
    AttemptSpan span = job_.Span(stats_.telemetry, result.chunk, result.attempt, peer.index,
                                 std::min(result.wall_seconds, since_dispatch), output.size(),
                                 ok ? Status::Ok() : Status::Error(error));
    span.cpu_seconds = result.cpu_seconds;
    stats_.telemetry.RecordAttempt(std::move(span));
    in_flight_.erase(it);
  }
  switch (outcome.verdict) {
    case Verdict::kAccepted:
      spdlog::debug("chunk {} attempt {} done on {}", result.chunk, result.attempt, peer.name);
      consecutive_deaths_ = 0;
      Note(sink_.Accept(result.chunk, std::move(output), result.cpu_seconds));
      SendCancels(outcome.cancel, "cancelled: another attempt won");
      break;
    case Verdict::kRetrying:
    case Verdict::kChunkFailed:
      spdlog::warn("{} attempt {} failed on worker {}: {}", job_.Describe(result.chunk),
                   result.attempt, peer.name, error);
      break;
    case Verdict::kLateDuplicate:
      spdlog::debug("dropped late result for chunk {} attempt {} from {}", result.chunk,
                    result.attempt, peer.name);
      break;
    case Verdict::kUnknown:
      spdlog::warn("rejected result for unknown chunk {} attempt {} from {}", result.chunk,
                   result.attempt, peer.name);
      ++stats_.rejected_messages;
      break;
  }
  Note(sink_.SyncFailures());
}

void EventLoop::OnResults(Peer& peer, const ResultBatch& batch,
                          std::optional<zmq::message_t>& payload, Clock::time_point now) {
  uint64_t total = 0;
  for (uint64_t n : batch.bytes) total += n;
  if (total != (payload ? payload->size() : 0)) {
    // Its attempts cannot be told apart: the worker is broken, and its attempts go back to
    // the queue with it.
    ++stats_.rejected_messages;
    LoseWorker(peer.index,
               "sent a RESULTS whose sizes add up to " + std::to_string(total) +
                   " bytes with a payload of " + std::to_string(payload ? payload->size() : 0),
               now);
    return;
  }
  auto shared = payload ? std::make_shared<const zmq::message_t>(std::move(*payload)) : nullptr;
  size_t offset = 0;
  for (size_t i = 0; i < batch.results.size(); ++i) {
    size_t n = batch.bytes[i];
    OnResult(peer, batch.results[i], n ? Blob(shared, offset, n) : Blob(), now);
    offset += n;
  }
}

void EventLoop::OnMessage(Envelope& env, Clock::time_point now) {
  if (auto* hello = std::get_if<Hello>(&env.message)) return OnHello(env.peer, *hello, now);
  auto it = peers_.find(env.peer);
  if (it == peers_.end()) {
    // A worker we dropped (e.g. it was stopped, then continued): tell it to start over.
    ++stats_.rejected_messages;
    SendTo(*router_, env.peer, Reject{"unknown peer; say HELLO again", kProtocolVersion});
    return;
  }
  Peer& peer = it->second;
  peer.last_seen = now;
  if (auto* result = std::get_if<ResultMsg>(&env.message)) {
    OnResult(peer, *result, env.payload ? Blob(std::move(*env.payload)) : Blob(), now);
  } else if (auto* results = std::get_if<ResultBatch>(&env.message)) {
    OnResults(peer, *results, env.payload, now);
  } else if (!std::holds_alternative<Heartbeat>(env.message)) {
    spdlog::warn("unexpected {} from worker {}", KindName(KindOf(env.message)), peer.name);
    ++stats_.rejected_messages;
  }
}

void EventLoop::OnChildExit(const ChildExit& exit, Clock::time_point now) {
  for (auto& [id, peer] : peers_) {
    if (peer.local && peer.pid == exit.pid) {
      LoseWorker(peer.index, "(pid " + std::to_string(exit.pid) + ") " + exit.Describe(), now);
      break;
    }
  }
  if (last_loss_.empty() || last_loss_.find(exit.name) == std::string::npos) {
    last_loss_ = "worker " + exit.name + " " + exit.Describe();
    spdlog::warn("worker {} {} before joining", exit.name, exit.Describe());
  }
  ++consecutive_deaths_;
  if (!respawn_at_ && respawns_used_ < max_respawns_) {
    uint32_t shift = std::min<uint32_t>(consecutive_deaths_ - 1, 5);
    respawn_at_ = now + milliseconds(50) * (1u << shift);
  }
}

void EventLoop::MaybeRespawn(Clock::time_point now) {
  if (!respawn_at_ || now < *respawn_at_) return;
  respawn_at_.reset();
  while (launcher_->alive() < local_workers_ && respawns_used_ < max_respawns_) {
    ++respawns_used_;
    ++stats_.respawns;
    auto pid = launcher_->Spawn("local-" + std::to_string(++spawned_));
    if (!pid.ok()) {
      last_loss_ = pid.status().message();
      spdlog::warn("{}", last_loss_);
      break;
    }
  }
}

void EventLoop::CheckLiveness(Clock::time_point now) {
  auto limit = heartbeat_ * config_.liveness;
  std::vector<std::pair<WorkerIndex, Clock::duration>> silent;
  for (const auto& [id, peer] : peers_) {
    if (now - peer.last_seen > limit) silent.emplace_back(peer.index, now - peer.last_seen);
  }
  for (const auto& [index, quiet] : silent) {
    auto ms = std::chrono::duration_cast<milliseconds>(quiet).count();
    LoseWorker(index, "sent nothing for " + std::to_string(ms) + " ms (presumed hung)", now);
  }
}

bool EventLoop::Dispatching() {
  if (!dispatching_ && peers_.size() >= std::max<uint32_t>(config_.min_workers, 1)) {
    dispatching_ = true;
    if (config_.min_workers > 1) spdlog::info("{} workers joined; dispatching", peers_.size());
  }
  return dispatching_;
}

std::string EventLoop::WaitExpired(Clock::time_point now) const {
  if (config_.wait_timeout.count() <= 0 || now - started_ < config_.wait_timeout) return "";
  if (!dispatching_ && config_.min_workers > 0) {
    return "only " + std::to_string(peers_.size()) + " of " + std::to_string(config_.min_workers) +
           " workers joined within " + std::to_string(config_.wait_timeout.count()) +
           " ms (--min-workers, --wait-timeout)";
  }
  if (peers_.empty() && launcher_->alive() == 0) {
    return "no worker joined within " + std::to_string(config_.wait_timeout.count()) +
           " ms (--wait-timeout)";
  }
  return "";
}

uint32_t EventLoop::PrefetchDepth(const Peer& peer) {
  // The median is re-read as the job doubles its finished chunks, then every 1024.
  uint64_t done = scheduler_.chunks_done();
  if (done > 0 && (done >= median_checked_at_ * 2 || done >= median_checked_at_ + 1024)) {
    median_checked_at_ = std::max<uint64_t>(done, 1);
    median_ = scheduler_.median_attempt_time();
  }
  // Enough queued attempts to cover kPipeline of work: one round trip (~100 us here)
  // hides behind many short chunks, while long chunks keep one queued per slot so that
  // no worker idles at the end of a job with others' chunks still queued.
  if (median_checked_at_ == 0) return peer.slots;  // nothing measured yet
  uint64_t depth = peer.slots * static_cast<uint64_t>(kPipeline / std::max(median_, Micros(1)));
  return static_cast<uint32_t>(std::clamp<uint64_t>(depth, peer.slots, kMaxPrefetch));
}

uint64_t EventLoop::IdleSlotsElsewhere(const Peer& self) const {
  uint64_t idle = 0;
  size_t local_joined = 0;
  for (const auto& [id, p] : peers_) {
    if (p.local) ++local_joined;
    if (&p == &self) continue;
    uint32_t live = scheduler_.live_attempts(p.index);
    if (live < p.slots) idle += p.slots - live;
  }
  if (launcher_ && launcher_->alive() > local_joined) idle += launcher_->alive() - local_joined;
  return idle;
}

bool EventLoop::Batchable(const Peer& peer, uint64_t chunk) const {
  const ChunkSpec& spec = job_.chunks[chunk];
  return peer.batch > 1 && median_checked_at_ > 0 && median_ < kBatchBelow && !spec.range &&
         spec.bytes() + job_.header.size() <= kBatchChunkBytes;
}

bool EventLoop::SendTask(const Peer& peer, const Assignment& a) {
  const ChunkSpec& chunk = job_.chunks[a.chunk];
  TaskMsg msg{job_id_, a.chunk, a.attempt, config_.task, config_.args, chunk.range, chunk.records};
  // By reference: offsets into the input file, which the worker maps (the header is the
  // file's first bytes). Else zero copy: the frame points into the input, which outlives
  // the socket (with a --header the header and chunk are copied into one frame).
  bool by_ref = peer.by_ref && !chunk.range;
  if (by_ref) msg.slice = FileSlice{chunk.begin, chunk.bytes(), job_.header.size()};
  std::string storage;
  std::string_view bytes = by_ref ? std::string_view() : job_.Payload(a.chunk, storage);
  zmq::message_t payload = job_.header.empty() ? zmq::message_t(const_cast<char*>(bytes.data()),
                                                                bytes.size(), nullptr, nullptr)
                                               : zmq::message_t(bytes.data(), bytes.size());
  return SendTo(*router_, peer.id, msg, chunk.range || by_ref ? nullptr : &payload);
}

bool EventLoop::SendBatch(const Peer& peer, PendingBatch& batch) {
  TaskBatch& msg = batch.msg;
  bool sent = true;
  if (msg.chunks.size() == 1) {
    sent = SendTask(peer, Assignment{msg.chunks[0], msg.attempts[0], false});
  } else if (!msg.chunks.empty()) {
    // Short chunks are copied into one frame: a copy of a few KiB costs less than a frame.
    zmq::message_t payload(batch.total);
    char* to = static_cast<char*>(payload.data());
    for (std::string_view b : batch.bytes) to = std::copy(b.begin(), b.end(), to);
    sent = SendTo(*router_, peer.id, msg, &payload);
  }
  msg.chunks.clear();
  msg.attempts.clear();
  msg.records.clear();
  msg.bytes.clear();
  batch.bytes.clear();
  batch.total = 0;
  return sent;
}

void EventLoop::Fill(Peer& peer, Clock::time_point now) {
  if (!Dispatching()) return;
  PendingBatch batch;
  batch.msg.job_id = job_id_;
  batch.msg.task = config_.task;
  batch.msg.args = config_.args;
  std::string header_storage;
  std::deque<std::string> storage;  // --header: each batched chunk's header + bytes (stable)
  bool reachable = true;
  while (error_.empty() && reachable) {
    // Prefetch (a chunk queued behind the running ones) only when there is more work than
    // idle slots elsewhere: with few chunks, an idle worker must not wait behind a busy one.
    uint32_t live = scheduler_.live_attempts(peer.index);
    if (live >= peer.slots && scheduler_.queued() <= IdleSlotsElsewhere(peer)) break;
    if (live >= peer.slots + PrefetchDepth(peer)) break;
    auto a = scheduler_.Next(peer.index, now);
    if (!a) break;
    spdlog::debug("chunk {} attempt {}{} -> {}", a->chunk, a->attempt,
                  a->speculative ? " (speculative)" : "", peer.name);
    in_flight_[{a->chunk, a->attempt}] = {peer.index, stats_.telemetry.Now()};
    if (!Batchable(peer, a->chunk)) {
      reachable = SendBatch(peer, batch) && SendTask(peer, *a);
      continue;
    }
    std::string_view bytes = job_.Payload(a->chunk, header_storage);
    if (!job_.header.empty()) bytes = storage.emplace_back(bytes);
    batch.msg.chunks.push_back(a->chunk);
    batch.msg.attempts.push_back(a->attempt);
    batch.msg.records.push_back(job_.chunks[a->chunk].records);
    batch.msg.bytes.push_back(bytes.size());
    batch.bytes.push_back(bytes);
    batch.total += bytes.size();
    if (batch.msg.chunks.size() >= peer.batch || batch.total >= kBatchBytes) {
      reachable = SendBatch(peer, batch);
      storage.clear();
    }
  }
  if (reachable) reachable = SendBatch(peer, batch);
  if (!reachable) LoseWorker(peer.index, "is unreachable", now);
}

Clock::time_point EventLoop::NextWakeup(Clock::time_point now) const {
  Clock::time_point wake = next_heartbeat_;
  auto limit = heartbeat_ * config_.liveness;
  for (const auto& [id, peer] : peers_) wake = std::min(wake, peer.last_seen + limit);
  if (auto d = scheduler_.NextDeadline()) wake = std::min(wake, *d);
  if (respawn_at_) wake = std::min(wake, *respawn_at_);
  if (config_.wait_timeout.count() > 0 && now < started_ + config_.wait_timeout) {
    wake = std::min(wake, started_ + config_.wait_timeout);
  }
  return std::max(wake, now);
}

void EventLoop::Step(Clock::time_point now, const std::vector<zmq::pollitem_t>& items) {
  if (items[0].revents & ZMQ_POLLIN) {
    for (int i = 0; i < 10000; ++i) {
      Received got = ReceiveMessage(*router_, /*router=*/true);
      if (std::holds_alternative<std::monostate>(got)) break;
      if (auto* bad = std::get_if<Rejected>(&got)) {
        ++stats_.rejected_messages;
        spdlog::warn("dropped a malformed message: {}", bad->reason);
        if (auto it = peers_.find(bad->peer); it != peers_.end()) it->second.last_seen = now;
        continue;
      }
      OnMessage(std::get<Envelope>(got), now);
    }
  }
  for (size_t i = 2; i < items.size(); ++i) {
    if (items[i].revents == 0) continue;
    if (auto exit = launcher_->Reap(items[i].fd)) OnChildExit(*exit, now);
  }
  SendCancels(scheduler_.ExpireAttempts(now), "timed out");
  Note(sink_.SyncFailures());
  CheckLiveness(now);
  MaybeRespawn(now);
  if (now >= next_heartbeat_) {
    for (const auto& [id, peer] : peers_) SendTo(*router_, id, Heartbeat{});
    next_heartbeat_ = now + heartbeat_;
  }
  std::vector<std::string> ids;
  for (const auto& [id, peer] : peers_) ids.push_back(id);
  for (const auto& id : ids) {
    if (auto it = peers_.find(id); it != peers_.end()) Fill(it->second, now);  // may drop it
  }
  Note(sink_.Flush());
}

ModeResult EventLoop::Run() {
  if (Status s = Start(); !s.ok()) return ModeResult::Failed(s.message());
  ModeResult result = ModeResult::Completed();
  while (!scheduler_.Finished() && !scheduler_.Aborted()) {
    if (!error_.empty()) {
      result = ModeResult::Failed(error_);
      break;
    }
    if (Interrupt::Requested()) {
      result = ModeResult::Interrupted();
      break;
    }
    if (std::string why = WaitExpired(Clock::now()); !why.empty()) {
      result = ModeResult::Failed(why);
      break;
    }
    if (peers_.empty() && launcher_->alive() == 0 && !respawn_at_ && config_.listen.empty()) {
      result = ModeResult::Failed("no worker left (" + last_loss_ + "; " +
                                  std::to_string(respawns_used_) + " respawns used of " +
                                  std::to_string(max_respawns_) + ", see --max-respawns)");
      break;
    }
    std::vector<zmq::pollitem_t> items;
    items.push_back({router_->handle(), 0, ZMQ_POLLIN, 0});
    items.push_back(
        {nullptr, Interrupt::fd(), static_cast<short>(Interrupt::fd() >= 0 ? ZMQ_POLLIN : 0), 0});
    for (int fd : launcher_->fds()) items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
    auto now = Clock::now();
    auto wait = std::chrono::duration_cast<milliseconds>(NextWakeup(now) - now) + milliseconds(1);
    PollOnce(items.data(), items.size(), wait);
    Step(Clock::now(), items);
  }
  if (!error_.empty() && result.kind == ModeResult::Kind::kCompleted) {
    result = ModeResult::Failed(error_);
  }
  while (!in_flight_.empty()) {
    auto [chunk, attempt] = in_flight_.begin()->first;
    EndAttempt(chunk, attempt, "abandoned: the job ended");
  }
  // Welcomed workers are told to stop; ones still starting up are stopped by signal.
  std::vector<pid_t> told;
  for (const auto& [id, peer] : peers_) {
    SendTo(*router_, id, Shutdown{"job finished"});
    told.push_back(peer.pid);
  }
  launcher_->SignalAllExcept(told, SIGTERM);
  launcher_->StopAll(milliseconds(2000));
  return result;
}

}  // namespace

ModeResult RunProcesses(const PlannedJob& job, uint32_t workers, Scheduler& scheduler,
                        ResultSink& sink, RunStats& stats) {
  EventLoop loop(job, workers, scheduler, sink, stats);
  return loop.Run();
}

}  // namespace fanout
