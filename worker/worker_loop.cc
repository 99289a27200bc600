#include "worker/worker_loop.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <vector>
#include <zmq.hpp>

#include "common/command.h"
#include "common/exit_code.h"
#include "common/handshake_monitor.h"
#include "common/log.h"
#include "common/measured_run.h"
#include "common/spawn.h"
#include "common/transport.h"
#include "worker/batching.h"
#include "worker/input_map.h"
#include "worker/task_runner.h"

namespace fanout {
namespace {

using std::chrono::milliseconds;

// After kQuickStreak attempts in a row took under kQuickSeconds each, TASKs that arrive
// while no attempt is running run inline on the loop thread: for microsecond tasks the
// hand-off to a runner thread and back costs more than the task. The first slower
// attempt ends the streak, so a slow task blocks the loop (heartbeats, CANCEL) at most
// once, for its own duration.
constexpr uint32_t kQuickStreak = 16;
constexpr double kQuickSeconds = 0.0002;
// How long a worker waits for WELCOME after its HELLO before it starts over: generous,
// since a coordinator that starts many workers on a busy machine may answer late, and a
// HELLO sent again under a new routing id only adds to its work.
constexpr milliseconds kWelcomeGrace{20000};

// How one connection ended.
enum class SessionEnd {
  kShutdown,      // the coordinator said the job is over
  kWrongVersion,  // refused for speaking another protocol version
  kLost,          // silence or REJECT: reconnect after back-off
  kSignal,        // SIGINT/SIGTERM/SIGHUP, or a drain that ended (said goodbye)
  kNoSocket,      // no DEALER could connect to the endpoint (connect_error_ says why)
};

// How long the goodbye (LEAVE with `bye`) may take to leave the socket before the worker
// exits anyway.
constexpr milliseconds kByeLinger{1000};
// How long a command's death by SIGTERM waits for this worker's own SIGTERM (Slurm signals
// a step's processes in turn, the command sometimes first) before it is reported.
constexpr milliseconds kOwnSignalWait{500};

using AttemptKey = std::pair<uint64_t, uint32_t>;

class Worker {
 public:
  explicit Worker(const WorkerConfig& config)
      : config_(config), runner_(config.slots, config.name) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    signal_fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  }
  ~Worker() {
    if (signal_fd_ >= 0) close(signal_fd_);
  }

  // The exit code, or the error of a first connect that failed (a bad endpoint).
  Result<int> Run();

 private:
  SessionEnd Session();
  // Handles one message; returns a session end, or nothing to keep going.
  std::optional<SessionEnd> Handle(zmq::socket_t& socket, Envelope& env);
  void SendResults(zmq::socket_t& socket);
  // Sends STARTED for the attempts that entered a slot since the last one (only when the
  // coordinator asked for it in WELCOME; otherwise nothing is collected).
  void SendStarts(zmq::socket_t& socket);
  // This worker's own --max-message as an output limit (0 = none).
  uint64_t OwnOutputLimit() const {
    return static_cast<uint64_t>(std::max<int64_t>(config_.security.max_message, 0));
  }
  // Whether an arriving attempt runs on the loop thread: after a quick streak, with the
  // runner idle (see kQuickStreak).
  bool MayRunInline() const { return quick_streak_ >= kQuickStreak && runner_.in_progress() == 0; }
  // Counts `done` in the quick streak and fails it if its output is over --max-message.
  void Vet(FinishedAttempt& done);
  // Sends finished attempts: in RESULTS batches once the coordinator sends TASKS.
  void SendFinished(zmq::socket_t& socket, std::vector<FinishedAttempt>& done);
  // Runs a TASKS message's attempts: inline while they are quick, else on the runner.
  void HandleBatch(zmq::socket_t& socket, const TaskBatch& batch,
                   const std::optional<zmq::message_t>& payload);
  // Runs a quick attempt on the loop thread: no hand-off to a runner thread and back.
  void RunInline(zmq::socket_t& socket, const TaskDef& def, const TaskMsg& task,
                 const std::optional<zmq::message_t>& payload);
  bool SignalPending();
  // Some of `done` failed by a SIGTERM this worker did not send while it is not draining:
  // waits (at most kOwnSignalWait) for the worker's own signal and handles it, so that a
  // drain hands those attempts back instead of reporting them as failures.
  void AwaitOwnSignal(zmq::socket_t& socket, const std::vector<FinishedAttempt>& done);
  // A signal arrived during a session: SIGTERM to a worker whose coordinator takes LEAVE
  // starts a drain (false: the session goes on); anything else ends the session at once
  // (true), after a goodbye handing back every attempt when the coordinator takes LEAVE.
  bool OnSignal(zmq::socket_t& socket, Clock::time_point now);
  // Sends LEAVE handing back `back` (in messages of at most kMaxBatch), the last with `bye`.
  void SendLeave(zmq::socket_t& socket, const std::vector<AttemptKey>& back, bool bye);
  // Goodbye: hands back every attempt still held (their commands are stopped by Run).
  void SayBye(zmq::socket_t& socket);
  // While draining: the drain is over (nothing held, or the grace passed) and the goodbye
  // was said.
  bool DrainOver(zmq::socket_t& socket, Clock::time_point now);
  // Queues an attempt on the runner (or hands it back at once while draining).
  void Submit(zmq::socket_t& socket, const TaskDef* def, TaskMsg task,
              std::optional<zmq::message_t> payload);
  // Waits `delay` unless a signal arrives first (then returns false).
  bool BackOff(milliseconds delay);

  const WorkerConfig& config_;
  zmq::context_t context_ = NewContext();
  TaskRunner runner_;
  InputMap input_;  // WELCOME's input file, for TASKs passed by reference
  int signal_fd_ = -1;
  int signal_ = 0;
  bool welcomed_ = false;
  Status connect_error_;                      // why the last MakeDealer failed
  std::set<std::string> handshake_failures_;  // logged once each
  milliseconds heartbeat_{0};
  uint32_t liveness_ = 0;
  uint32_t quick_streak_ = 0;  // consecutive attempts that took under kQuickSeconds
  // Largest output an attempt may return: the smaller of this worker's --max-message and
  // the coordinator's (WELCOME's "max"); 0 = none. Exec commands are stopped at it.
  uint64_t max_output_ = 0;
  bool batches_ = false;    // this session's coordinator sends TASKS (so takes RESULTS)
  bool leave_ok_ = false;   // this session's coordinator takes LEAVE (WELCOME's "leave")
  bool echo_ = false;       // this session's coordinator takes echoes (WELCOME's "echo")
  bool draining_ = false;   // SIGTERM arrived: finishing what runs, taking nothing new
  bool signalled_ = false;  // a signal read by AwaitOwnSignal that ends the session
  Clock::time_point drain_deadline_{};
  // Attempts on the runner whose RESULT was not sent (nor cancelled): what a drain waits
  // for, and what a goodbye hands back.
  std::set<AttemptKey> held_;
};

bool Worker::OnSignal(zmq::socket_t& socket, Clock::time_point now) {
  if (signal_ == SIGTERM && leave_ok_ && !draining_) {
    draining_ = true;
    drain_deadline_ = now + config_.drain_grace;
    std::vector<AttemptKey> back = runner_.TakeWaiting();
    for (const AttemptKey& key : back) held_.erase(key);
    Log().info("SIGTERM: draining: finishing {} running attempts within {} ms, handing back {}",
               held_.size(), config_.drain_grace.count(), back.size());
    SendLeave(socket, back, /*bye=*/false);
    return false;
  }
  if (leave_ok_) SayBye(socket);
  return true;
}

void Worker::SendLeave(zmq::socket_t& socket, const std::vector<AttemptKey>& back, bool bye) {
  size_t i = 0;
  do {
    Leave msg;
    for (size_t k = i; k < std::min(back.size(), i + kMaxBatch); ++k) {
      msg.chunks.push_back(back[k].first);
      msg.attempts.push_back(back[k].second);
    }
    i += kMaxBatch;
    msg.bye = bye && i >= back.size();
    SendMessage(socket, msg);
  } while (i < back.size());
  if (bye) socket.set(zmq::sockopt::linger, static_cast<int>(kByeLinger.count()));
}

void Worker::SayBye(zmq::socket_t& socket) {
  SendResults(socket);  // the finished ones count
  std::vector<AttemptKey> back(held_.begin(), held_.end());
  if (!back.empty()) Log().info("stopping {} attempts and handing them back", back.size());
  held_.clear();
  SendLeave(socket, back, /*bye=*/true);
}

bool Worker::DrainOver(zmq::socket_t& socket, Clock::time_point now) {
  if (!draining_) return false;
  if (held_.empty()) {
    Log().info("drained: every running attempt finished; leaving");
  } else if (now >= drain_deadline_) {
    Log().warn("drain grace of {} ms passed with {} attempts running", config_.drain_grace.count(),
               held_.size());
  } else {
    return false;
  }
  SayBye(socket);
  return true;
}

void Worker::Submit(zmq::socket_t& socket, const TaskDef* def, TaskMsg task,
                    std::optional<zmq::message_t> payload) {
  if (draining_) {  // sent before the coordinator read our LEAVE
    SendLeave(socket, {{task.chunk, task.attempt}}, /*bye=*/false);
    return;
  }
  held_.emplace(task.chunk, task.attempt);
  runner_.Submit(def, std::move(task), std::move(payload));
}

bool Worker::SignalPending() {
  signalfd_siginfo info{};
  if (read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    signal_ = static_cast<int>(info.ssi_signo);
    return true;
  }
  return false;
}

bool Worker::BackOff(milliseconds delay) {
  zmq::pollitem_t item{nullptr, signal_fd_, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, delay);
  return !SignalPending();
}

void Worker::Vet(FinishedAttempt& done) {
  // The streak of quick attempts decides whether the next ones may run inline.
  quick_streak_ = done.result.wall_seconds < kQuickSeconds ? quick_streak_ + 1 : 0;
  if (done.result.ok && max_output_ > 0 && done.bytes().size() > max_output_) {
    done.result.ok = false;
    done.result.error =
        OutputLimitError(max_output_) + " (" + std::to_string(done.bytes().size()) + " bytes)";
    done.ClearOutput();
  }
}

void Worker::AwaitOwnSignal(zmq::socket_t& socket, const std::vector<FinishedAttempt>& done) {
  if (draining_ || signalled_ || !leave_ok_) return;
  bool killed = std::any_of(done.begin(), done.end(), [](const FinishedAttempt& d) {
    return !d.result.ok && KilledBySignal(d.result.error, SIGTERM);
  });
  if (!killed) return;
  if (BackOff(kOwnSignalWait)) return;  // no signal came
  // SIGTERM starts the drain; any other signal ends the session when the loop sees it.
  if (signal_ == SIGTERM) {
    OnSignal(socket, config_.clock->Now());
  } else {
    signalled_ = true;
  }
}

void Worker::SendFinished(zmq::socket_t& socket, std::vector<FinishedAttempt>& done) {
  AwaitOwnSignal(socket, done);
  std::vector<AttemptKey> back;
  for (FinishedAttempt& d : done) {
    Vet(d);
    held_.erase({d.result.chunk, d.result.attempt});
    // Slurm signals every process of a job step, so a drain's SIGTERM reaches the running
    // commands too: an attempt that fails while draining is handed back, not reported
    // (if the chunk is at fault, it fails again elsewhere and is charged there).
    if (draining_ && !d.result.ok) back.emplace_back(d.result.chunk, d.result.attempt);
  }
  if (!back.empty()) {
    Log().info("{} attempts failed while draining; handing them back", back.size());
    std::erase_if(done, [](const FinishedAttempt& d) { return !d.result.ok; });
    SendLeave(socket, back, /*bye=*/false);
  }
  if (batches_) {
    SendResultBatches(socket, done, max_output_, echo_);
    return;
  }
  for (FinishedAttempt& d : done) SendResult(socket, d, echo_);
}

void Worker::HandleBatch(zmq::socket_t& socket, const TaskBatch& batch,
                         const std::optional<zmq::message_t>& payload) {
  batches_ = true;
  auto attempts = SplitTaskBatch(batch, payload);
  if (!attempts.ok()) {
    // Each attempt still gets its answer, so none waits for a timeout.
    Log().warn("malformed TASKS from the coordinator: {}", attempts.status().message());
    std::vector<FinishedAttempt> failed;
    for (size_t i = 0; i < batch.chunks.size(); ++i) {
      failed.push_back({ResultMsg{batch.chunks[i], batch.attempts[i], false,
                                  "malformed TASKS: " + attempts.status().message()},
                        {}});
    }
    SendResultBatches(socket, failed, max_output_, echo_);
    return;
  }
  auto def = ResolveTask(TaskRegistry::Global(), batch.task, batch.args);
  std::vector<FinishedAttempt> done;
  if (!def.ok()) {
    for (const BatchedAttempt& a : *attempts) {
      done.push_back({ResultMsg{a.task.chunk, a.task.attempt, false, def.status().message()}, {}});
    }
    SendResultBatches(socket, done, max_output_, echo_);
    return;
  }
  // Inline attempts read the thread's CPU clock (a system call) once around all of them,
  // and the steady clock once each (one ends where the next starts).
  BatchCpuClock clock;
  std::chrono::steady_clock::time_point mark;
  for (BatchedAttempt& a : *attempts) {
    if (MayRunInline() && !draining_) {
      if (done.empty()) {
        clock.Start();
        mark = std::chrono::steady_clock::now();
      }
      done.push_back(RunAttempt(**def, a.task, a.payload, config_.name, std::stop_token(),
                                /*thread_cpu=*/false, max_output_, &mark));
      clock.AddWall(done.back().result.wall_seconds);
      Vet(done.back());  // a slow one ends the streak: the rest go to the runner
    } else {
      Submit(socket, *def, std::move(a.task), std::move(a.payload));
      if (!done.empty()) mark = std::chrono::steady_clock::now();  // not the next's time
    }
  }
  if (done.empty()) return;
  clock.Stop();
  for (FinishedAttempt& d : done) d.result.cpu_seconds += clock.Share(d.result.wall_seconds);
  SendResultBatches(socket, done, max_output_, echo_);
}

void Worker::RunInline(zmq::socket_t& socket, const TaskDef& def, const TaskMsg& t,
                       const std::optional<zmq::message_t>& payload) {
  FinishedAttempt done = RunAttempt(def, t, payload, config_.name, std::stop_token(),
                                    /*thread_cpu=*/true, max_output_);
  Vet(done);
  SendResult(socket, done, echo_);
}

void Worker::SendResults(zmq::socket_t& socket) {
  std::vector<FinishedAttempt> done = runner_.TakeFinished();
  SendFinished(socket, done);
}

void Worker::SendStarts(zmq::socket_t& socket) {
  auto started = runner_.TakeStarted();
  // One STARTED per kMaxBatch attempts (the decoder's bound on a column).
  for (size_t i = 0; i < started.size(); i += kMaxBatch) {
    Started msg;
    for (size_t k = i; k < std::min(started.size(), i + kMaxBatch); ++k) {
      msg.chunks.push_back(started[k].first);
      msg.attempts.push_back(started[k].second);
    }
    SendMessage(socket, msg);
  }
}

std::optional<SessionEnd> Worker::Handle(zmq::socket_t& socket, Envelope& env) {
  if (auto* welcome = std::get_if<Welcome>(&env.message)) {
    heartbeat_ = milliseconds(std::max<uint32_t>(welcome->heartbeat_ms, 1));
    liveness_ = std::max<uint32_t>(welcome->liveness, 1);
    welcomed_ = true;
    runner_.ReportStarts(welcome->starts);
    leave_ok_ = welcome->leave;
    echo_ = welcome->echo;
    // A result larger than the coordinator's limit would get this worker disconnected.
    max_output_ = OwnOutputLimit();
    if (welcome->max_message > 0 && (max_output_ == 0 || welcome->max_message < max_output_)) {
      max_output_ = welcome->max_message;
    }
    runner_.SetOutputLimit(max_output_);
    SetOkExitCodes(std::vector<int>(welcome->ok_exit.begin(), welcome->ok_exit.end()));
    if (welcome->input_path.empty()) {
      input_.Close();
    } else {
      input_.Open(welcome->input_path);
    }
    Log().debug("welcomed to job {} (heartbeat {} ms, liveness {})", welcome->job_id,
                heartbeat_.count(), liveness_);
  } else if (auto* task = std::get_if<TaskMsg>(&env.message)) {
    auto def = ResolveTask(TaskRegistry::Global(), task->task, task->args);
    if (def.ok() && task->slice) {
      auto bytes = input_.Slice(*task->slice);  // by reference: the payload is in the file
      if (bytes.ok()) {
        env.payload.emplace(std::move(bytes).value());
      } else {
        def = bytes.status();
      }
    }
    if (!def.ok()) {
      SendMessage(socket, ResultMsg{task->chunk, task->attempt, false, def.status().message()});
    } else if (MayRunInline() && !draining_) {
      RunInline(socket, **def, *task, env.payload);
    } else {
      Log().debug("chunk {} attempt {}: queued", task->chunk, task->attempt);
      Submit(socket, *def, std::move(*task), std::move(env.payload));
    }
  } else if (auto* batch = std::get_if<TaskBatch>(&env.message)) {
    HandleBatch(socket, *batch, env.payload);
  } else if (auto* cancel = std::get_if<Cancel>(&env.message)) {
    Log().debug("chunk {} attempt {}: cancelled", cancel->chunk, cancel->attempt);
    runner_.Cancel(cancel->chunk, cancel->attempt);
    held_.erase({cancel->chunk, cancel->attempt});
  } else if (std::holds_alternative<Shutdown>(env.message)) {
    return SessionEnd::kShutdown;
  } else if (auto* reject = std::get_if<Reject>(&env.message)) {
    if (reject->protocol != kProtocolVersion) {
      Log().error("coordinator refused this worker: {}", reject->reason);
      return SessionEnd::kWrongVersion;
    }
    Log().warn("coordinator refused this worker: {}; reconnecting", reject->reason);
    return SessionEnd::kLost;
  }
  return std::nullopt;
}

SessionEnd Worker::Session() {
  // The monitor watches before the connection starts: a handshake refused at once (a
  // NULL worker meeting a CURVE coordinator) ends that connection for good, and its only
  // trace is the monitor's event.
  zmq::socket_t socket = NewDealer(context_, "", config_.security);
  HandshakeMonitor monitor(context_, socket);
  if (Status s = ConnectDealer(socket, config_.endpoint); !s.ok()) {
    connect_error_ = s;
    return SessionEnd::kNoSocket;
  }
  welcomed_ = false;
  batches_ = false;
  leave_ok_ = false;
  held_.clear();
  runner_.ReportStarts(false);
  max_output_ = OwnOutputLimit();
  runner_.SetOutputLimit(max_output_);
  heartbeat_ = config_.heartbeat;
  liveness_ = config_.liveness;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  Hello hello{config_.name,     host,
              FANOUT_VERSION,   static_cast<int64_t>(getpid()),
              config_.slots,    TaskRegistry::Global().Names(),
              kProtocolVersion, config_.local_token};
  hello.batch = kWorkerBatch;
  hello.starts = true;
  hello.leave = true;
  hello.ranges = true;
  hello.echo = true;
  SendMessage(socket, hello);
  auto now = config_.clock->Now();
  auto last_heard = now;
  auto next_heartbeat = now + heartbeat_;
  std::vector<zmq::pollitem_t> items;
  for (;;) {
    items.assign({{socket.handle(), 0, ZMQ_POLLIN, 0},
                  {nullptr, runner_.fd(), ZMQ_POLLIN, 0},
                  {nullptr, signal_fd_, ZMQ_POLLIN, 0},
                  {monitor.handle(), 0, ZMQ_POLLIN, 0}});
    runner_.AppendPollItems(items);  // async attempts wait on the same poll
    // Silence allowed: liveness heartbeats once welcomed, kWelcomeGrace before.
    auto silence = welcomed_ ? heartbeat_ * liveness_
                             : std::max<milliseconds>(heartbeat_ * liveness_, kWelcomeGrace);
    auto deadline = std::min(next_heartbeat, last_heard + silence);
    deadline = std::min(deadline, runner_.NextDeadline().value_or(deadline));
    if (draining_) deadline = std::min(deadline, drain_deadline_);
    auto wait = std::chrono::ceil<milliseconds>(deadline - config_.clock->Now());
    zmq::poll(items, std::max(wait, milliseconds(0)));
    now = config_.clock->Now();
    bool async_done = runner_.Advance(items, now);
    // After Advance: a command that died of a SIGTERM sent to this worker first (Slurm
    // signals a step's processes in turn) then has its failure handed back by the drain.
    if ((signalled_ || SignalPending()) && OnSignal(socket, now)) return SessionEnd::kSignal;
    if (items[0].revents & ZMQ_POLLIN) {
      bool was_welcomed = welcomed_;
      for (;;) {
        Received got = ReceiveMessage(socket, /*router=*/false);
        if (std::holds_alternative<std::monostate>(got)) break;
        last_heard = now;
        if (auto* bad = std::get_if<Rejected>(&got)) {
          Log().warn("dropped a malformed message from the coordinator: {}", bad->reason);
          continue;
        }
        if (auto end = Handle(socket, std::get<Envelope>(got))) return *end;
      }
      if (welcomed_ && !was_welcomed) next_heartbeat = now + heartbeat_;  // adopt its pace
    }
    if (async_done || (items[1].revents & ZMQ_POLLIN)) SendResults(socket);
    SendStarts(socket);  // after SendResults, whose freed slots may have started more
    if (DrainOver(socket, now)) return SessionEnd::kSignal;
    if (items[3].revents & ZMQ_POLLIN) {
      for (const std::string& failure : monitor.TakeFailures()) {
        if (handshake_failures_.insert(failure).second) Log().error("{}", failure);
      }
    }
    if (now >= next_heartbeat) {
      SendMessage(socket, Heartbeat{});
      next_heartbeat = now + heartbeat_;
    }
    if (now - last_heard > (welcomed_ ? heartbeat_ * liveness_ : silence)) {
      Log().warn("no word from the coordinator at {} for {} ms; reconnecting", config_.endpoint,
                 std::chrono::duration_cast<milliseconds>(now - last_heard).count());
      return SessionEnd::kLost;
    }
  }
}

Result<int> Worker::Run() {
  milliseconds backoff = config_.initial_backoff;
  for (bool first = true;; first = false) {
    SessionEnd end = Session();
    // The endpoint never changes, so a malformed one fails the first connect: a usage
    // error. A later failure (out of descriptors, say) is retried like a lost session.
    if (end == SessionEnd::kNoSocket && first) return connect_error_;
    runner_.CancelAll();
    if (draining_) return SignalExit(signal_);  // whatever ended the session, the worker is leaving
    switch (end) {
      case SessionEnd::kShutdown:
        if (config_.once) {
          Log().debug("shutdown received; exiting (--once)");
          return ToInt(ExitCode::kOk);
        }
        Log().info("job over; waiting for the next coordinator at {}", config_.endpoint);
        backoff = config_.initial_backoff;
        break;
      case SessionEnd::kWrongVersion:
        return ToInt(ExitCode::kProtocolRefused);
      case SessionEnd::kSignal:
        return SignalExit(signal_);
      case SessionEnd::kNoSocket:
        Log().warn("{}; retrying", connect_error_.message());
        break;
      case SessionEnd::kLost:
        break;
    }
    if (welcomed_) backoff = config_.initial_backoff;  // that session did work
    Log().debug("reconnecting in {} ms", backoff.count());
    if (!BackOff(backoff)) return SignalExit(signal_);
    backoff = std::min(backoff * 2, config_.max_backoff);
  }
}

}  // namespace

Result<int> RunWorker(const WorkerConfig& config) {
  Worker worker(config);
  return worker.Run();
}

}  // namespace fanout
