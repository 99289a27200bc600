#include "common/log_limiter.h"

#include "common/log.h"

namespace fanout {

LogLimiter::Verdict LogLimiter::Admit(const std::string& key, TimePoint now) {
  Verdict verdict;
  auto [it, fresh] = windows_.try_emplace(key);
  Window& w = it->second;
  if (fresh || now - w.start >= interval_) {
    verdict.suppressed = fresh ? 0 : w.suppressed;
    w = Window{now, 0, 0};
  }
  if (w.logged < burst_) {
    ++w.logged;
    verdict.log = true;
  } else {
    ++w.suppressed;
  }
  return verdict;
}

std::vector<LogLimiter::Summary> LogLimiter::Due(TimePoint now) {
  std::vector<Summary> out;
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (now - it->second.start < interval_) {
      ++it;
      continue;
    }
    if (it->second.suppressed > 0) out.push_back({it->first, it->second.suppressed});
    it = windows_.erase(it);  // the key's next message starts a fresh interval
  }
  return out;
}

std::vector<LogLimiter::Summary> LogLimiter::Drain() {
  std::vector<Summary> out;
  for (const auto& [key, w] : windows_) {
    if (w.suppressed > 0) out.push_back({key, w.suppressed});
  }
  windows_.clear();
  return out;
}

namespace {

void PrintSummary(const std::string& key, uint64_t n) {
  Log().warn("... and {} more like this ({}) not shown", n, key);
}

}  // namespace

void RateLimitedWarn::Warn(const std::string& key, const std::string& line) {
  LogLimiter::Verdict v = limiter_.Admit(key, std::chrono::steady_clock::now());
  if (v.suppressed > 0) PrintSummary(key, v.suppressed);
  if (v.log) Log().warn("{}", line);
}

void RateLimitedWarn::Tick() {
  for (const auto& s : limiter_.Due(std::chrono::steady_clock::now())) {
    PrintSummary(s.key, s.suppressed);
  }
}

void RateLimitedWarn::Flush() {
  for (const auto& s : limiter_.Drain()) PrintSummary(s.key, s.suppressed);
}

}  // namespace fanout
