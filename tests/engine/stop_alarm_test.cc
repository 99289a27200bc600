// StopAlarm: the process-wide thread requests a source at its deadline, an earlier
// deadline wakes it from a later one, and a disarmed alarm never requests its source; in a
// process that installed Interrupt, its thread keeps the alarms (a child of this binary).
// Waits are on the sources themselves (a stop callback fulfilling a promise), bounded by
// generous timeouts that only a broken alarm reaches.
#include "engine/stop_alarm.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <iterator>
#include <memory>
#include <stop_token>

#include "engine/interrupt.h"
#include "tests/support/test_support.h"

namespace fanout {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kGenerous = std::chrono::seconds(20);

// Becomes ready when `source` is requested to stop.
struct Watched {
  std::stop_source source;
  std::promise<void> promise;
  std::future<void> stopped = promise.get_future();
  std::stop_callback<std::function<void()>> callback{source.get_token(),
                                                     [this] { promise.set_value(); }};
};

TEST(StopAlarmTest, RequestsTheSourceAtItsDeadline) {
  Watched w;
  auto armed = Clock::now();
  StopAlarm alarm(w.source, armed + std::chrono::milliseconds(20));
  ASSERT_EQ(w.stopped.wait_for(kGenerous), std::future_status::ready);
  EXPECT_GE(Clock::now() - armed, std::chrono::milliseconds(20));
}

TEST(StopAlarmTest, AnEarlierDeadlineWakesTheThreadFromALaterOne) {
  Watched late, soon;
  StopAlarm far(late.source, Clock::now() + std::chrono::hours(1));
  StopAlarm near(soon.source, Clock::now() + std::chrono::milliseconds(5));
  ASSERT_EQ(soon.stopped.wait_for(kGenerous), std::future_status::ready);
  EXPECT_FALSE(late.source.stop_requested());
}

TEST(StopAlarmTest, ADisarmedAlarmNeverRequestsItsSource) {
  Watched disarmed, never, witness;
  auto now = Clock::now();
  auto deadline = now + std::chrono::milliseconds(200);
  { StopAlarm gone(disarmed.source, deadline); }
  // An alarm whose deadline passed before it was disarmed may fire, as it should: its
  // deadline is far enough for the first alarm to start the thread and be disarmed on a
  // slow machine (ThreadSanitizer's thread start took longer than the 10 ms it had).
  if (Clock::now() >= deadline) GTEST_SKIP() << "arming and disarming took 200 ms";
  StopAlarm no_deadline(never.source, std::nullopt);
  // The witness's deadline comes after the disarmed one's: once it fired, the thread has
  // passed the earlier deadline too.
  StopAlarm later(witness.source, deadline + std::chrono::milliseconds(20));
  ASSERT_EQ(witness.stopped.wait_for(kGenerous), std::future_status::ready);
  EXPECT_FALSE(disarmed.source.stop_requested());
  EXPECT_FALSE(never.source.stop_requested());
}

TEST(StopAlarmTest, ManyQuickAlarmsInARow) {
  // A run of calibration chunks: each armed and disarmed long before its deadline.
  for (int i = 0; i < 10000; ++i) {
    std::stop_source s;
    { StopAlarm a(s, Clock::now() + std::chrono::seconds(3)); }
    ASSERT_FALSE(s.stop_requested()) << i;
  }
}

// In a child of this binary (the test below, with FANOUT_STOP_ALARM_CHILD set), before
// gtest's main: a process that installed Interrupt before any alarm, as fanout's programs
// do. Exits 0, or with the number of the check that failed (named on stderr).
int InterruptsThreadKeepsTheAlarms() {
  auto failed = [](int check, const char* what) {
    std::fprintf(stderr, "stop_alarm child: %s\n", what);
    return check;
  };
  auto threads = [] {
    auto tasks = std::filesystem::directory_iterator("/proc/self/task");
    return std::distance(tasks, std::filesystem::directory_iterator());
  };
  Interrupt::Install();
  auto before = threads();  // main, Interrupt's (and a sanitizer runtime's own, if any)
  Watched timed, untimed;
  {
    StopAlarm alarm(timed.source, Clock::now() + std::chrono::milliseconds(20));
    if (timed.stopped.wait_for(kGenerous) != std::future_status::ready) {
      return failed(1, "the alarm's deadline passed unnoticed");
    }
  }
  if (threads() != before) return failed(2, "the alarms started a thread of their own");
  StopAlarm on_interrupt(untimed.source, std::nullopt);
  if (kill(getpid(), SIGINT) != 0) return failed(3, "kill failed");  // Interrupt's thread takes it
  if (untimed.stopped.wait_for(kGenerous) != std::future_status::ready) {
    return failed(4, "Ctrl-C left the alarm unrequested");
  }
  if (Interrupt::signal_number() != SIGINT) return failed(5, "the signal was not noted");
  return 0;
}

[[maybe_unused]] const bool kChild = [] {
  if (std::getenv("FANOUT_STOP_ALARM_CHILD")) _exit(InterruptsThreadKeepsTheAlarms());
  return false;
}();

TEST(StopAlarmTest, AfterInterruptInstallItsThreadKeepsTheAlarms) {
  fanout::testing::RunResult child =
      fanout::testing::Run({"/proc/self/exe"}, {.stdin_data = "",
                                                .timeout = std::chrono::seconds(60),
                                                .env = {"FANOUT_STOP_ALARM_CHILD=1"}});
  EXPECT_EQ(child.exit_code, 0) << child.err;
}

}  // namespace
}  // namespace fanout
