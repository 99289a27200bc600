#include "engine/worker_policy.h"

#include <algorithm>

namespace fanout {

std::chrono::milliseconds RespawnDelay(uint32_t deaths) {
  uint32_t shift = std::min<uint32_t>(deaths > 0 ? deaths - 1 : 0, 4);
  return std::chrono::milliseconds(50) * (1u << shift);
}

std::string WaitPolicy::Expired(Clock::time_point now, const WorkerState& w) const {
  if (wait_timeout_.count() <= 0 || now - start_ < wait_timeout_) return "";
  if (!w.dispatching && min_workers_ > 0) {
    return "only " + std::to_string(w.joined) + " of " + std::to_string(min_workers_) +
           " workers joined within " + std::to_string(wait_timeout_.count()) +
           " ms (--min-workers, --wait-timeout)";
  }
  if (w.joined == 0 && !w.starting && !w.ever_joined) {
    return "no worker joined within " + std::to_string(wait_timeout_.count()) +
           " ms (--wait-timeout)";
  }
  return "";
}

std::string WaitPolicy::Stranded(Clock::time_point now, const WorkerState& w,
                                 const std::string& last_loss, const std::string& respawns,
                                 bool* begun) {
  // Only after a loss: a --listen job waits for its first workers as --wait-timeout says.
  bool none_to_come = w.joined == 0 && !w.starting && !w.respawn_pending;
  if (!(none_to_come && listening_ && !last_loss.empty())) {
    stranded_since_.reset();
    return "";
  }
  if (!stranded_since_) {
    stranded_since_ = now;
    if (begun) *begun = true;
  }
  if (now - *stranded_since_ < stranded_wait()) return "";
  return "no worker left (" + last_loss + "; " + respawns + ") and none joined within " +
         std::to_string(stranded_wait().count()) + " ms (--wait-timeout)";
}

std::optional<Clock::time_point> WaitPolicy::NextDeadline(Clock::time_point now) const {
  std::optional<Clock::time_point> at;
  if (stranded_since_) at = *stranded_since_ + stranded_wait();
  if (wait_timeout_.count() > 0 && now < start_ + wait_timeout_) {
    at = at ? std::min(*at, start_ + wait_timeout_) : start_ + wait_timeout_;
  }
  return at;
}

}  // namespace fanout
