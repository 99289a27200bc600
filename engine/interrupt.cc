// Interrupt (interrupt.h). The signals are blocked in the thread that installs them (main,
// before it starts any other) and so in every thread started after it; one thread waits for
// them with sigwait. A handler would run on whichever thread the kernel picks, and a
// sanitizer runtime may defer it on that thread or drop it (ThreadSanitizer drops a signal
// that lands on a thread that is exiting): a Ctrl-C that is waited for is never lost. The
// handler stays installed for threads started before Install(), which do not block them.
#include "engine/interrupt.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace fanout {
namespace {

std::atomic<int> g_signal{0};
int g_pipe[2] = {-1, -1};

// Async-signal-safe: called from the handler as well as from the waiting thread.
void Note(int sig) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig)) {
    if (sig == SIGINT) _exit(130);  // second Ctrl-C: leave now
    return;
  }
  char byte = 1;
  [[maybe_unused]] ssize_t n = write(g_pipe[1], &byte, 1);
}

}  // namespace

void Interrupt::Install() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return;
    sigset_t set;
    sigemptyset(&set);
    struct sigaction sa {};
    sa.sa_handler = Note;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    // SIGHUP: the terminal went away: stop as for SIGTERM.
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      sigaction(sig, &sa, nullptr);
      sigaddset(&set, sig);
    }
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    // Every child fanout starts gets an empty signal mask (spawn.h, local_launcher.cc).
    std::thread([set] {
      for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) == 0) Note(sig);
      }
    }).detach();
  });
}

bool Interrupt::Requested() { return g_signal.load() != 0; }
int Interrupt::fd() { return g_pipe[0]; }
int Interrupt::signal_number() { return g_signal.load(); }

}  // namespace fanout
