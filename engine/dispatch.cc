// EventLoop (event_loop.h): what goes to workers. The Dispatcher (dispatch_policy.h)
// decides when a worker gets an attempt (credits: slots + prefetch; idle workers take back
// attempts queued elsewhere, which are CANCELled there); this file sends them: short
// chunks several to a TASKS message, long ones as TASK (by reference to local workers that
// proved they share this host).
#include <algorithm>
#include <deque>
#include <string>
#include <vector>

#include "common/frame_pool.h"
#include "common/log.h"
#include "engine/event_loop.h"

namespace fanout::internal {

bool EventLoop::Dispatching() {
  if (cur_->dispatching) return true;
  size_t in_job = scheduler_->worker_count();
  if (in_job >= std::max<uint32_t>(config_->min_workers, 1)) {
    cur_->dispatching = true;
    if (config_->min_workers > 1) Log().info("{} workers joined; dispatching", in_job);
  }
  return cur_->dispatching;
}

uint32_t EventLoop::LiveOn(WorkerIndex worker) const {
  uint32_t live = 0;
  for (const ActiveJob& j : jobs_) live += j.scheduler->live_attempts(worker);
  return live;
}

Elsewhere EventLoop::OthersInJob(const Peer& self) const {
  Elsewhere e;
  size_t local_joined = peers_.local();
  for (const auto& [id, p] : peers_) {
    // A leaving one takes nothing, nor one without the job's task.
    if (&p == &self || !InJob(p) || scheduler_->Draining(p.index)) continue;
    uint32_t live = LiveOn(p.index);  // every job's attempts fill its slots
    if (live < p.slots) e.idle += p.slots - live;
    e.slots += p.slots;
    e.live += scheduler_->live_attempts(p.index);
  }
  // Local workers started but not joined, and those still to start, each with its slots:
  // the first to join must not take the work of those about to.
  uint64_t pending = locals_->to_spawn();
  if (locals_->alive() > local_joined) pending += locals_->alive() - local_joined;
  uint64_t pending_slots = pending * std::max<uint32_t>(config_->local_slots, 1);
  e.idle += pending_slots;
  e.slots += pending_slots;
  return e;
}

bool EventLoop::Batchable(const Peer& peer, uint64_t chunk) {
  const ChunkSpec& spec = job_->chunks[chunk];
  if (spec.range) return peer.batch > 1 && peer.ranges && dispatcher_->Batching();
  return peer.batch > 1 && dispatcher_->Batching() &&
         spec.bytes() + job_->header.size() <= kBatchChunkBytes;
}

std::vector<uint32_t> EventLoop::JobOkExit() const {
  // A warm worker's WELCOME told it an earlier job's --ok-exit: each TASK says this job's,
  // {0} included. A one-job loop's WELCOME is this job's, and TASKs say nothing.
  if (!warm_) return {};
  return config_->ok_exit.empty() ? std::vector<uint32_t>{0} : config_->ok_exit;
}

bool EventLoop::SendTask(const Peer& peer, const Assignment& a) {
  const ChunkSpec& chunk = job_->chunks[a.chunk];
  TaskMsg msg{
      job_id_,      a.chunk + cur_->wire_base, a.attempt, config_->task, config_->args, chunk.range,
      chunk.records};
  msg.ok_exit = JobOkExit();
  // By reference: offsets into the input file, which the worker maps (the header is the
  // file's first bytes). Else the bytes are read into the frame here (CopyOut): a frame
  // pointing into the mapping would be read by ZeroMQ's I/O threads, which block every
  // signal, so a truncated input would kill the coordinator there (SIGBUS, or EFAULT and
  // an assertion).
  bool by_ref = peer.by_ref && !chunk.range;
  if (by_ref) msg.slice = FileSlice{chunk.begin, chunk.bytes(), job_->header.size()};
  zmq::message_t payload;
  if (!by_ref && !chunk.range) {
    payload = PooledFrame(job_->PayloadSize(a.chunk));
    job_->CopyPayload(a.chunk, static_cast<char*>(payload.data()));
  }
  return SendTo(*router_, peer.id, msg, chunk.range || by_ref ? nullptr : &payload);
}

bool EventLoop::SendBatch(const Peer& peer, PendingBatch& batch) {
  TaskBatch& msg = batch.msg;
  bool sent = true;
  if (msg.chunks.size() == 1) {
    sent = SendTask(peer, Assignment{msg.chunks[0], msg.attempts[0], false});
  } else if (!msg.chunks.empty()) {
    // Short chunks are copied into one frame: a copy of a few KiB costs less than a frame.
    for (uint64_t& chunk : msg.chunks) chunk += cur_->wire_base;
    zmq::message_t payload(batch.total);
    char* to = static_cast<char*>(payload.data());
    for (std::string_view b : batch.bytes) to = std::copy(b.begin(), b.end(), to);
    sent = SendTo(*router_, peer.id, msg, batch.total ? &payload : nullptr);
  }
  msg.chunks.clear();
  msg.attempts.clear();
  msg.records.clear();
  msg.bytes.clear();
  msg.lo.clear();
  msg.hi.clear();
  batch.bytes.clear();
  batch.total = 0;
  batch.storage.clear();
  return sent;
}

void EventLoop::Fill(Peer& peer, Clock::time_point now) {
  Restore restore(*this);
  // A worker's credits (slots + prefetch, Dispatcher) count every job's attempts on it, and
  // each free one goes to the job of the highest --priority, and among those to the one
  // with the fewest attempts out (the oldest of equals), so a short job gets the next free
  // slot beside a long one that holds them all. Attempts already out are not taken back
  // for a job of higher priority. A job that has nothing for this peer now (no task,
  // --min-workers, nothing queued or to steal) is passed over until the next Fill.
  for (ActiveJob& j : jobs_) {
    Use(j);
    j.filled = !cur_->error.empty() || !InJob(peer) || !Dispatching() ||
               !dispatcher_->Refill(peer.index, peer.slots,
                                    LiveOn(peer.index) - scheduler_->live_attempts(peer.index));
  }
  bool reachable = true;
  auto elsewhere = [&] { return OthersInJob(peer); };
  // The dispatch time of this Fill's attempts: one clock read per job, not per attempt.
  const Telemetry* stamped = nullptr;
  double stamp = 0;
  auto before = [](const ActiveJob& a, const ActiveJob& b) {
    if (a.job->config.priority != b.job->config.priority) {
      return a.job->config.priority > b.job->config.priority;
    }
    return a.in_flight.size() < b.in_flight.size();
  };
  while (reachable) {
    ActiveJob* next = nullptr;
    for (ActiveJob& j : jobs_) {
      if (!j.filled && (!next || before(j, *next))) next = &j;
    }
    if (!next) break;
    Use(*next);
    uint32_t others = LiveOn(peer.index) - scheduler_->live_attempts(peer.index);
    auto d = dispatcher_->Next(peer.index, peer.slots, now, elsewhere, others);
    if (!d) {
      next->filled = true;
      continue;
    }
    const Assignment* a = &d->assignment;
    if (d->stolen_from) {
      // It never started: it goes as if never sent (no span, no joblog line), and a result
      // that crosses the CANCEL is a late duplicate.
      const CancelOrder& from = *d->stolen_from;
      cur_->in_flight.erase({from.chunk, from.attempt});
      if (Peer* victim = peers_.Find(from.worker)) {
        Log().debug("chunk {} attempt {} taken back from {} for {}", from.chunk, from.attempt,
                    victim->name, peer.name);
        SendTo(*router_, victim->id, Cancel{from.chunk + cur_->wire_base, from.attempt});
      }
    }
    Log().debug("chunk {} attempt {}{} -> {}", a->chunk, a->attempt,
                a->speculative ? " (speculative)" : "", peer.name);
    if (stamped != &stats_->telemetry) {
      stamped = &stats_->telemetry;
      stamp = stamped->Now();
    }
    cur_->in_flight[{a->chunk, a->attempt}] = {peer.index, stamp};
    stats_->telemetry.RecordStart(a->chunk, a->attempt, peer.index);
    PendingBatch& batch = cur_->batch;
    if (!Batchable(peer, a->chunk)) {
      reachable = SendBatch(peer, batch) && SendTask(peer, *a);
      continue;
    }
    const ChunkSpec& spec = job_->chunks[a->chunk];
    std::string_view bytes =
        spec.range ? std::string_view() : job_->Payload(a->chunk, batch.header_storage);
    // The batch's payload is one frame: it must not pass the --max-message its workers got
    // (a worker drops a connection that sends it a bigger frame).
    size_t most = std::min<size_t>(kBatchBytes, config_->max_message > 0
                                                    ? static_cast<size_t>(config_->max_message)
                                                    : kBatchBytes);
    if (!batch.msg.chunks.empty() && batch.total + bytes.size() > most) {
      reachable = SendBatch(peer, batch);
    }
    if (batch.msg.chunks.empty()) {
      batch.msg.job_id = job_id_;
      batch.msg.task = config_->task;
      batch.msg.args = config_->args;
      batch.msg.ok_exit = JobOkExit();
    }
    if (spec.range) {  // a job's chunks are all ranges or all bytes
      batch.msg.lo.push_back(spec.range->lo);
      batch.msg.hi.push_back(spec.range->hi);
    } else if (!job_->header.empty()) {
      bytes = batch.storage.emplace_back(bytes);  // Payload's view is of a scratch string
    }
    batch.msg.chunks.push_back(a->chunk);
    batch.msg.attempts.push_back(a->attempt);
    batch.msg.records.push_back(spec.records);
    batch.msg.bytes.push_back(bytes.size());
    batch.bytes.push_back(bytes);
    batch.total += bytes.size();
    if (batch.msg.chunks.size() >= peer.batch || batch.total >= most) {
      reachable = SendBatch(peer, batch);
    }
  }
  for (ActiveJob& j : jobs_) {
    Use(j);
    if (reachable) {
      reachable = SendBatch(peer, j.batch);
    } else {
      j.batch = PendingBatch{};  // its attempts go back to the queue with the peer, below
    }
  }
  // Its routing id is gone (it reconnected, or died): a local one gets kJoinGrace to come
  // back before it is stopped.
  if (!reachable) LoseWorker(peer.index, "is unreachable", now, /*kill=*/false);
}

}  // namespace fanout::internal
