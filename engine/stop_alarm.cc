#include "engine/stop_alarm.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <mutex>
#include <thread>

#include "engine/interrupt.h"

namespace fanout {
namespace {

using TimePoint = StopAlarm::TimePoint;

// Without Interrupt::Install() (a library user's process) there is no descriptor to wait
// on: the thread then looks at Interrupt::Requested() this often while alarms are armed.
constexpr std::chrono::milliseconds kInterruptPoll{50};

class Alarms {
 public:
  static Alarms& Get() {
    // Never destroyed: the thread it starts runs until the process exits.
    static Alarms* alarms = new Alarms;
    return *alarms;
  }

  uint64_t Arm(std::stop_source source, std::optional<TimePoint> deadline) {
    std::lock_guard lock(mu_);
    if (Interrupt::Requested()) {
      source.request_stop();
      return 0;
    }
    uint64_t id = ++last_id_;
    TimePoint due = deadline.value_or(TimePoint::max());
    armed_.emplace(id, Entry{std::move(source), due});
    if (!started_) {
      started_ = true;
      sleeping_until_ = TimePoint::min();  // the thread reads armed_ before it sleeps
      // Interrupt's thread (after Interrupt::Install) runs Tick once this lock is let go.
      shared_ = Interrupt::SetTick([this](bool interrupted) { return Tick(interrupted); });
      if (!shared_) {
        wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        std::thread([this] { Run(); }).detach();
      }
    } else if (std::min(due, PollDeadline()) < sleeping_until_) {
      if (shared_) {
        Interrupt::Wake();
      } else {
        uint64_t one = 1;
        [[maybe_unused]] ssize_t n = write(wake_, &one, sizeof one);
      }
      sleeping_until_ = TimePoint::min();  // woken: the next Arm need not wake it again
    }
    return id;
  }

  void Disarm(uint64_t id) {
    if (id == 0) return;
    std::lock_guard lock(mu_);
    armed_.erase(id);
  }

 private:
  struct Entry {
    std::stop_source source;
    TimePoint deadline;
  };

  Alarms() = default;

  // When the thread must next look at Interrupt::Requested() without a descriptor.
  TimePoint PollDeadline() const {
    return Interrupt::fd() < 0 && !armed_.empty()
               ? std::chrono::steady_clock::now() + kInterruptPoll
               : TimePoint::max();
  }

  // Requests the alarms that are due (all of them once interrupted) and returns when the
  // next one is (max: none), which the thread sleeps until unless woken.
  TimePoint Tick(bool interrupted) {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    interrupted = interrupted || Interrupt::Requested();
    TimePoint next = PollDeadline();
    for (auto it = armed_.begin(); it != armed_.end();) {
      // Under the lock, so that a disarmed alarm is never requested afterwards.
      if (interrupted || it->second.deadline <= now) {
        it->second.source.request_stop();
        it = armed_.erase(it);
      } else {
        next = std::min(next, it->second.deadline);
        ++it;
      }
    }
    sleeping_until_ = next;
    return next;
  }

  // The alarms' own thread, where Interrupt has none to share (a library user's process).
  void Run() {
    for (;;) {
      TimePoint next = Tick(false);
      timespec storage{};
      timespec* wait = TimeoutUntil(next, storage);  // null: until woken or interrupted
      // Interrupt's descriptor stays readable once signalled: watched only until then.
      pollfd fds[2] = {{wake_, POLLIN, 0}, {Interrupt::fd(), POLLIN, 0}};
      nfds_t n = Interrupt::fd() >= 0 && !Interrupt::Requested() ? 2 : 1;
      if (ppoll(fds, n, wait, nullptr) > 0 && (fds[0].revents & POLLIN)) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = read(wake_, &count, sizeof count);
      }
    }
  }

  std::mutex mu_;
  std::map<uint64_t, Entry> armed_;
  uint64_t last_id_ = 0;
  int wake_ = -1;         // the alarms' own thread's eventfd (not made when Interrupt's is shared)
  bool started_ = false;  // a thread runs Tick: Interrupt's (shared_) or the alarms' own
  bool shared_ = false;
  // The deadline the thread sleeps until (max: none); min while a wake-up is on its way.
  TimePoint sleeping_until_ = TimePoint::max();
};

}  // namespace

StopAlarm::StopAlarm(std::stop_source source, std::optional<TimePoint> deadline)
    : id_(Alarms::Get().Arm(std::move(source), deadline)) {}

StopAlarm::~StopAlarm() { Alarms::Get().Disarm(id_); }

}  // namespace fanout
