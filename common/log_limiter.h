// LogLimiter: decides which repeats of a warning are worth a line, so that a flood of bad
// connections or messages cannot flood the log. Per reason key, the first `burst` messages
// of an interval are logged; the rest are counted, and once the interval has passed one
// summary ("... and N more like this") stands for them. Pure: time is passed in, nothing is
// printed. RateLimitedWarn wraps it with Log() and the steady clock. Not thread-safe: each
// thread that logs (the event loop, the ZAP handler) owns its own limiter.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fanout {

class LogLimiter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // What to print for one more message of a key.
  struct Verdict {
    bool log = false;         // print this message
    uint64_t suppressed = 0;  // first print "... and N more like this" for the last interval
  };
  // A key whose interval ended with messages that were not printed.
  struct Summary {
    std::string key;
    uint64_t suppressed = 0;
  };

  LogLimiter(uint32_t burst, std::chrono::steady_clock::duration interval)
      : burst_(burst), interval_(interval) {}

  // Called for every message of `key`. An interval starts at a key's first message and
  // lasts `interval`; the first `burst` messages in it are logged.
  Verdict Admit(const std::string& key, TimePoint now);
  // Summaries of the keys whose interval has ended (their counts restart); for a caller
  // that wants the summary on time even if no further message of that key comes.
  std::vector<Summary> Due(TimePoint now);
  // Every pending summary, interval ended or not (at shutdown).
  std::vector<Summary> Drain();

 private:
  struct Window {
    TimePoint start;
    uint32_t logged = 0;
    uint64_t suppressed = 0;
  };
  uint32_t burst_;
  std::chrono::steady_clock::duration interval_;
  std::map<std::string, Window> windows_;
};

// A LogLimiter in front of Log().warn (common/log.h): Warn(key, line) prints `line` if the limiter
// admits it, preceded by a summary line for the key when one is due. Flush prints the
// summaries still pending (call it when the loop ends). Same thread rules as LogLimiter.
class RateLimitedWarn {
 public:
  // 5 lines per reason per 10 s by default.
  explicit RateLimitedWarn(uint32_t burst = 5,
                           std::chrono::steady_clock::duration interval = std::chrono::seconds(10))
      : limiter_(burst, interval) {}
  ~RateLimitedWarn() { Flush(); }
  RateLimitedWarn(const RateLimitedWarn&) = delete;
  RateLimitedWarn& operator=(const RateLimitedWarn&) = delete;

  void Warn(const std::string& key, const std::string& line);
  // Prints the summaries whose interval has ended (cheap; call it now and then).
  void Tick();
  void Flush();

 private:
  LogLimiter limiter_;
};

}  // namespace fanout
