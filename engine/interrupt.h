// Interrupt: SIGINT/SIGTERM/SIGHUP handling for the coordinator (SIGHUP, a closed terminal
// or ssh session, is handled as SIGTERM). The first signal sets a flag
// and makes fd() readable (a self-pipe, so event loops can poll it); the job then stops
// dispatching, cancels running chunks, stops its workers and exits 130. A second SIGINT
// exits at once. Install() once from main; the rest is async-signal-safe and thread-safe.
#pragma once

#include <time.h>

#include <chrono>
#include <functional>

namespace fanout {

class Interrupt {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // What the waiting thread also runs (StopAlarm's deadlines, stop_alarm.cc): given
  // Requested(), it returns when it wants to run next (TimePoint::max(): only when woken).
  using Tick = std::function<TimePoint(bool interrupted)>;

  // Blocks the signals in the calling thread (and so in every thread it starts later) and
  // waits for them on a thread of its own; call it from main before starting threads. A
  // write waiting for an output's reader then gives up once interrupted
  // (OutputFile::StopWritesOn). Idempotent.
  static void Install();
  static bool Requested();
  // Readable once an interrupt was requested; -1 before Install().
  static int fd();
  // The signal that interrupted (SIGINT, SIGTERM or SIGHUP), 0 if none.
  static int signal_number();

  // Has the thread that waits for the signals run `tick` too: soon after this call, after
  // every signal and every Wake(), and at the time `tick` last asked for. One thread then
  // serves both (a thread's start and exit cost a one-chunk serial run 0.36 ms of its 5.6
  // on a small virtual machine: BENCHMARKS.md). False (and `tick` is not kept) without
  // Install(), or once a tick was set: the caller then waits on a thread of its own.
  static bool SetTick(Tick tick);
  // Makes the waiting thread run its tick again (from any thread; not from a signal handler).
  static void Wake();
};

// ppoll's timeout until `deadline`, in `storage` (zero once it passed); null, to wait without
// one, for TimePoint::max(). For the threads that sleep until a deadline (here and StopAlarm).
timespec* TimeoutUntil(Interrupt::TimePoint deadline, timespec& storage);

}  // namespace fanout
