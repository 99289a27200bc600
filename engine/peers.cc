// EventLoop (event_loop.h): what workers say. HELLO admits a peer, RESULT/RESULTS end its
// attempts, a pidfd or silence loses it (its attempts go back to the queue) and a lost
// local worker is replaced with back-off.
#include <signal.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/frame_pool.h"
#include "common/log.h"
#include "engine/event_loop.h"
#include "engine/local_input.h"

namespace fanout::internal {

void EventLoop::EndAttempt(uint64_t chunk, uint32_t attempt, const std::string& why) {
  auto it = cur_->in_flight.find({chunk, attempt});
  if (it == cur_->in_flight.end()) return;
  double now = stats_->telemetry.Now();
  AttemptSpan span = job_->Span(stats_->telemetry, chunk, attempt, it->second.first,
                                now - it->second.second, 0, Status::Error(why));
  span.measured = false;
  stats_->telemetry.RecordAttempt(std::move(span));
  cur_->in_flight.erase(it);
}

void EventLoop::SendCancels(const std::vector<CancelOrder>& orders, const std::string& why) {
  for (const CancelOrder& order : orders) {
    EndAttempt(order.chunk, order.attempt, why);
    if (Peer* peer = peers_.Find(order.worker)) {
      Log().debug("cancel chunk {} attempt {} on {}: {}", order.chunk, order.attempt, peer->name,
                  why);
      SendTo(*router_, peer->id, Cancel{order.chunk + cur_->wire_base, order.attempt});
    }
  }
}

void EventLoop::LoseWorker(WorkerIndex index, const std::string& reason, Clock::time_point now,
                           bool kill) {
  Peer* peer = peers_.Find(index);
  if (!peer) return;
  std::string name = peer->name;
  Log().warn("worker {} lost: {}", name, reason);
  last_loss_ = "worker " + name + " " + reason;
  if (peer->local && launcher_) {
    if (kill) {
      launcher_->Kill(peer->pid, SIGKILL);  // a hung one stays dead
    } else {
      locals_->Rejoining(peer->pid, now);  // it may say HELLO again (CheckJoins)
    }
  }
  peers_.Remove(index);  // `peer` dangles from here
  // Every job loses it; each re-queues its attempts by its own rules.
  Restore restore(*this);
  for (ActiveJob& j : jobs_) {
    Use(j);
    stats_->telemetry.workers_running = static_cast<uint32_t>(peers_.size());
    if (!scheduler_->HasWorker(index)) continue;
    stats_->telemetry.MarkLost(index);
    // Only the attempts the scheduler charges (the ones the worker started) get a span and
    // a joblog line; the others go back to the queue as if never sent.
    std::vector<std::pair<uint64_t, uint32_t>> charged;
    scheduler_->RemoveWorker(index, "worker " + reason, now, &charged);
    for (const auto& [chunk, attempt] : charged) {
      EndAttempt(chunk, attempt, "worker lost: " + reason);
    }
    std::erase_if(cur_->in_flight,
                  [&](const auto& flight) { return flight.second.first == index; });
    Note(sink_->SyncFailures());
  }
}

void EventLoop::OnHello(const std::string& id, const Hello& hello, Clock::time_point now) {
  Use(Primary());
  if (hello.protocol != kProtocolVersion) {
    rejects_.Warn("protocol version",
                  fmt::format("refusing worker {} on {}: protocol version {} (this coordinator "
                              "speaks {})",
                              hello.worker_id, hello.host, hello.protocol, kProtocolVersion));
    SendTo(*router_, id,
           Reject{"protocol version " + std::to_string(hello.protocol) +
                      " is not supported; this coordinator speaks version " +
                      std::to_string(kProtocolVersion),
                  kProtocolVersion});
    ++stats_->rejected_messages;
    return;
  }
  // Ours only by the per-run token, never by the pid a peer claims (anyone who reaches the
  // socket could claim a local worker's pid and have it signalled).
  bool ours = LocalTokenMatches(hello.local_token, local_token_) && launcher_ &&
              launcher_->IsChild(static_cast<pid_t>(hello.pid));
  // A one-job loop refuses a worker without the job's task; a warm one keeps it for the
  // jobs that have theirs (JoinJob).
  if (!warm_ &&
      std::find(hello.tasks.begin(), hello.tasks.end(), config_->task) == hello.tasks.end()) {
    rejects_.Warn("missing task", fmt::format("refusing worker {}: it does not provide task '{}'",
                                              hello.worker_id, config_->task));
    SendTo(
        *router_, id,
        Reject{"task '" + config_->task + "' is not available on this worker", kProtocolVersion});
    // Local workers all run the same program: none of them will ever have the task.
    if (ours && config_->listen.empty()) {
      Note(Status::Error("local worker " + hello.worker_id + " does not provide task '" +
                         config_->task + "'"));
    }
    return;
  }
  if (Peer* again = peers_.FindRoute(id)) {
    LoseWorker(again->index, "said HELLO again", now, /*kill=*/false);
  }
  // A worker that lost its connection (e.g. it waited too long for WELCOME) says HELLO
  // again from a new socket: its old routing id is stale and goes, without a kill.
  if (const Peer* other =
          peers_.FindSameWorker(hello.worker_id, static_cast<pid_t>(hello.pid), ours)) {
    LoseWorker(other->index, "reconnected", now, /*kill=*/false);
  }
  Peer joining;
  joining.id = id;
  joining.name = hello.worker_id;
  joining.pid = static_cast<pid_t>(hello.pid);
  joining.local = ours;
  joining.by_ref = ours && !input_path_.empty();
  joining.slots = hello.slots;
  joining.batch = hello.batch;
  joining.starts = hello.starts;
  joining.ranges = hello.ranges;
  joining.echo = hello.echo;
  joining.host = hello.host;
  joining.tasks = hello.tasks;
  joining.last_seen = now;  // its liveness counts from its HELLO
  Peer& stored = peers_.Add(std::move(joining));
  if (stored.local) locals_->Joined(stored.pid);
  for (ActiveJob& j : jobs_) {
    Use(j);
    JoinJob(stored);
    stats_->telemetry.workers_running = static_cast<uint32_t>(peers_.size());
  }
  Use(Primary());
  Log().debug("worker {} joined (host {}, pid {}, {} slots, input {})", stored.name, hello.host,
              hello.pid, hello.slots, stored.by_ref ? "by reference" : "as payloads");
  SendTo(*router_, id,
         Welcome{job_id_, static_cast<uint32_t>(heartbeat_.count()), config_->liveness,
                 stored.by_ref ? input_path_ : "", hello.starts,
                 static_cast<uint64_t>(config_->max_message), config_->ok_exit,
                 // Workers we started are stopped by us, never drained (they never get a
                 // SIGTERM but ours, and then the job is over).
                 hello.leave && !stored.local, hello.echo});
  Fill(stored, now);
}

Blob EventLoop::EchoOutput(uint64_t chunk) const {
  if (!config_->header && sink_->WritesAtOnce(chunk)) return Blob::Borrowed(job_->Bytes(chunk));
  zmq::message_t bytes = PooledFrame(job_->PayloadSize(chunk));  // not zeroed first
  job_->CopyPayload(chunk, static_cast<char*>(bytes.data()));
  return Blob(std::move(bytes));
}

void EventLoop::OnResult(Peer& peer, const ResultMsg& result, Blob output, Clock::time_point now) {
  // An echo's output is copied only once it is accepted (a late duplicate's never is),
  // unless --header needs it vetted first.
  bool echo = result.echo && result.ok;
  uint64_t output_bytes = output.size();
  if (echo) {
    if (!peer.echo || output.size() != 0) {
      // Not offered, or bytes besides: the worker is broken; its attempts go back.
      ++stats_->rejected_messages;
      LoseWorker(peer.index,
                 peer.echo ? "sent an echo with output" : "sent an echo it did not offer", now);
      return;
    }
    if (result.chunk >= job_->chunks.size()) {
      echo = false;  // never issued: nothing to read (the scheduler rejects it below)
    } else {
      output_bytes = job_->PayloadSize(result.chunk);
      if (config_->header) {
        output = EchoOutput(result.chunk);
        echo = false;
      }
    }
  }
  bool ok = result.ok;
  std::string error = result.error;
  if (ok) {
    if (Status vetted = sink_->Vet(output.view()); !vetted.ok()) {
      ok = false;
      error = vetted.message();
    }
  }
  ResultOutcome outcome =
      scheduler_->OnResult(peer.index, result.chunk, result.attempt, ok, error, now);
  if (auto it = cur_->in_flight.find({result.chunk, result.attempt});
      it != cur_->in_flight.end() && it->second.first == peer.index) {
    double at = stats_->telemetry.Now();  // one clock read per result
    double since_dispatch = at - it->second.second;
    AttemptSpan span = job_->SpanAt(at, result.chunk, result.attempt, peer.index,
                                    std::min(result.wall_seconds, since_dispatch), output_bytes,
                                    ok ? Status::Ok() : Status::Error(error));
    span.cpu_seconds = result.cpu_seconds;
    stats_->telemetry.RecordAttempt(std::move(span));
    cur_->in_flight.erase(it);
  }
  switch (outcome.verdict) {
    case Verdict::kAccepted:
      Log().debug("chunk {} attempt {} done on {}", result.chunk, result.attempt, peer.name);
      locals_->Progress();
      if (echo) output = EchoOutput(result.chunk);
      Note(sink_->Accept(result.chunk, std::move(output), result.cpu_seconds));
      SendCancels(outcome.cancel, "cancelled: another attempt won");
      break;
    case Verdict::kRetrying:
      Log().warn("{} attempt {} failed on worker {}, retrying: {}", job_->Describe(result.chunk),
                 result.attempt, peer.name, LatestFailureNote(*scheduler_, result.chunk));
      break;
    case Verdict::kChunkFailed:  // the job's failure report says why
      Log().debug("{} attempt {} failed on worker {}: {}", job_->Describe(result.chunk),
                  result.attempt, peer.name, error);
      break;
    case Verdict::kLateDuplicate:
      Log().debug("dropped late result for chunk {} attempt {} from {}", result.chunk,
                  result.attempt, peer.name);
      break;
    case Verdict::kUnknown:
      rejects_.Warn("unknown chunk",
                    fmt::format("rejected result for unknown chunk {} attempt {} from {}",
                                result.chunk, result.attempt, peer.name));
      ++stats_->rejected_messages;
      break;
  }
  Note(sink_->SyncFailures());
}

void EventLoop::OnLeave(Peer& peer, Leave& leave) {
  // Handed back attempts go back to their job's queue as if never sent: no span, no joblog
  // line. Every job stops giving the peer attempts (an ended job's are dropped: Route).
  std::map<ActiveJob*, std::vector<std::pair<uint64_t, uint32_t>>> back;
  for (ActiveJob& j : jobs_) back[&j];
  size_t handed = 0;
  for (size_t i = 0; i < leave.chunks.size() && i < leave.attempts.size(); ++i) {
    ActiveJob* job = Route(leave.chunks[i], leave.attempts[i], peer);
    if (!job) continue;
    // Only this peer's own attempts: the others' spans are not ours to end.
    auto it = job->in_flight.find({leave.chunks[i], leave.attempts[i]});
    if (it != job->in_flight.end() && it->second.first == peer.index) job->in_flight.erase(it);
    back[job].emplace_back(leave.chunks[i], leave.attempts[i]);
    ++handed;
  }
  if (!peer.leaving) {
    Log().info("worker {} is draining: it hands back {} attempts and finishes the rest", peer.name,
               handed);
  } else if (handed > 0) {
    Log().debug("worker {} hands back {} more attempts", peer.name, handed);
  }
  peer.leaving = true;  // no later job takes it either (JoinJob)
  for (auto& [job, attempts] : back) job->scheduler->HandBack(peer.index, attempts);
  if (!leave.bye) return Use(Primary());
  Log().info("worker {} left", peer.name);
  // So that a --listen job whose last worker left waits --wait-timeout for another (as
  // after a loss: Stranded), then fails saying why.
  last_loss_ = "worker " + peer.name + " left (drained)";
  WorkerIndex index = peer.index;
  peers_.Remove(index);  // `peer` dangles from here
  for (ActiveJob& j : jobs_) {
    j.stats->telemetry.workers_running = static_cast<uint32_t>(peers_.size());
    if (!j.scheduler->HasWorker(index)) continue;
    j.scheduler->LeaveWorker(index);
    std::erase_if(j.in_flight, [&](const auto& flight) { return flight.second.first == index; });
    j.stats->telemetry.MarkLeft(index);
  }
  Use(Primary());
}

void EventLoop::OnResults(Peer& peer, ResultBatch& batch, std::optional<zmq::message_t>& payload,
                          Clock::time_point now) {
  uint64_t total = 0;
  for (uint64_t n : batch.bytes) total += n;
  if (total != (payload ? payload->size() : 0)) {
    // Its attempts cannot be told apart: the worker is broken, and its attempts go back to
    // the queue with it.
    ++Primary().stats->rejected_messages;
    LoseWorker(peer.index,
               "sent a RESULTS whose sizes add up to " + std::to_string(total) +
                   " bytes with a payload of " + std::to_string(payload ? payload->size() : 0),
               now);
    return;
  }
  if (!peer.echo && !batch.echo.empty()) {
    ++Primary().stats->rejected_messages;
    LoseWorker(peer.index, "sent an echo it did not offer", now);
    return;
  }
  auto shared = payload ? std::make_shared<const zmq::message_t>(std::move(*payload)) : nullptr;
  size_t offset = 0;
  for (size_t i = 0; i < batch.results.size(); ++i) {
    size_t n = batch.bytes[i];
    ResultMsg& result = batch.results[i];
    if (Route(result.chunk, result.attempt, peer)) {
      OnResult(peer, result, n ? Blob(shared, offset, n) : Blob(), now);
    }
    offset += n;
  }
}

void EventLoop::OnMessage(Envelope& env, Clock::time_point now) {
  if (auto* hello = std::get_if<Hello>(&env.message)) return OnHello(env.peer, *hello, now);
  Peer* found = peers_.FindRoute(env.peer);
  if (!found) {
    // A worker we dropped (e.g. it was stopped, then continued): tell it to start over.
    ++Primary().stats->rejected_messages;
    SendTo(*router_, env.peer, Reject{"unknown peer; say HELLO again", kProtocolVersion});
    return;
  }
  Peer& peer = *found;
  peer.last_seen = now;
  for (ActiveJob& j : jobs_) {
    if (j.scheduler->HasWorker(peer.index)) j.stats->telemetry.Seen(peer.index);
  }
  // Chunk ids on the wire become their job's (Route), which becomes the current one; words
  // about an ended job's attempts are dropped.
  if (auto* result = std::get_if<ResultMsg>(&env.message)) {
    if (!Route(result->chunk, result->attempt, peer)) return;
    OnResult(peer, *result, env.payload ? Blob(std::move(*env.payload)) : Blob(), now);
  } else if (auto* results = std::get_if<ResultBatch>(&env.message)) {
    OnResults(peer, *results, env.payload, now);
  } else if (auto* started = std::get_if<Started>(&env.message)) {
    for (size_t i = 0; i < started->chunks.size() && i < started->attempts.size(); ++i) {
      if (!Route(started->chunks[i], started->attempts[i], peer)) continue;
      Log().debug("chunk {} attempt {} started on {}", started->chunks[i], started->attempts[i],
                  peer.name);
      scheduler_->MarkStarted(peer.index, started->chunks[i], started->attempts[i], now);
    }
  } else if (auto* leave = std::get_if<Leave>(&env.message)) {
    OnLeave(peer, *leave);
  } else if (!std::holds_alternative<Heartbeat>(env.message)) {
    rejects_.Warn("unexpected message", fmt::format("unexpected {} from worker {}",
                                                    KindName(KindOf(env.message)), peer.name));
    ++Primary().stats->rejected_messages;
  }
  Use(Primary());
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
    Log().warn("worker {} {} before joining", exit.name, exit.Describe());
  }
  locals_->Exited(exit.pid, now);
}

void EventLoop::SuperviseLocals(Clock::time_point now, bool drained) {
  if (uint32_t started = locals_->Respawn(now)) {
    for (ActiveJob& j : jobs_) j.stats->respawns += started;  // each job's report counts them
    if (!locals_->last_error().empty()) last_loss_ = locals_->last_error();
  }
  // A worker that cannot be started fails every job waiting for it.
  if (Status s = locals_->SpawnSome(); !s.ok()) {
    for (ActiveJob& j : jobs_) {
      if (j.error.empty()) j.error = s.message();
    }
  }
  if (drained) locals_->CheckJoins(now);
}

EventLoop::ActiveJob* EventLoop::Route(uint64_t& chunk, uint32_t attempt, const Peer& from) {
  ActiveJob* job = nullptr;
  if (chunk >= next_wire_) {
    // Never issued: the latest job's Scheduler calls it unknown (and it is rejected).
    if (!jobs_.empty()) job = &jobs_.back();
  } else if (auto it = by_wire_.upper_bound(chunk); it != by_wire_.begin()) {
    ActiveJob& in = *std::prev(it)->second;
    if (chunk - in.wire_base < in.job->chunks.size()) job = &in;
  }
  if (job) {
    chunk -= job->wire_base;
    Use(*job);
    return job;
  }
  Log().debug("dropped word of an ended job's chunk {} attempt {} from {}", chunk, attempt,
              from.name);
  return nullptr;
}

WorkerState EventLoop::Workers() const {
  WorkerState w;
  w.joined = scheduler_->worker_count();
  w.starting = locals_->starting();
  w.respawn_pending = locals_->respawn_pending();
  w.ever_joined = peers_.ever_joined();
  w.dispatching = cur_->dispatching;
  return w;
}

std::string EventLoop::Stranded(Clock::time_point now, const WorkerState& workers) {
  bool begun = false;
  std::string why = cur_->wait->Stranded(now, workers, last_loss_, locals_->Ended(), &begun);
  if (begun) {
    Log().warn("no worker left ({}); waiting up to {} ms for one to join (--wait-timeout)",
               last_loss_, cur_->wait->stranded_wait().count());
  }
  return why;
}

void EventLoop::CheckLiveness(Clock::time_point now) {
  for (const auto& [index, quiet] : peers_.Silent(liveness_, now)) {
    auto ms = std::chrono::duration_cast<milliseconds>(quiet).count();
    LoseWorker(index, "sent nothing for " + std::to_string(ms) + " ms (presumed hung)", now);
  }
}

}  // namespace fanout::internal
