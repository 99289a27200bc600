// EventLoop (event_loop.h): what goes to workers. The Dispatcher (dispatch_policy.h)
// decides when a worker gets an attempt (credits: slots + prefetch; idle workers take back
// attempts queued elsewhere, which are CANCELled there); this file sends them: short
// chunks several to a TASKS message, long ones as TASK (by reference to local workers that
// proved they share this host).
#include <algorithm>
#include <deque>
#include <string>
#include <vector>

#include "common/log.h"
#include "engine/event_loop.h"

namespace fanout::internal {

bool EventLoop::Dispatching() {
  if (dispatching_) return true;
  size_t in_job = peers_.in_job();
  if (in_job >= std::max<uint32_t>(config_->min_workers, 1)) {
    dispatching_ = true;
    if (config_->min_workers > 1) Log().info("{} workers joined; dispatching", in_job);
  }
  return dispatching_;
}

uint64_t EventLoop::IdleSlotsElsewhere(const Peer& self) const {
  uint64_t idle = 0;
  size_t local_joined = peers_.local();
  for (const auto& [id, p] : peers_) {
    // A leaving one takes nothing, nor one without the job's task.
    if (&p == &self || !p.in_job || scheduler_->Draining(p.index)) continue;
    uint32_t live = scheduler_->live_attempts(p.index);
    if (live < p.slots) idle += p.slots - live;
  }
  // Local workers started but not joined, and those still to start, each with its slots:
  // the first to join must not take the work of those about to.
  uint64_t pending = locals_->to_spawn();
  if (locals_->alive() > local_joined) pending += locals_->alive() - local_joined;
  return idle + pending * std::max<uint32_t>(config_->local_slots, 1);
}

bool EventLoop::Batchable(const Peer& peer, uint64_t chunk) {
  const ChunkSpec& spec = job_->chunks[chunk];
  return peer.batch > 1 && dispatcher_->Batching() && !spec.range &&
         spec.bytes() + job_->header.size() <= kBatchChunkBytes;
}

bool EventLoop::SendTask(const Peer& peer, const Assignment& a) {
  const ChunkSpec& chunk = job_->chunks[a.chunk];
  TaskMsg msg{job_id_,       a.chunk + wire_base_, a.attempt,    config_->task,
              config_->args, chunk.range,          chunk.records};
  // By reference: offsets into the input file, which the worker maps (the header is the
  // file's first bytes). Else the bytes are read into the frame here (CopyOut): a frame
  // pointing into the mapping would be read by ZeroMQ's I/O threads, which block every
  // signal, so a truncated input would kill the coordinator there (SIGBUS, or EFAULT and
  // an assertion).
  bool by_ref = peer.by_ref && !chunk.range;
  if (by_ref) msg.slice = FileSlice{chunk.begin, chunk.bytes(), job_->header.size()};
  zmq::message_t payload;
  if (!by_ref && !chunk.range) {
    const std::string_view header = job_->header;
    payload.rebuild(header.size() + chunk.bytes());
    char* to = static_cast<char*>(payload.data());
    std::copy(header.begin(), header.end(), to);
    job_->input.CopyOut(chunk.begin, chunk.bytes(), to + header.size());
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
    for (uint64_t& chunk : msg.chunks) chunk += wire_base_;
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
  if (!peer.in_job || !Dispatching()) return;
  PendingBatch batch;
  batch.msg.job_id = job_id_;
  batch.msg.task = config_->task;
  batch.msg.args = config_->args;
  std::string header_storage;
  std::deque<std::string> storage;  // --header: each batched chunk's header + bytes (stable)
  bool reachable = true;
  auto idle_elsewhere = [&] { return IdleSlotsElsewhere(peer); };
  while (error_.empty() && reachable) {
    auto d = dispatcher_->Next(peer.index, peer.slots, now, idle_elsewhere);
    if (!d) break;
    const Assignment* a = &d->assignment;
    if (d->stolen_from) {
      // It never started: it goes as if never sent (no span, no joblog line), and a result
      // that crosses the CANCEL is a late duplicate.
      const CancelOrder& from = *d->stolen_from;
      in_flight_.erase({from.chunk, from.attempt});
      if (Peer* victim = peers_.Find(from.worker)) {
        Log().debug("chunk {} attempt {} taken back from {} for {}", from.chunk, from.attempt,
                    victim->name, peer.name);
        SendTo(*router_, victim->id, Cancel{from.chunk + wire_base_, from.attempt});
      }
    }
    Log().debug("chunk {} attempt {}{} -> {}", a->chunk, a->attempt,
                a->speculative ? " (speculative)" : "", peer.name);
    in_flight_[{a->chunk, a->attempt}] = {peer.index, stats_->telemetry.Now()};
    stats_->telemetry.RecordStart(a->chunk, a->attempt, peer.index);
    if (!Batchable(peer, a->chunk)) {
      reachable = SendBatch(peer, batch) && SendTask(peer, *a);
      continue;
    }
    std::string_view bytes = job_->Payload(a->chunk, header_storage);
    if (!job_->header.empty()) bytes = storage.emplace_back(bytes);
    batch.msg.chunks.push_back(a->chunk);
    batch.msg.attempts.push_back(a->attempt);
    batch.msg.records.push_back(job_->chunks[a->chunk].records);
    batch.msg.bytes.push_back(bytes.size());
    batch.bytes.push_back(bytes);
    batch.total += bytes.size();
    if (batch.msg.chunks.size() >= peer.batch || batch.total >= kBatchBytes) {
      reachable = SendBatch(peer, batch);
      storage.clear();
    }
  }
  if (reachable) reachable = SendBatch(peer, batch);
  // Its routing id is gone (it reconnected, or died): a local one gets kJoinGrace to come
  // back before it is stopped.
  if (!reachable) LoseWorker(peer.index, "is unreachable", now, /*kill=*/false);
}

}  // namespace fanout::internal
