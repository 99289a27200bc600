// Interrupt: SIGINT/SIGTERM/SIGHUP handling for the coordinator (SIGHUP, a closed terminal
// or ssh session, is handled as SIGTERM). The first signal sets a flag
// and makes fd() readable (a self-pipe, so event loops can poll it); the job then stops
// dispatching, cancels running chunks, stops its workers and exits 130. A second SIGINT
// exits at once. Install() once from main; the rest is async-signal-safe and thread-safe.
#pragma once

namespace fanout {

class Interrupt {
 public:
  // Blocks the signals in the calling thread (and so in every thread it starts later) and
  // waits for them on a thread of its own; call it from main before starting threads.
  // Idempotent.
  static void Install();
  static bool Requested();
  // Readable once an interrupt was requested; -1 before Install().
  static int fd();
  // The signal that interrupted (SIGINT, SIGTERM or SIGHUP), 0 if none.
  static int signal_number();
};

}  // namespace fanout
