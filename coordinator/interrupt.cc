#include "coordinator/interrupt.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

namespace fanout {
namespace {

std::atomic<int> g_signal{0};
int g_pipe[2] = {-1, -1};

void OnSignal(int sig) {
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
    struct sigaction sa {};
    sa.sa_handler = OnSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);  // the terminal went away: stop as for SIGTERM
  });
}

bool Interrupt::Requested() { return g_signal.load() != 0; }
int Interrupt::fd() { return g_pipe[0]; }
int Interrupt::signal_number() { return g_signal.load(); }

}  // namespace fanout
