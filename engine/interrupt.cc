// Interrupt (interrupt.h). The signals are blocked in the thread that installs them (main,
// before it starts any other) and so in every thread started after it; one thread waits for
// them on a signalfd (with sigwait if there is none). A handler would run on whichever
// thread the kernel picks, and a sanitizer runtime may defer it on that thread or drop it
// (ThreadSanitizer drops a signal that lands on a thread that is exiting): a Ctrl-C that
// is waited for is never lost. The handler stays installed for threads started before
// Install(), which do not block them.
#include "engine/interrupt.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "common/output_file.h"

namespace fanout {
namespace {

std::atomic<int> g_signal{0};
int g_pipe[2] = {-1, -1};
std::atomic<int> g_wake{-1};             // Wake(): an eventfd the waiting thread watches
std::atomic<Interrupt::Tick*> g_tick{};  // SetTick's, never freed (the thread outlives main)

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

// The waiting thread: the signals as they come, and the tick when it asks to run.
void Watch(int signals) {
  Interrupt::TimePoint next = Interrupt::TimePoint::max();
  for (;;) {
    timespec storage{};
    timespec* wait = TimeoutUntil(next, storage);  // null: until a signal or Wake()
    pollfd fds[2] = {{signals, POLLIN, 0}, {g_wake.load(), POLLIN, 0}};
    if (ppoll(fds, 2, wait, nullptr) > 0) {
      signalfd_siginfo info{};
      while (read(signals, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        Note(static_cast<int>(info.ssi_signo));
      }
      uint64_t count;
      [[maybe_unused]] ssize_t r = read(fds[1].fd, &count, sizeof count);
    }
    Interrupt::Tick* tick = g_tick.load();
    next = tick ? (*tick)(Interrupt::Requested()) : Interrupt::TimePoint::max();
  }
}

}  // namespace

void Interrupt::Install() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return;
    // A job stopped while its output's reader stalls ends instead of waiting in write(2).
    OutputFile::StopWritesOn(g_pipe[0]);
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
    int signals = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    int wake = signals >= 0 ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
    if (wake >= 0) {
      g_wake = wake;
      std::thread(Watch, signals).detach();
      return;
    }
    if (signals >= 0) close(signals);
    std::thread([set] {  // no descriptors to spare: no tick either (SetTick says so)
      for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) == 0) Note(sig);
      }
    })
        .detach();
  });
}

bool Interrupt::SetTick(Tick tick) {
  if (g_wake.load() < 0) return false;
  auto* kept = new Tick(std::move(tick));
  Tick* none = nullptr;
  if (!g_tick.compare_exchange_strong(none, kept)) {
    delete kept;
    return false;
  }
  Wake();
  return true;
}

void Interrupt::Wake() {
  int wake = g_wake.load();
  if (wake < 0) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake, &one, sizeof one);
}

timespec* TimeoutUntil(Interrupt::TimePoint deadline, timespec& storage) {
  if (deadline == Interrupt::TimePoint::max()) return nullptr;
  auto left =
      std::max(deadline - std::chrono::steady_clock::now(), Interrupt::TimePoint::duration::zero());
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(left);
  storage.tv_sec = static_cast<time_t>(secs.count());
  storage.tv_nsec =
      static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(left - secs).count());
  return &storage;
}

bool Interrupt::Requested() { return g_signal.load() != 0; }
int Interrupt::fd() { return g_pipe[0]; }
int Interrupt::signal_number() { return g_signal.load(); }

}  // namespace fanout
