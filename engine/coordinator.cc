#include "engine/coordinator.h"

#include <signal.h>
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
#include <thread>
#include <zmq.hpp>

#include "common/curve.h"
#include "common/log.h"
#include "common/transport.h"
#include "common/zap.h"
#include "engine/event_loop.h"
#include "engine/interrupt.h"
#include "engine/listen_security.h"
#include "engine/local_input.h"
#include "engine/local_launcher.h"
#include "engine/private_dir.h"
#include "engine/stop_fd.h"

namespace fanout::internal {

std::string NewJobId() {
  std::random_device rd;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return buf;
}

// The job a loop points at between jobs: no chunks, nothing to run.
struct EventLoop::IdleJob : ChunkObserver {
  explicit IdleJob(const JobConfig& config)
      : task{"", "", "", nullptr, nullptr, nullptr, nullptr},
        job{config, task, JobInput::FromBuffer(""), {}, {}},
        scheduler(0, config.scheduler),
        sink(job, scheduler, *this, stats),
        active(job, scheduler, sink, stats, {}, nullptr) {}
  Status OnAccepted(uint64_t, Blob) override { return Status::Ok(); }
  Status OnFailed(uint64_t) override { return Status::Ok(); }
  TaskDef task;
  PlannedJob job;
  Scheduler scheduler;
  RunStats stats;
  ResultSink sink;
  ActiveJob active;
};

// ZeroMQ's I/O threads: they copy (and with CURVE encrypt) every byte sent to a worker over
// TCP. libzmq puts each new connection on its least loaded I/O thread, the listeners
// counting as load, so with one thread per core besides the listeners' the connections of
// remote workers are spread over the cores: with CURVE over loopback, two workers' traffic
// went through one thread, encrypting for both, when the context had one or two. Jobs that
// only start local workers (ipc, the input by reference) send headers, and keep one.
int EventLoop::IoThreads(const JobConfig& config) {
  if (config.listen.rfind("tcp://", 0) != 0) return 1;
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  return 1 + static_cast<int>(std::min(cores, 4u));
}

EventLoop::EventLoop(const JobConfig& config, uint32_t workers, bool warm, int wake_fd,
                     const Clock& clock)
    : fleet_(config),
      max_local_(workers),
      warm_(warm),
      wake_fd_(wake_fd),
      clock_(clock),
      idle_(std::make_unique<IdleJob>(config)),
      heartbeat_(config.heartbeat),
      liveness_{config.heartbeat, config.liveness},
      context_(NewContext(IoThreads(config))) {
  Use(idle_->active);
}

EventLoop::~EventLoop() = default;

// With CURVE, starts the ZAP handler and gives local workers a throwaway key pair that it
// admits, passed as certificate files in the private directory. Returns their extra flags.
Result<std::vector<std::string>> EventLoop::StartCurve(SocketSecurity& security) {
  if (!config_->curve_server) return std::vector<std::string>{};
  auto local = GenerateCurveKeyPair();
  if (!local.ok()) return local.status();
  std::set<std::string> allowed(config_->authorized_keys.begin(), config_->authorized_keys.end());
  allowed.insert(local->public_key);
  auto zap = ZapAuthenticator::Start(context_, std::move(allowed));
  if (!zap.ok()) return zap.status();
  zap_ = std::move(zap).value();
  security.curve_server = *config_->curve_server;
  std::string server_cert = dir_.path() + "/coordinator.key";
  std::string local_cert = dir_.path() + "/local-worker.key";
  Status s = WriteCurveCertificates(server_cert, {config_->curve_server->public_key, ""});
  if (s.ok()) s = WriteCurveCertificates(local_cert, *local);
  if (!s.ok()) return s;
  return std::vector<std::string>{"--curve-server-key", server_cert, "--curve-secret",
                                  local_cert + "_secret"};
}

Status EventLoop::Start() {
  if (dir_.path().empty()) return Status::Error("cannot create a private temporary directory");
  std::string endpoint = fleet_.listen;
  if (endpoint.empty()) endpoint = "ipc://" + dir_.path() + "/coordinator.sock";
  SocketSecurity security;
  security.max_message = fleet_.max_message;
  auto curve_flags = StartCurve(security);
  if (!curve_flags.ok()) return curve_flags.status();
  auto router = MakeRouter(context_, endpoint, security);
  if (!router.ok()) return router.status();
  router_.emplace(std::move(router).value());
  endpoint = LastEndpoint(*router_);
  std::string local_endpoint = endpoint;
  if (!fleet_.listen.empty()) {
    // Our own workers connect over ipc in the private directory, never over the listening
    // endpoint (with --insecure TCP that would be unauthenticated).
    local_endpoint = "ipc://" + dir_.path() + "/coordinator.sock";
    try {
      router_->bind(local_endpoint);
    } catch (const zmq::error_t& e) {
      return Status::Error("cannot listen on " + local_endpoint + ": " + e.what());
    }
    if (max_local_ == 0) {
      Log().warn("waiting for workers: fanout-worker --connect {}{}", ConnectableEndpoint(endpoint),
                 fleet_.curve_server            ? " --curve-server-key SERVER_PUBLIC_CERT "
                                                  "--curve-secret WORKER_secret"
                 : EndpointNeedsCurve(endpoint) ? " --insecure"
                                                : "");
    } else {
      Log().info("listening on {} for more workers", ConnectableEndpoint(endpoint));
    }
  }
  auto bin = FindWorkerBinary(fleet_.worker_bin);
  if (!bin.ok()) return bin.status();
  std::vector<std::string> flags = {"--once",
                                    "--slots",
                                    std::to_string(fleet_.local_slots),
                                    "--heartbeat",
                                    std::to_string(heartbeat_.count()) + "ms",
                                    "--max-message",
                                    std::to_string(fleet_.max_message)};
  flags.insert(flags.end(), curve_flags->begin(), curve_flags->end());
  flags.insert(flags.end(), fleet_.worker_args.begin(), fleet_.worker_args.end());
  launcher_.emplace(*bin, local_endpoint, std::move(flags), fleet_.adopt_orphans);
  // Local workers stop being replaced once this many died in a row with no chunk accepted
  // in between (the job makes no progress): max(2 x workers, 2 x (--crash-limit + 2)), so
  // that a chunk that kills its workers fails by its crash limit first, with its reason.
  // The 2: a worker that dies before its STARTED message leaves cost its attempt nothing,
  // twice per chunk (Scheduler::kFreeLosses); with 2 x --crash-limit, two such chunks once
  // met this bound first (10 deaths) and the job failed as "no worker left" instead.
  uint64_t no_progress_deaths = std::max<uint64_t>(
      2ull * max_local_,
      2ull * (std::max<uint32_t>(fleet_.scheduler.crash_limit, 1) + Scheduler::kFreeLosses - 1));
  locals_.emplace(
      *launcher_, clock_,
      fleet_.max_respawns >= 0 ? static_cast<uint64_t>(fleet_.max_respawns) : UINT64_MAX,
      no_progress_deaths);
  auto token = NewLocalToken();
  if (!token.ok()) return token.status();
  local_token_ = *token;
  launcher_->SetLocalToken(local_token_);
  next_heartbeat_ = clock_.Now() + heartbeat_;
  return Status::Ok();
}

void EventLoop::Use(ActiveJob& job) {
  cur_ = &job;
  job_ = job.job;
  config_ = &job.job->config;
  scheduler_ = job.scheduler;
  dispatcher_ = &job.dispatcher;
  sink_ = job.sink;
  stats_ = job.stats;
}

EventLoop::ActiveJob& EventLoop::Primary() { return jobs_.empty() ? idle_->active : jobs_.front(); }

void EventLoop::Admit(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink,
                      RunStats& stats, std::stop_token stop, JobDone done) {
  auto it =
      jobs_.emplace(jobs_.end(), job, scheduler, sink, stats, std::move(stop), std::move(done));
  ActiveJob& active = *it;
  active.seq = next_seq_++;
  if (warm_) {
    Log().debug("job admitted beside {} others: {} chunks, priority {}", jobs_.size() - 1,
                job.chunks.size(), job.config.priority);
  }
  active.wire_base = next_wire_;
  next_wire_ += job.chunks.size();
  if (!job.chunks.empty()) by_wire_[active.wire_base] = it;  // an empty range routes nothing
  Use(active);
  active.wait.emplace(config_->wait_timeout, config_->min_workers, !config_->listen.empty(),
                      clock_.Now());
  // A warm loop's workers said HELLO before this job's input existed: none maps it.
  input_path_ = config_->local_input_by_ref && !warm_ ? LocalInputPath(job.input) : "";
  // No more local workers than the running jobs can keep busy (each worker takes --slots
  // chunks at once), unless --min-workers needs them; they start from the loop
  // (SpawnSome). A warm loop keeps those it has.
  uint64_t useful = 0;
  for (const ActiveJob& j : jobs_) {
    const JobConfig& c = j.job->config;
    uint32_t slots = std::max<uint32_t>(c.local_slots, 1);
    uint64_t mine = (j.scheduler->queued() + slots - 1) / slots;
    if (c.listen.empty()) mine = std::max<uint64_t>(mine, c.min_workers);
    useful += mine;
  }
  auto want = static_cast<uint32_t>(std::min<uint64_t>(max_local_, std::max<uint64_t>(useful, 1)));
  // Each job gets a fresh respawn budget (a job that killed its workers does not doom the
  // next one), and workers lost for good in an earlier job are started again.
  locals_->BeginJob(want);
  stats.workers = locals_->wanted();
  for (auto& [id, peer] : peers_) JoinJob(peer);
  stats.telemetry.workers_running = static_cast<uint32_t>(peers_.size());
  FillAll(clock_.Now());  // a warm loop's workers are there already: work goes out now
}

void EventLoop::JoinJob(Peer& peer) {
  if (cur_ == &idle_->active || peer.leaving) return;
  if (std::find(peer.tasks.begin(), peer.tasks.end(), config_->task) == peer.tasks.end()) {
    // Local workers all run the same program: none of them will ever have the task.
    if (peer.local && config_->listen.empty()) {
      Note(Status::Error("local worker " + peer.name + " does not provide task '" + config_->task +
                         "'"));
    }
    return;
  }
  stats_->telemetry.SetWorker(peer.index, {peer.name, peer.host, peer.slots});
  scheduler_->AddWorker(peer.index, peer.slots, peer.slots + kMaxPrefetch, peer.starts);
  // Local workers are counted when started; every other worker once, when it first joins.
  if (!peer.local && cur_->joined.insert(peer.name + "@" + peer.host).second) ++stats_->workers;
}

std::optional<ModeResult> EventLoop::Ended() {
  if (scheduler_->Finished() || scheduler_->Aborted()) return ModeResult::Completed();
  if (!cur_->error.empty()) return ModeResult::Failed(cur_->error);
  if (Interrupt::Requested() || cur_->stop.requested()) return ModeResult::Interrupted();
  auto now = clock_.Now();
  WorkerState workers = Workers();
  if (std::string why = cur_->wait->Expired(now, workers); !why.empty()) {
    return ModeResult::Failed(why);
  }
  if (std::string why = Stranded(now, workers); !why.empty()) return ModeResult::Failed(why);
  if (workers.joined == 0 && !workers.starting && !workers.respawn_pending &&
      config_->listen.empty()) {
    return ModeResult::Failed("no worker left (" + last_loss_ + "; " + locals_->Ended() + ")");
  }
  return std::nullopt;
}

void EventLoop::EndJobs() {
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    auto next = std::next(it);
    Use(*it);
    if (auto result = Ended()) EndJob(it, std::move(*result));
    it = next;
  }
  Use(Primary());
}

void EventLoop::EndJob(std::list<ActiveJob>::iterator job, ModeResult result) {
  Use(*job);
  if (!cur_->error.empty() && result.kind == ModeResult::Kind::kCompleted) {
    result = ModeResult::Failed(cur_->error);
  }
  while (!cur_->in_flight.empty()) {
    // Last chunks first: a worker's prefetched attempts (sent after the one it runs) are
    // cancelled before a cancel frees the slot they wait for.
    auto last = std::prev(cur_->in_flight.end());
    auto [chunk, attempt] = last->first;
    // A warm loop's workers stay: what they still run of this job is cancelled (their
    // results, should they come, are an ended job's and dropped: Route).
    if (Peer* peer = warm_ ? peers_.Find(last->second.first) : nullptr) {
      SendTo(*router_, peer->id, Cancel{chunk + cur_->wire_base, attempt});
    }
    EndAttempt(chunk, attempt, "abandoned: the job ended");
  }
  rejects_.Flush();
  if (dispatcher_->steals() > 0)
    Log().debug("{} attempts taken back by idle workers", dispatcher_->steals());
  JobDone done = std::move(job->done);
  if (auto w = by_wire_.find(job->wire_base); w != by_wire_.end() && w->second == job) {
    by_wire_.erase(w);
  }
  jobs_.erase(job);
  Use(Primary());
  if (done) done(std::move(result));
}

void EventLoop::Abandon(const ModeResult& result) {
  while (!jobs_.empty()) {
    JobDone done = std::move(jobs_.front().done);
    jobs_.pop_front();
    if (done) done(result);
  }
  by_wire_.clear();
  Use(idle_->active);
}

Clock::time_point EventLoop::NextWakeup(Clock::time_point now) {
  Clock::time_point wake = next_heartbeat_;
  if (auto at = peers_.NextSilence(liveness_)) wake = std::min(wake, *at);
  if (auto at = locals_->NextDeadline(now)) wake = std::min(wake, *at);
  for (ActiveJob& j : jobs_) {
    if (auto d = j.scheduler->NextDeadline()) wake = std::min(wake, *d);
    if (auto at = j.wait->NextDeadline(now)) wake = std::min(wake, *at);
  }
  return std::max(wake, now);
}

void EventLoop::Step(Clock::time_point now, const std::vector<zmq::pollitem_t>& items,
                     size_t children) {
  Use(Primary());
  // Silence is judged only once every message that arrived is read: a backlog built up
  // while this loop was busy must not count against the peers that sent it.
  bool drained = true;
  if (items[0].revents & ZMQ_POLLIN) {
    drained = false;
    for (int i = 0; i < 10000; ++i) {
      Received got = ReceiveMessage(*router_, /*router=*/true);
      if (std::holds_alternative<std::monostate>(got)) {
        drained = true;
        break;
      }
      if (auto* bad = std::get_if<Rejected>(&got)) {
        ++Primary().stats->rejected_messages;
        rejects_.Warn("malformed message", "dropped a malformed message: " + bad->reason);
        if (Peer* peer = peers_.FindRoute(bad->peer)) peer->last_seen = now;
        continue;
      }
      OnMessage(std::get<Envelope>(got), now);
    }
  }
  for (size_t i = children; i < items.size(); ++i) {
    if (items[i].revents == 0) continue;
    if (auto exit = launcher_->Reap(items[i].fd)) OnChildExit(*exit, now);
  }
  for (ActiveJob& j : jobs_) {
    Use(j);
    SendCancels(scheduler_->ExpireAttempts(now), "timed out");
    Note(sink_->SyncFailures());
  }
  rejects_.Tick();
  if (drained) CheckLiveness(now);
  SuperviseLocals(now, drained);
  if (now >= next_heartbeat_) {
    for (const auto& [id, peer] : peers_) SendTo(*router_, id, Heartbeat{});
    next_heartbeat_ = now + heartbeat_;
  }
  FillAll(now);
  for (ActiveJob& j : jobs_) {
    Use(j);
    Note(sink_->Flush());
  }
  Use(Primary());
}

void EventLoop::FillAll(Clock::time_point now) {
  for (const auto& id : peers_.Routes()) {
    if (Peer* peer = peers_.FindRoute(id)) Fill(*peer, now);  // may drop it
  }
}

void EventLoop::Loop(const std::function<bool()>& stop) {
  for (;;) {
    EndJobs();
    if (stop()) return;
    std::vector<zmq::pollitem_t> items;
    items.push_back({router_->handle(), 0, ZMQ_POLLIN, 0});
    items.push_back(
        {nullptr, Interrupt::fd(), static_cast<short>(Interrupt::fd() >= 0 ? ZMQ_POLLIN : 0), 0});
    items.push_back({nullptr, wake_fd_, static_cast<short>(wake_fd_ >= 0 ? ZMQ_POLLIN : 0), 0});
    for (const ActiveJob& j : jobs_) {
      if (j.stop.fd() >= 0) items.push_back({nullptr, j.stop.fd(), ZMQ_POLLIN, 0});
    }
    size_t children = items.size();
    for (int fd : launcher_->fds()) items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
    auto now = clock_.Now();
    auto wait = std::chrono::duration_cast<milliseconds>(NextWakeup(now) - now) + milliseconds(1);
    PollOnce(items.data(), items.size(), wait);
    Step(clock_.Now(), items, children);
  }
}

void EventLoop::Serve(const std::function<bool()>& done) { Loop(done); }

ModeResult EventLoop::RunJob(const PlannedJob& job, Scheduler& scheduler, ResultSink& sink,
                             RunStats& stats, std::stop_token stop) {
  std::optional<ModeResult> result;
  Admit(job, scheduler, sink, stats, std::move(stop), [&](ModeResult r) { result = std::move(r); });
  Serve([&] { return result.has_value(); });
  if (!warm_) Stop();
  return *result;
}

void EventLoop::Stop() {
  if (!launcher_) return;
  // Welcomed workers are told to stop; ones still starting up are stopped by signal.
  std::vector<pid_t> told;
  bool remote = false;
  for (const auto& [id, peer] : peers_) {
    SendTo(*router_, id, Shutdown{"job finished"});
    if (peer.local) told.push_back(peer.pid);
    remote = remote || !peer.local;
  }
  // The SHUTDOWNs must leave before the socket closes (its linger is 0): a remote --once
  // worker whose SHUTDOWN was dropped never learns its job ended, and waits for the next
  // coordinator for ever (1 run in 12 of bench-peers' remote row). Local workers are
  // waited for below, which gives ZeroMQ that time. A remote worker that cannot take its
  // SHUTDOWN (gone) costs the exit at most kShutdownLinger.
  if (remote) router_->set(zmq::sockopt::linger, static_cast<int>(kShutdownLinger.count()));
  launcher_->SignalAllExcept(told, SIGTERM);
  launcher_->StopAll(milliseconds(2000));
  rejects_.Flush();
}

}  // namespace fanout::internal

namespace fanout {

ModeResult RunProcesses(const PlannedJob& job, uint32_t workers, Scheduler& scheduler,
                        ResultSink& sink, RunStats& stats, std::stop_token stop) {
  internal::EventLoop loop(job.config, workers);
  if (Status s = loop.Start(); !s.ok()) return ModeResult::Failed(s.message());
  return loop.RunJob(job, scheduler, sink, stats, std::move(stop));
}

}  // namespace fanout
