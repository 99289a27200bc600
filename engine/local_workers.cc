#include "engine/local_workers.h"

#include <signal.h>

#include <algorithm>

#include "common/log.h"
#include "engine/worker_policy.h"

namespace fanout {

void LocalWorkers::BeginJob(uint32_t n) {
  respawns_used_ = 0;
  consecutive_deaths_ = 0;
  wanted_ = std::max(wanted_, n);
  uint64_t have = launcher_.alive() + to_spawn_;
  if (have < wanted_) to_spawn_ += static_cast<uint32_t>(wanted_ - have);
}

Result<pid_t> LocalWorkers::StartOne(Clock::time_point now) {
  auto pid = launcher_.Spawn("local-" + std::to_string(++spawned_));
  if (pid.ok()) unjoined_[*pid] = now;
  return pid;
}

Status LocalWorkers::SpawnSome() {
  auto until = clock_.Now() + kSpawnSlice;
  while (to_spawn_ > 0) {
    auto pid = StartOne(clock_.Now());
    if (!pid.ok()) {
      to_spawn_ = 0;
      return pid.status();  // the job cannot start its workers: it fails with this
    }
    --to_spawn_;
    if (clock_.Now() >= until) break;
  }
  return Status::Ok();
}

void LocalWorkers::Exited(pid_t pid, Clock::time_point now) {
  unjoined_.erase(pid);
  ++consecutive_deaths_;
  // Back-off grows with deaths in a row and starts over once a chunk is accepted.
  if (!respawn_at_ && MayRespawn()) respawn_at_ = now + RespawnDelay(consecutive_deaths_);
}

uint32_t LocalWorkers::Respawn(Clock::time_point now) {
  uint32_t started = 0;
  last_error_.clear();
  if (respawn_at_ && now >= *respawn_at_) {
    respawn_at_.reset();
    while (launcher_.alive() + to_spawn_ < wanted_ && MayRespawn()) {
      ++respawns_used_;
      ++started;
      auto pid = StartOne(now);
      if (!pid.ok()) {
        last_error_ = pid.status().message();
        Log().warn("{}", last_error_);
        break;
      }
    }
  }
  return started;
}

void LocalWorkers::CheckJoins(Clock::time_point now) {
  for (auto it = unjoined_.begin(); it != unjoined_.end();) {
    if (now - it->second < kJoinGrace) {
      ++it;
      continue;
    }
    Log().warn("local worker (pid {}) did not say HELLO within {} ms; stopping it", it->first,
               kJoinGrace.count());
    launcher_.Kill(it->first, SIGKILL);  // reaped through its pidfd, then replaced
    it = unjoined_.erase(it);
  }
}

std::optional<Clock::time_point> LocalWorkers::NextDeadline(Clock::time_point now) const {
  if (to_spawn_ > 0) return now;
  std::optional<Clock::time_point> at = respawn_at_;
  for (const auto& [pid, since] : unjoined_) {
    at = at ? std::min(*at, since + kJoinGrace) : since + kJoinGrace;
  }
  return at;
}

std::string LocalWorkers::Ended() const {
  if (respawns_used_ >= max_respawns_) {
    return std::to_string(respawns_used_) + " respawns used of " + std::to_string(max_respawns_) +
           ", see --max-respawns";
  }
  if (consecutive_deaths_ >= no_progress_deaths_) {
    return std::to_string(consecutive_deaths_) +
           " workers died in a row with no chunk finished; not respawning";
  }
  return std::to_string(respawns_used_) + " respawns";
}

}  // namespace fanout
