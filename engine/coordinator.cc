#include "engine/coordinator.h"

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
  std::string local_endpoint = endpoint;
  if (!config_.listen.empty()) {
    // Our own workers connect over ipc in the private directory, never over the listening
    // endpoint (with --insecure TCP that would be unauthenticated).
    local_endpoint = "ipc://" + dir_.path() + "/coordinator.sock";
    try {
      router_->bind(local_endpoint);
    } catch (const zmq::error_t& e) {
      return Status::Error("cannot listen on " + local_endpoint + ": " + e.what());
    }
    if (local_workers_ == 0) {
      spdlog::warn("waiting for workers: fanout-worker --connect {}{}",
                   ConnectableEndpoint(endpoint),
                   config_.curve_server           ? " --curve-server-key SERVER_PUBLIC_CERT "
                                                    "--curve-secret WORKER_secret"
                   : EndpointNeedsCurve(endpoint) ? " --insecure"
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
  launcher_.emplace(*bin, local_endpoint, std::move(flags), config_.adopt_orphans);
  if (Status s = StartLocalInput(); !s.ok()) return s;
  // No more local workers than can have work (each takes --slots chunks at once), unless
  // --min-workers needs them; they start from the loop (SpawnSome).
  uint64_t useful = (scheduler_.queued() + config_.local_slots - 1) / config_.local_slots;
  if (config_.listen.empty()) useful = std::max<uint64_t>(useful, config_.min_workers);
  local_workers_ =
      static_cast<uint32_t>(std::min<uint64_t>(local_workers_, std::max<uint64_t>(useful, 1)));
  to_spawn_ = local_workers_;
  stats_.workers = local_workers_;
  next_heartbeat_ = Clock::now() + heartbeat_;
  return Status::Ok();
}

Status EventLoop::StartLocalInput() {
  input_path_ = config_.local_input_by_ref ? LocalInputPath(job_.input) : "";
  auto token = NewLocalToken();
  if (!token.ok()) return token.status();
  local_token_ = *token;
  launcher_->SetLocalToken(local_token_);
  return Status::Ok();
}

Clock::time_point EventLoop::NextWakeup(Clock::time_point now) const {
  Clock::time_point wake = next_heartbeat_;
  auto limit = heartbeat_ * config_.liveness;
  for (const auto& [id, peer] : peers_) wake = std::min(wake, peer.last_seen + limit);
  if (auto d = scheduler_.NextDeadline()) wake = std::min(wake, *d);
  if (respawn_at_) wake = std::min(wake, *respawn_at_);
  if (to_spawn_ > 0) wake = now;
  for (const auto& [pid, since] : unjoined_) wake = std::min(wake, since + kJoinGrace);
  if (stranded_since_) {
    auto wait = config_.wait_timeout.count() > 0 ? config_.wait_timeout : kDefaultStrandedWait;
    wake = std::min(wake, *stranded_since_ + wait);
  }
  if (config_.wait_timeout.count() > 0 && now < started_ + config_.wait_timeout) {
    wake = std::min(wake, started_ + config_.wait_timeout);
  }
  return std::max(wake, now);
}

void EventLoop::Step(Clock::time_point now, const std::vector<zmq::pollitem_t>& items) {
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
        ++stats_.rejected_messages;
        rejects_.Warn("malformed message", "dropped a malformed message: " + bad->reason);
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
  rejects_.Tick();
  if (drained) {
    CheckLiveness(now);
    CheckJoins(now);
  }
  MaybeRespawn(now);
  SpawnSome();
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

ModeResult EventLoop::Run(std::stop_token stop) {
  StopFd stopped(std::move(stop));  // polled beside Interrupt::fd(): a cancel ends it alike
  if (Status s = Start(); !s.ok()) return ModeResult::Failed(s.message());
  ModeResult result = ModeResult::Completed();
  while (!scheduler_.Finished() && !scheduler_.Aborted()) {
    if (!error_.empty()) {
      result = ModeResult::Failed(error_);
      break;
    }
    if (Interrupt::Requested() || stopped.requested()) {
      result = ModeResult::Interrupted();
      break;
    }
    if (std::string why = WaitExpired(Clock::now()); !why.empty()) {
      result = ModeResult::Failed(why);
      break;
    }
    if (std::string why = Stranded(Clock::now()); !why.empty()) {
      result = ModeResult::Failed(why);
      break;
    }
    if (peers_.empty() && launcher_->alive() == 0 && !respawn_at_ && to_spawn_ == 0 &&
        config_.listen.empty()) {
      result = ModeResult::Failed("no worker left (" + last_loss_ + "; " + RespawnsEnded() + ")");
      break;
    }
    std::vector<zmq::pollitem_t> items;
    items.push_back({router_->handle(), 0, ZMQ_POLLIN, 0});
    items.push_back(
        {nullptr, Interrupt::fd(), static_cast<short>(Interrupt::fd() >= 0 ? ZMQ_POLLIN : 0), 0});
    for (int fd : launcher_->fds()) items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
    if (stopped.fd() >= 0) items.push_back({nullptr, stopped.fd(), ZMQ_POLLIN, 0});  // last
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
    if (peer.local) told.push_back(peer.pid);
  }
  launcher_->SignalAllExcept(told, SIGTERM);
  launcher_->StopAll(milliseconds(2000));
  rejects_.Flush();
  if (dispatcher_.steals() > 0)
    spdlog::debug("{} attempts taken back by idle workers", dispatcher_.steals());
  return result;
}

}  // namespace fanout::internal

namespace fanout {

ModeResult RunProcesses(const PlannedJob& job, uint32_t workers, Scheduler& scheduler,
                        ResultSink& sink, RunStats& stats, std::stop_token stop) {
  internal::EventLoop loop(job, workers, scheduler, sink, stats);
  return loop.Run(std::move(stop));
}

}  // namespace fanout
