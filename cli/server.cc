// `fanout server` (server.h): the client socket's loop on the main thread, the job runner on
// a thread of its own, the journal under --state. The clients are in client.cc.
#include "cli/server.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>
#include <utility>

#include "cli/direct_peers.h"
#include "cli/run_report.h"
#include "common/exit_code.h"
#include "common/log.h"
#include "common/server_protocol.h"
#include "common/transport.h"
#include "common/write_all.h"
#include "common/zap.h"
#include "engine/call_job.h"
#include "engine/interrupt.h"
#include "engine/job.h"
#include "engine/job_observer.h"
#include "engine/listen_security.h"
#include "engine/private_dir.h"
#include "engine/warm_processes.h"

namespace fanout {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// Writes `text` to `path` whole: a temporary beside it, renamed over it; fsync'd first
// when `durable` (a journal under --state must survive a crash of the machine too).
Status WriteWhole(const std::string& path, std::string_view text, bool durable) {
  std::string temp = path + ".tmp";
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error("cannot write '" + temp + "': " + std::strerror(errno));
  if (int err = WriteAll(fd, text); err != 0) {
    close(fd);
    return Status::Error("cannot write '" + temp + "': " + std::strerror(err));
  }
  bool synced = !durable || fsync(fd) == 0;
  close(fd);
  if (!synced || rename(temp.c_str(), path.c_str()) != 0) {
    return Status::Error("cannot write '" + path + "': " + std::strerror(errno));
  }
  return Status::Ok();
}

std::optional<std::string> ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// How a waiting client gets a job's output in `done`: whole in it; in parts (`read`) when
// over kServerPartBytes (`reads`); or always in parts (`stream`: it reads the output while
// the job runs, and fetches the rest).
enum class Delivery { kWhole, kBigInParts, kInParts };

Delivery DeliveryOf(const Json& request) {
  return request.value("stream", false)  ? Delivery::kInParts
         : request.value("reads", false) ? Delivery::kBigInParts
                                         : Delivery::kWhole;
}

// One job of the server. The main thread owns `waiters` and `parked`; the rest is guarded
// by Server::mu_ (progress: Progress's own lock).
struct Job {
  // kReceiving: its input is still being uploaded in parts (`input`); not yet queued.
  enum class State { kReceiving, kQueued, kRunning, kDone };
  uint64_t id = 0;
  std::vector<std::string> args;
  std::string submitter;  // the client's CURVE key, or "local" (ipc:// clients)
  double submitted = 0;   // Unix time
  uint32_t workers = 0;   // the fleet's size when it was submitted: fixes the chunk plan
  bool has_input = false;
  // A client on this machine (ipc://, the server's own user) names its files instead of
  // sending their bytes: the job reads the input and writes the output in place.
  std::string input_path, output_path;
  // Parsed at submission or recovery (a recovered job that no longer parses: when it runs,
  // which then reports why).
  std::optional<JobConfig> config;
  State state = State::kQueued;
  int exit = 0;
  // Unix time it became kDone (journaled), and of its client's last request for it:
  // --keep-finished counts from the later (a big output is fetched in many reads).
  double ended = 0, touched = 0;
  std::string report;   // the failure report (`fanout run`'s stderr lines)
  std::string summary;  // the summary line
  std::stop_source stop;
  // Its attached client cancelled it and left (Ctrl-C, a closed stdout): nobody will fetch
  // the output, so the job is deleted, not kept as `done`, once it ends.
  bool forget = false;
  // Clients waiting for the output (routing ids), each with whether it fetches a big
  // output in parts (`read`) rather than in the `done` message.
  std::map<std::string, Delivery> waiters;
  // The output as the running job writes it (JobHost::output_progress): its first
  // `out_bytes` are in `out_file`.
  std::string out_file;
  uint64_t out_bytes = 0;
  // The progress (output bytes; a call's outcomes) at which the job's thread wakes the
  // main thread for its parked requests: a part's worth past the earliest. Less growth
  // waits for the main thread's next look (kStreamTick), so that streaming a job of many
  // small outputs is not a wake-up and a message per flush.
  uint64_t wake_at = UINT64_MAX;
  // Reads of output not written yet (routing id -> offset), answered as it comes.
  std::map<std::string, uint64_t> parked;
  // A library Pool's call (op "call"): chunks the Pool cut, run with RunCallJob, one output
  // or failure each. Not journaled: its caller waits for it in memory.
  struct Call {
    JobConfig config;  // the fleet's, with the call's task, args and retry settings
    CallSpec spec;
    std::vector<std::string> outputs;  // by chunk ("" for a failed one)
    Json failures = Json::array();     // {chunk, kind, reason, message} each
    // Each chunk's outcome in the order they came: the chunk, and its index in `failures`
    // (-1: it succeeded). A streaming Pool (`results`) reads it as the call runs. The three
    // are guarded by Server::mu_ while the call runs.
    std::vector<std::pair<uint64_t, int64_t>> order;
  };
  std::optional<Call> call;
  // Its --priority (a call's, or a job's that parses; else 0): the queue's order
  // (RunnerMain).
  int32_t priority() const { return call ? call->config.priority : config ? config->priority : 0; }

  // Chunks finished and planned, as the running job's telemetry counts them.
  struct Progress : JobObserver {
    std::mutex mu;
    const Telemetry* telemetry = nullptr;
    uint64_t done = 0, chunks = 0;
    std::string summary;
    void OnRunStart(const Telemetry& t, uint64_t chunks_left, Unit) override {
      std::lock_guard lock(mu);
      telemetry = &t;
      chunks = chunks_left;
    }
    void OnRunEnd() override {
      std::lock_guard lock(mu);
      done = telemetry->chunks_done.load();
      telemetry = nullptr;
    }
    void OnJobEnd(const JobEnd& end) override { summary = RunReporter::SummaryLine(end); }
    std::pair<uint64_t, uint64_t> Read() {
      std::lock_guard lock(mu);
      return {telemetry ? telemetry->chunks_done.load() : done, chunks};
    }
  } progress;
};

// Who sent `m`: its CURVE key, or "local" (every client of an ipc:// endpoint is the
// server's own user).
std::string Owner(const ClientMessage& m) { return m.user.empty() ? "local" : m.user; }

const char* StateName(Job::State s) {
  return s == Job::State::kReceiving ? "receiving"
         : s == Job::State::kQueued  ? "queued"
         : s == Job::State::kRunning ? "running"
                                     : "done";
}

class Server {
 public:
  explicit Server(const ServerOptions& options)
      : options_(options),
        done_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
        fleet_(FleetConfig(options.fleet), options.fleet.jobs) {}
  ~Server() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      for (auto& [id, job] : jobs_) job->stop.request_stop();
    }
    cv_.notify_all();
    for (std::thread& runner : runners_) runner.join();  // their jobs were asked to stop
    if (done_fd_ >= 0) close(done_fd_);
    for (int fd : locks_) close(fd);
  }

  int Run();

 private:
  static JobConfig FleetConfig(JobConfig fleet) {
    fleet.mode = Mode::kProcesses;
    fleet.local_input_by_ref = false;  // jobs' inputs are payloads (warm_processes.h)
    return fleet;
  }
  // The server is stopping (SIGINT/SIGTERM, or destroyed): a job it interrupts is not done,
  // it resumes when a server starts again on the same --state. Under mu_.
  bool Leaving() const { return stopping_ || Interrupt::Requested(); }
  // Writes a job's file; durably only with --state (else nothing outlives the server).
  Status Keep(const std::string& path, std::string_view text) const {
    return WriteWhole(path, text, !options_.state_dir.empty());
  }
  // Writes a journal file (job.json, done.json): only with --state, the only case where a
  // later server reads them (without, they cost a one-chunk job a third of its time).
  Status Journal(const std::string& path, std::string_view text) const {
    return options_.state_dir.empty() ? Status::Ok() : Keep(path, text);
  }
  std::string JobDir(uint64_t id) const { return root_ + "/jobs/" + std::to_string(id); }
  Status Open();
  // Holds an exclusive lock on `path` for the server's life; `what` names it in the error.
  Status Lock(const std::string& path, const std::string& what);
  void Recover();
  void Serve();
  void RunnerMain();
  void QueueJob(uint64_t id);  // under mu_
  void SpareRunner();          // under mu_
  void RunOne(Job& job);
  void OnMessage(ClientMessage& m);
  void OnSubmit(ClientMessage& m);
  void OnCall(ClientMessage& m);
  void RunCall(Job& job);
  // Queues `job` (its id already set; unless its input is still to come in parts) and
  // tells its client it was accepted.
  void Accept(const ClientMessage& m, const std::shared_ptr<Job>& job);
  // An upload's part (`input`). DropUpload (under mu_) ends an upload that will not
  // complete (a cancel, a client silent for kUploadIdle, a spool that cannot be written):
  // the job is forgotten and any client waiting for it told so.
  void OnInput(ClientMessage& m);
  void DropUpload(uint64_t id, const std::string& why);
  void DropIdleUploads();
  // --keep-finished: deletes the finished jobs nobody fetched in time (none waits for them).
  void ExpireFinished();
  // A part of a finished job's output (`read`).
  void OnRead(const ClientMessage& m, Job& job);
  // Answers a read of `job`'s output at `offset` with what is there (an empty part past
  // the end of a finished job's output); false if nothing is there yet. Under mu_.
  bool AnswerRead(Job& job, const std::string& peer, uint64_t offset);
  // A streaming Pool's `results`: the call's outcomes from a place in their order.
  void OnResults(const ClientMessage& m, Job& job);
  // Answers `results` from `from` with the outcomes there (up to kServerPartBytes of
  // output, at least one); false if there are none yet. Under mu_.
  bool AnswerResults(Job& job, const std::string& peer, uint64_t from);
  // Holds a read (or results) request of `peer` from `at` until the job has more for it
  // (Job::wake_at); a client's newer request replaces its older one. Under mu_.
  void Park(Job& job, const std::string& peer, uint64_t at);
  // Answers the parked reads (or results) that can be now. Under mu_.
  void AnswerParked(Job& job);
  // AnswerParked for every running job with parked requests; sets streaming_. Under mu_.
  void AnswerStreams();
  // The job `m` names if the sender may see it; else answers with an error and returns null.
  std::shared_ptr<Job> Find(const ClientMessage& m);
  void SendDone(Job& job, const std::string& peer, Delivery delivery);
  // Deletes finished job `id`: its directory (spool, output, journal) and its entry. Under mu_.
  void Forget(uint64_t id) {
    std::error_code ec;
    fs::remove_all(JobDir(id), ec);
    jobs_.erase(id);
  }
  // Sends to a client of either channel: the direct one's (DirectPeers) or the ROUTER's.
  // False if it could not be queued (the client is gone).
  bool Send(const std::string& peer, Json header, zmq::message_t* payload = nullptr) {
    if (DirectPeers::Owns(peer)) return direct_.Send(peer, std::move(header), payload);
    return SendClientMessage(*router_, peer, std::move(header), payload);
  }
  // Answers one client message of either channel (malformed fields are refused).
  void Handle(ClientMessage& m, RateLimitedWarn& rejects);
  void Error(const ClientMessage& m, const std::string& message, ExitCode code = ExitCode::kUsage) {
    Send(m.peer, {{"op", "error"}, {"message", message}, {"exit", ToInt(code)}});
  }
  Json Describe(Job& job);
  static Json Spec(const Job& job);  // what job.json keeps
  void Finished();                   // the runner ended jobs: tell their waiters
  // Wakes the main thread to call Finished (finished_ has news). Any thread.
  void Announce() {
    uint64_t one = 1;
    (void)!write(done_fd_, &one, sizeof one);
  }

  const ServerOptions& options_;
  int done_fd_;
  WarmProcesses fleet_;
  std::optional<PrivateDir> temp_root_;  // without --state
  std::string root_;
  zmq::context_t context_ = NewContext();
  std::unique_ptr<ZapAuthenticator> zap_;
  std::optional<zmq::socket_t> router_;
  DirectPeers direct_;  // beside an ipc:// --listen
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, std::shared_ptr<Job>> jobs_;
  std::deque<uint64_t> queue_;
  std::vector<uint64_t> finished_;  // ended by the runner, not yet announced
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  // RunnerMain's threads: started as jobs need them (QueueJob), never more than --max-jobs,
  // kept until the server ends. Main thread only (the destructor joins them).
  std::vector<std::thread> runners_;
  uint32_t idle_runners_ = 0;  // runners waiting for a job
  uint32_t running_ = 0;
  std::vector<int> locks_;  // Lock's descriptors
  // Inputs being uploaded in parts (jobs in kReceiving), by job id. Main thread only.
  struct Upload {
    uint64_t bytes = 0;
    std::chrono::steady_clock::time_point heard;
  };
  std::map<uint64_t, Upload> uploads_;
  std::chrono::steady_clock::time_point next_expiry_;  // ExpireFinished's next look. Main.
  bool streaming_ = false;  // some running job has parked requests. Main thread.
};

// An upload whose client has said nothing for this long is dropped (the client is gone).
constexpr std::chrono::seconds kUploadIdle{60};
// While requests are parked, the main thread answers what the jobs have for them this
// often (a job's thread wakes it at once for a part's worth: Job::wake_at).
constexpr std::chrono::milliseconds kStreamTick{20};
constexpr uint64_t kWakeOutcomes = 256;  // a call's "part's worth" of outcomes

Status Server::Lock(const std::string& path, const std::string& what) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error("cannot create '" + path + "': " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return Status::Error(what + " is in use by another fanout server");
  }
  locks_.push_back(fd);  // held until the server ends
  return Status::Ok();
}

Status Server::Open() {
  if (done_fd_ < 0) return Status::Error("cannot create an eventfd");
  if (options_.state_dir.empty()) {
    temp_root_.emplace("fanout-server");
    if (!temp_root_->ok()) return Status::Error("cannot create a private spool directory");
    root_ = temp_root_->path();
  } else {
    root_ = fs::absolute(options_.state_dir).string();
  }
  std::error_code ec;
  fs::create_directories(root_ + "/jobs", ec);
  if (ec) return Status::Error("--state: cannot create '" + root_ + "/jobs': " + ec.message());
  fs::permissions(root_, fs::perms::owner_all, ec);  // inputs and outputs are the clients'
  // One server per journal: a second one would run the same jobs and race on their files.
  if (Status s = Lock(root_ + "/server.lock", "--state " + root_); !s.ok()) return s;
  // One server per ipc:// socket: binding it again would take the path from a live server,
  // whose clients could no longer reach it.
  if (options_.listen.rfind("ipc://", 0) == 0) {
    if (Status s = Lock(options_.listen.substr(6) + ".lock", "--listen " + options_.listen);
        !s.ok()) {
      return s;
    }
  }

  SocketSecurity security;
  security.max_message = options_.fleet.max_message;
  if (options_.client_curve) {
    std::set<std::string> allowed(options_.client_keys.begin(), options_.client_keys.end());
    auto zap = ZapAuthenticator::Start(context_, std::move(allowed));
    if (!zap.ok()) return zap.status();
    zap_ = std::move(zap).value();
    security.curve_server = options_.client_curve;
  }
  // An ipc:// socket file is created by bind with the process's umask: 0077 makes it
  // the server user's alone (no thread creates files yet).
  mode_t saved = umask(0077);
  auto router = MakeRouter(context_, options_.listen, security);
  umask(saved);
  if (!router.ok()) return Status::Error("--listen: " + router.status().message());
  router_ = std::move(router).value();
  if (options_.listen.rfind("ipc://", 0) == 0) {
    // Local clients skip ZeroMQ (direct_channel.h); without it they use the ROUTER.
    std::string path = DirectSocketPath(options_.listen.substr(6));
    if (Status s = direct_.Listen(path); !s.ok()) Log().warn("no direct channel: {}", s.message());
  }
  Recover();
  // The fleet binds --workers-listen and starts serving now, so workers can join before
  // the first job; the local workers start with the first job that needs them.
  if (Status s = fleet_.Open(); !s.ok()) return Status::Error("workers: " + s.message());
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < queue_.size(); ++i) SpareRunner();  // recovered jobs
  }
  return Status::Ok();
}

// Jobs journaled by an earlier server on the same --state: finished ones wait for their
// output to be fetched; the others are queued again, in their order, and resume.
void Server::Recover() {
  std::error_code ec;
  std::vector<uint64_t> ids;
  for (const auto& entry : fs::directory_iterator(root_ + "/jobs", ec)) {
    const std::string name = entry.path().filename().string();
    // Not a job's directory (a job's id has at most 18 digits, as Find reads them).
    if (name.empty() || name.size() > 18 ||
        name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    ids.push_back(std::stoull(name));
  }
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    next_id_ = std::max(next_id_, id + 1);
    auto text = ReadWhole(JobDir(id) + "/job.json");
    Json spec = text ? Json::parse(*text, nullptr, false) : Json();
    if (!spec.is_object()) {  // a submission that was never acknowledged
      fs::remove_all(JobDir(id), ec);
      continue;
    }
    auto job = std::make_shared<Job>();
    job->id = id;
    job->args = spec.value("args", std::vector<std::string>{});
    job->submitter = spec.value("submitter", "");
    job->submitted = spec.value("submitted", 0.0);
    job->workers = spec.value("workers", 1u);
    job->has_input = spec.value("input", false);
    job->input_path = spec.value("input_path", "");
    job->output_path = spec.value("output_path", "");
    if (auto done = ReadWhole(JobDir(id) + "/done.json")) {
      Json end = Json::parse(*done, nullptr, false);
      job->state = Job::State::kDone;
      job->exit = end.value("exit", ToInt(ExitCode::kJobFailed));
      job->report = end.value("report", "");
      job->summary = end.value("summary", "");
      job->ended = end.value("ended", Now());  // a journal of before --keep-finished: now
    } else {
      job->config.emplace();
      if (!ParseServerJob(job->args, *job->config).ok()) job->config.reset();
      queue_.push_back(id);
    }
    jobs_[id] = job;
  }
  if (!ids.empty()) {
    Log().warn("recovered {} jobs from {} ({} to run)", jobs_.size(), root_, queue_.size());
  }
}

// One of the runners: takes the queued jobs by --priority, then in submission order, while
// fewer than --max-jobs run, runs each (the fleet shares the workers' slots among the running
// jobs), and waits for the next. Runners stay for the server's life: a job starts on a waiting
// thread, not on one started for it (a few hundred microseconds on a small virtual machine, and a
// hand-off through a thread that only started others: BENCHMARKS.md, #19's rows).
void Server::RunnerMain() {
  std::unique_lock lock(mu_);
  while (true) {  // counted in idle_runners_ while it waits (from SpareRunner on)
    cv_.wait(lock,
             [&] { return stopping_ || (!queue_.empty() && running_ < options_.max_running); });
    if (stopping_) return;
    auto first = queue_.begin();  // the highest priority, the oldest of equals
    int32_t best = INT32_MIN;
    for (auto at = queue_.begin(); at != queue_.end(); ++at) {
      auto it = jobs_.find(*at);
      int32_t priority = it == jobs_.end() ? INT32_MIN : it->second->priority();
      if (priority > best) {
        best = priority;
        first = at;
      }
    }
    auto queued = jobs_.find(*first);
    queue_.erase(first);
    // Cancelled while queued; or cancelled by a client that left (`forget`), and then
    // forgotten before a runner came to it.
    if (queued == jobs_.end() || queued->second->state != Job::State::kQueued) continue;
    std::shared_ptr<Job> job = queued->second;
    --idle_runners_;
    job->state = Job::State::kRunning;
    ++running_;
    lock.unlock();
    RunOne(*job);
    lock.lock();
    --running_;
    // A job the stopping server interrupted is not done: it resumes on the next start.
    if (!(Leaving() && job->exit == ToInt(ExitCode::kInterrupted))) {
      job->state = Job::State::kDone;
      if (job->ended == 0) job->ended = Now();  // a call's (RunOne journals a run's)
      finished_.push_back(job->id);
    }
    ++idle_runners_;
    cv_.notify_all();  // a queued job may start now
    Announce();
  }
}

// Queues job `id` for the runners, starting one more if none waits. Under mu_.
void Server::QueueJob(uint64_t id) {
  queue_.push_back(id);
  SpareRunner();
}

// Starts a runner if none is waiting and fewer than --max-jobs exist. Under mu_, on the
// main thread.
void Server::SpareRunner() {
  if (stopping_ || idle_runners_ > 0 || runners_.size() >= options_.max_running) return;
  runners_.emplace_back([this] { RunnerMain(); });
  ++idle_runners_;  // counted as waiting at once: the next job queued needs no other
}

// Runs one job on the fleet through the engine's RunJob, as `fanout run` would run it.
void Server::RunOne(Job& job) {
  if (job.call) return RunCall(job);
  std::string dir = JobDir(job.id);
  JobConfig config;
  std::string report;
  ExitCode code = ExitCode::kUsage;
  Status parsed = Status::Ok();
  if (job.config) {
    config = *job.config;
  } else {
    parsed = ParseServerJob(job.args, config);
  }
  if (!parsed.ok()) {
    report = "fanout: " + parsed.message() + "\n";
  } else {
    const JobConfig& fleet = options_.fleet;
    config.mode = Mode::kProcesses;
    config.input = !job.input_path.empty() ? job.input_path
                   : job.has_input         ? dir + "/input"
                                           : "-";  // "-": a --range job reads none
    config.output = job.output_path.empty() ? dir + "/output" : job.output_path;
    // The spool is no name of the user's: a full disk says whose output it is.
    if (job.output_path.empty())
      config.output_shown = "job " + std::to_string(job.id) + " on the server";
    config.jobs = job.workers;
    config.jobs_given = true;
    config.listen = fleet.listen;
    config.curve_server = fleet.curve_server;
    config.authorized_keys = fleet.authorized_keys;
    config.heartbeat = fleet.heartbeat;
    config.liveness = fleet.liveness;
    config.local_slots = fleet.local_slots;
    config.max_respawns = fleet.max_respawns;
    config.worker_bin = fleet.worker_bin;
    config.worker_args = fleet.worker_args;
    config.max_message = fleet.max_message;
    config.local_input_by_ref = false;
    config.adopt_orphans = fleet.adopt_orphans;
    config.quiet = true;
    if (!options_.state_dir.empty()) {
      config.state_dir = dir + "/state";
      config.resume = true;  // a fresh directory starts fresh
      config.keep_state = true;
    }
    char* buffer = nullptr;
    size_t size = 0;
    FILE* stream = open_memstream(&buffer, &size);
    // Streaming clients read the output as it grows: a read parked for more is answered
    // once the main thread hears of it.
    auto grew = [this, &job](const std::string& file, uint64_t bytes) {
      bool wake;
      {
        std::lock_guard lock(mu_);
        job.out_file = file;
        job.out_bytes = bytes;
        wake = bytes >= job.wake_at;
        if (wake) job.wake_at = UINT64_MAX;
      }
      if (wake) Announce();
    };
    code = RunJob(config, &job.progress,
                  {.report = stream,
                   .fleet = &fleet_,
                   .stop = job.stop.get_token(),
                   .hosts_state = true,
                   .output_progress = grew});
    if (stream) fclose(stream);
    if (buffer) report.assign(buffer, size);
    free(buffer);
  }
  std::lock_guard lock(mu_);
  job.exit = ToInt(code);
  job.report = report;
  job.summary = job.progress.summary;
  if (Leaving() && code == ExitCode::kInterrupted) return;  // the next server resumes it
  job.ended = Now();
  std::error_code ec;
  Json end = {
      {"exit", job.exit}, {"report", job.report}, {"summary", job.summary}, {"ended", job.ended}};
  if (Status s = Journal(dir + "/done.json", end.dump()); !s.ok()) {
    Log().error("job {}: {}", job.id, s.message());
  }
  fs::remove_all(dir + "/state", ec);
  fs::remove(dir + "/input", ec);
}

Json Server::Describe(Job& job) {
  auto [done, chunks] = job.progress.Read();
  std::string args;
  for (const std::string& a : job.args) args += (args.empty() ? "" : " ") + a;
  return {{"id", std::to_string(job.id)},
          {"state", StateName(job.state)},
          {"done", done},
          {"chunks", chunks},
          {"submitter", job.submitter},
          {"age", Now() - job.submitted},
          {"exit", job.exit},
          {"priority", job.priority()},
          {"args", args}};
}

std::shared_ptr<Job> Server::Find(const ClientMessage& m) {
  std::string id = m.header.value("id", "");
  auto it = id.empty() || id.find_first_not_of("0123456789") != std::string::npos || id.size() > 18
                ? jobs_.end()
                : jobs_.find(std::stoull(id));
  // Another client's job is as unknown as a job that never was: ids are not secrets, but
  // a job's state, input and output reach only its submitter.
  if (it == jobs_.end() || it->second->submitter != Owner(m)) {
    Error(m, "no job " + id + " on this server (fanout jobs lists yours)");
    return nullptr;
  }
  return it->second;
}

void Server::SendDone(Job& job, const std::string& peer, Delivery delivery) {
  Json header = {{"op", "done"},
                 {"id", std::to_string(job.id)},
                 {"exit", job.exit},
                 {"report", job.report},
                 {"summary", job.summary}};
  if (!job.output_path.empty()) {
    header["written"] = job.output_path;  // the job wrote it in place (if it succeeded)
    Send(peer, header);
    return;
  }
  if (job.call) {  // its outcomes go with `results`
    Send(peer, header);
    return;
  }
  std::string path = JobDir(job.id) + "/output";
  struct stat st {};
  bool exists = stat(path.c_str(), &st) == 0;
  if (delivery == Delivery::kInParts || (delivery == Delivery::kBigInParts && exists &&
                                         static_cast<uint64_t>(st.st_size) > kServerPartBytes)) {
    // The client fetches it (or the rest of it) in parts (`read`).
    header["size"] = exists ? static_cast<uint64_t>(st.st_size) : 0;
    header["read"] = true;
    Send(peer, header);
    return;
  }
  auto output = ReadWhole(path);
  size_t size = output ? output->size() : 0;
  zmq::message_t payload(output ? output->data() : nullptr, size);
  Send(peer, header, &payload);
  output.reset();
  // A big output's pages go back to the system, not to malloc's free lists for good.
  if (size > (size_t{64} << 20)) malloc_trim(0);
}

void Server::OnRead(const ClientMessage& m, Job& job) {
  const Json& at = m.header.contains("offset") ? m.header["offset"] : Json();
  if (!at.is_number_unsigned()) return Error(m, "read: offset must be a number");
  if (job.call || !job.output_path.empty()) {
    return Error(m, "read: job " + std::to_string(job.id) + " has no output to read in parts");
  }
  if (!AnswerRead(job, m.peer, at.get<uint64_t>())) Park(job, m.peer, at.get<uint64_t>());
}

bool Server::AnswerRead(Job& job, const std::string& peer, uint64_t offset) {
  bool done = job.state == Job::State::kDone;
  std::string final_path = JobDir(job.id) + "/output";
  uint64_t size = job.out_bytes;
  if (!done && offset >= size) return false;
  // A running job's temporary is renamed to `output` when the job commits it.
  int fd = done ? -1 : open(job.out_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fd = open(final_path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (done) size = fd >= 0 && fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  if (fd < 0 && !done) return false;
  zmq::message_t payload(offset < size ? std::min<uint64_t>(kServerPartBytes, size - offset) : 0);
  size_t got = 0;
  if (fd >= 0) {
    got = ReadAllAt(fd, static_cast<char*>(payload.data()), payload.size(), offset);
    close(fd);
  }
  std::string id = std::to_string(job.id);
  if (got < payload.size()) {
    if (!done) return false;  // the job is discarding its output: its end answers
    Send(peer, {{"op", "error"},
                {"message", "read: job " + id + "'s output could not be read"},
                {"exit", ToInt(ExitCode::kJobFailed)}});
    return true;
  }
  Send(peer, {{"op", "data"}, {"id", id}, {"offset", offset}}, &payload);
  return true;
}

void Server::OnResults(const ClientMessage& m, Job& job) {
  const Json& at = m.header.contains("from") ? m.header["from"] : Json();
  if (!at.is_number_unsigned()) return Error(m, "results: from must be a number");
  if (!job.call) return Error(m, "results: job " + std::to_string(job.id) + " is not a call");
  if (!AnswerResults(job, m.peer, at.get<uint64_t>())) Park(job, m.peer, at.get<uint64_t>());
}

bool Server::AnswerResults(Job& job, const std::string& peer, uint64_t from) {
  const Job::Call& call = *job.call;
  bool done = job.state == Job::State::kDone;
  if (from >= call.order.size() && !done) return false;
  Json chunks = Json::array(), sizes = Json::array(), failures = Json::array();
  size_t total = 0;
  uint64_t end = from;
  for (; end < call.order.size() && (end == from || total < kServerPartBytes); ++end) {
    auto [chunk, failure] = call.order[end];
    static const std::string kFailed;  // a failed chunk has no output
    const std::string& out =
        failure < 0 && chunk < call.outputs.size() ? call.outputs[chunk] : kFailed;
    if (end > from && total + out.size() > kServerPartBytes) break;
    chunks.push_back(chunk);
    sizes.push_back(out.size());
    if (failure >= 0) failures.push_back(call.failures[static_cast<size_t>(failure)]);
    total += out.size();
  }
  zmq::message_t payload(total);
  char* to = static_cast<char*>(payload.data());
  for (uint64_t i = from; i < end; ++i) {
    auto [chunk, failure] = call.order[i];
    if (failure < 0 && chunk < call.outputs.size()) {
      to = std::copy(call.outputs[chunk].begin(), call.outputs[chunk].end(), to);
    }
  }
  Send(peer,
       {{"op", "results"},
        {"id", std::to_string(job.id)},
        {"from", from},
        {"chunks", std::move(chunks)},
        {"sizes", std::move(sizes)},
        {"failures", std::move(failures)},
        {"end", done && end >= call.order.size()}},
       &payload);
  return true;
}

// A part's worth of progress: output bytes, or a call's outcomes.
uint64_t PartOf(const Job& job) { return job.call ? kWakeOutcomes : kServerPartBytes; }

void Server::Park(Job& job, const std::string& peer, uint64_t at) {
  job.parked[peer] = at;
  job.wake_at = std::min(job.wake_at, at + PartOf(job));
  streaming_ = true;
}

void Server::AnswerParked(Job& job) {
  for (auto it = job.parked.begin(); it != job.parked.end();) {
    bool answered = job.call ? AnswerResults(job, it->first, it->second)
                             : AnswerRead(job, it->first, it->second);
    it = answered ? job.parked.erase(it) : std::next(it);
  }
  job.wake_at = UINT64_MAX;
  for (const auto& [peer, at] : job.parked) job.wake_at = std::min(job.wake_at, at + PartOf(job));
}

void Server::AnswerStreams() {
  streaming_ = false;
  for (auto& [id, job] : jobs_) {
    if (job->parked.empty() || job->state == Job::State::kDone) continue;
    AnswerParked(*job);
    streaming_ = streaming_ || !job->parked.empty();
  }
}

void Server::OnInput(ClientMessage& m) {
  std::shared_ptr<Job> job;
  std::string state;
  {
    std::lock_guard lock(mu_);
    job = Find(m);
    if (!job) return;
    state = StateName(job->state);
  }
  std::string id = std::to_string(job->id);
  auto it = uploads_.find(job->id);
  if (it == uploads_.end()) {
    return Error(m, "input: job " + id + " takes no input now (it is " + state + ")");
  }
  Upload& upload = it->second;
  bool last = m.header.value("last", false);
  std::string_view bytes;
  if (m.payload) bytes = {m.payload->data<char>(), m.payload->size()};
  // Opened for each part, not held: many clients sending at once never use up the
  // server's descriptors.
  std::string spool = JobDir(job->id) + "/input";
  int fd = open(spool.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  int err = fd < 0 ? errno : WriteAll(fd, bytes);
  if (err == 0 && last && !options_.state_dir.empty() && fsync(fd) != 0) err = errno;
  if (fd >= 0) close(fd);
  Status kept = err != 0 ? Status::Error(std::strerror(err)) : Status::Ok();
  upload.bytes += bytes.size();
  upload.heard = std::chrono::steady_clock::now();
  uint64_t total = upload.bytes;
  if (kept.ok() && last) {
    uploads_.erase(it);
    kept = Journal(JobDir(job->id) + "/job.json", Spec(*job).dump());
    if (kept.ok()) {
      std::lock_guard lock(mu_);
      job->state = Job::State::kQueued;
      QueueJob(job->id);
    }
    cv_.notify_all();
  }
  if (!kept.ok()) {
    {
      std::lock_guard lock(mu_);
      DropUpload(job->id, "the server cannot keep its input: " + kept.message());
    }
    return Error(m, "the server cannot keep the input: " + kept.message(), ExitCode::kJobFailed);
  }
  Send(m.peer, {{"op", "received"}, {"id", id}, {"bytes", total}});
}

void Server::DropUpload(uint64_t id, const std::string& why) {
  uploads_.erase(id);
  std::error_code ec;
  fs::remove_all(JobDir(id), ec);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  for (const auto& [peer, delivery] : it->second->waiters) {
    Send(peer, {{"op", "error"},
                {"message", "job " + std::to_string(id) + ": " + why},
                {"exit", ToInt(ExitCode::kJobFailed)}});
  }
  jobs_.erase(it);
  Log().warn("job {} dropped: {}", id, why);
}

void Server::DropIdleUploads() {
  auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> idle;
  for (const auto& [id, upload] : uploads_) {
    if (now - upload.heard > kUploadIdle) idle.push_back(id);
  }
  if (idle.empty()) return;
  std::lock_guard lock(mu_);
  for (uint64_t id : idle) {
    DropUpload(id, "its client sent no input for " + std::to_string(kUploadIdle.count()) + " s");
  }
}

Json Server::Spec(const Job& job) {
  return {{"args", job.args},
          {"submitter", job.submitter},
          {"submitted", job.submitted},
          {"workers", job.workers},
          {"input", job.has_input},
          {"input_path", job.input_path},
          {"output_path", job.output_path}};
}

void Server::OnSubmit(ClientMessage& m) {
  const Json& args = m.header["args"];
  if (!args.is_array() || args.empty()) return Error(m, "submit: no job arguments");
  auto job = std::make_shared<Job>();
  for (const Json& a : args) {
    if (!a.is_string()) return Error(m, "submit: job arguments must be strings");
    job->args.push_back(a.get<std::string>());
  }
  // Refused now, not when it runs: the client's mistake is its usage error.
  job->config.emplace();
  if (Status s = ParseServerJob(job->args, *job->config); !s.ok()) return Error(m, s.message());
  job->submitter = Owner(m);
  job->submitted = Now();
  job->workers = std::max<uint32_t>(1, options_.fleet.jobs);
  // `upload`: the input follows in parts (`input` messages), as big inputs do.
  bool upload = m.header.value("upload", false);
  job->has_input = m.payload.has_value() || upload;
  job->input_path = m.header.value("input_path", "");
  job->output_path = m.header.value("output_path", "");
  if (!job->input_path.empty() || !job->output_path.empty()) {
    // Only the server's own user may name files for it to open: every client of an ipc://
    // endpoint is (its socket is mode 0700); a tcp client is someone else.
    if (options_.listen.rfind("ipc://", 0) != 0) {
      return Error(m, "submit: files are named only by clients on the server's machine (ipc://)");
    }
    for (const std::string* path : {&job->input_path, &job->output_path}) {
      if (!path->empty() && (*path)[0] != '/') return Error(m, "submit: paths must be absolute");
    }
    if (job->has_input && !job->input_path.empty()) {
      return Error(m, "submit: an input path and input bytes");
    }
  }
  if (upload && m.payload) return Error(m, "submit: an upload and input bytes");
  job->id = next_id_++;
  std::string dir = JobDir(job->id);
  std::error_code ec;
  fs::create_directories(dir, ec);
  Status s = ec ? Status::Error("cannot create '" + dir + "': " + ec.message()) : Status::Ok();
  if (s.ok() && job->has_input) {  // an upload's spool starts empty; its parts are appended
    s = Keep(dir + "/input", upload ? std::string_view()
                                    : std::string_view(m.payload->data<char>(), m.payload->size()));
  }
  if (s.ok() && upload) {
    // Journaled when its last part is kept; a server restarted before that forgets it.
    uploads_[job->id] = {0, std::chrono::steady_clock::now()};
    job->state = Job::State::kReceiving;
  } else if (s.ok()) {
    s = Journal(dir + "/job.json", Spec(*job).dump());
  }
  if (!s.ok()) {
    fs::remove_all(dir, ec);
    return Error(m, "the server cannot keep the job: " + s.message(), ExitCode::kJobFailed);
  }
  Accept(m, job);
}

void Server::Accept(const ClientMessage& m, const std::shared_ptr<Job>& job) {
  if (m.header.value("wait", false)) job->waiters[m.peer] = DeliveryOf(m.header);
  std::string id = std::to_string(job->id);
  {
    std::lock_guard lock(mu_);
    jobs_[job->id] = job;
    if (job->state == Job::State::kQueued) QueueJob(job->id);
  }
  cv_.notify_all();
  Send(m.peer, {{"op", "accepted"}, {"id", id}});
}

// A Pool's call: {task, args, sizes (and the chunks as payload) or range + chunks, ids,
// retries, timeout_ms, keep_going}. Every field is checked: a client over tcp is someone
// else.
void Server::OnCall(ClientMessage& m) {
  const Json& h = m.header;
  auto text = [&](const char* key) { return h.contains(key) && h[key].is_string(); };
  auto uints = [&](const char* key) {
    if (!h.contains(key) || !h[key].is_array()) return false;
    for (const Json& v : h[key]) {
      if (!v.is_number_unsigned()) return false;
    }
    return true;
  };
  auto uint_or_absent = [&](const char* key, uint64_t most) {
    return !h.contains(key) || (h[key].is_number_unsigned() && h[key].get<uint64_t>() <= most);
  };
  if (!text("task") || h["task"].get<std::string>().empty()) return Error(m, "call: no task");
  Job::Call call;
  call.config = FleetConfig(options_.fleet);
  call.config.task = h["task"].get<std::string>();
  if (h.contains("args")) {
    if (!h["args"].is_array()) return Error(m, "call: args must be strings");
    for (const Json& a : h["args"]) {
      if (!a.is_string()) return Error(m, "call: args must be strings");
      call.config.args.push_back(a.get<std::string>());
    }
  }
  if (!uint_or_absent("retries", 1000) || !uint_or_absent("timeout_ms", uint64_t{1} << 40) ||
      (h.contains("keep_going") && !h["keep_going"].is_boolean())) {
    return Error(m, "call: retries (0 to 1000), timeout_ms and keep_going are numbers and a flag");
  }
  if (h.contains("priority") &&
      (!h["priority"].is_number_integer() || h["priority"].get<int64_t>() < -kMaxPriority ||
       h["priority"].get<int64_t>() > kMaxPriority)) {
    return Error(m, "call: priority must be a whole number from " + std::to_string(-kMaxPriority) +
                        " to " + std::to_string(kMaxPriority));
  }
  call.config.priority = static_cast<int32_t>(h.value("priority", int64_t{0}));
  call.config.scheduler.retries = h.value("retries", 0u);
  call.config.scheduler.timeout =
      std::chrono::duration_cast<Micros>(std::chrono::milliseconds(h.value("timeout_ms", 0ull)));
  call.config.scheduler.keep_going = h.value("keep_going", false);
  if (h.contains("range")) {
    const Json& r = h["range"];
    if (!r.is_array() || r.size() != 2 || !r[0].is_number_integer() || !r[1].is_number_integer() ||
        r[0].get<int64_t>() > r[1].get<int64_t>() || !uint_or_absent("chunks", kMaxChunks) ||
        h.value("chunks", 0ull) == 0 || m.payload) {
      return Error(m, "call: range is [lo, hi] with lo <= hi, chunks 1 to " +
                          std::to_string(kMaxChunks) + ", and no payload");
    }
    call.spec.range = IntRange{r[0].get<int64_t>(), r[1].get<int64_t>()};
    call.spec.range_chunks = h["chunks"].get<uint64_t>();
  } else {
    if (!uints("sizes") || h["sizes"].size() > kMaxChunks) {
      return Error(
          m, "call: sizes (one per chunk, at most " + std::to_string(kMaxChunks) + ") or a range");
    }
    uint64_t total = 0;
    for (const Json& n : h["sizes"]) {
      uint64_t size = n.get<uint64_t>();
      if (size > (uint64_t{1} << 62) - total) return Error(m, "call: sizes too large");
      total += size;
      call.spec.sizes.push_back(size);
    }
    if (total != (m.payload ? m.payload->size() : 0)) {
      return Error(m, "call: the sizes add up to " + std::to_string(total) +
                          " bytes but the payload has " +
                          std::to_string(m.payload ? m.payload->size() : 0));
    }
    if (m.payload) call.spec.bytes.assign(m.payload->data<char>(), m.payload->size());
  }
  if (h.contains("ids")) {
    if (!uints("ids") || h["ids"].size() != call.spec.chunk_count()) {
      return Error(m, "call: ids must be one number per chunk");
    }
    for (const Json& n : h["ids"]) call.spec.ids.push_back(n.get<uint64_t>());
  }
  auto job = std::make_shared<Job>();
  job->args = {"(call)", call.config.task};
  job->args.insert(job->args.end(), call.config.args.begin(), call.config.args.end());
  job->submitter = Owner(m);
  job->submitted = Now();
  job->call = std::move(call);
  job->id = next_id_++;
  Accept(m, job);
}

void Server::RunCall(Job& job) {
  Job::Call& call = *job.call;
  {
    std::lock_guard lock(mu_);
    call.outputs.assign(call.spec.chunk_count(), "");
  }
  // Each outcome as it comes; a parked `results` of a streaming Pool is then answered.
  auto told = [this, &job, &call](uint64_t chunk, int64_t failure) {
    call.order.emplace_back(chunk, failure);
    if (call.order.size() >= job.wake_at) {
      job.wake_at = UINT64_MAX;
      Announce();
    }
  };
  CallCallbacks callbacks{[&](uint64_t chunk, std::string output) {
                            std::lock_guard lock(mu_);
                            call.outputs[chunk] = std::move(output);
                            told(chunk, -1);
                          },
                          [&](uint64_t chunk, ChunkFailure f) {
                            std::lock_guard lock(mu_);
                            call.failures.push_back({{"chunk", chunk},
                                                     {"kind", ChunkFailureKindName(f.kind)},
                                                     {"reason", f.reason},
                                                     {"message", f.message}});
                            told(chunk, static_cast<int64_t>(call.failures.size()) - 1);
                          }};
  Status s = RunCallJob(
      call.config, std::move(call.spec), callbacks, [this] { return &fleet_; }, 0,
      job.stop.get_token());
  std::lock_guard lock(mu_);
  job.exit = !s.ok()                     ? ToInt(ExitCode::kUsage)
             : call.failures.empty()     ? ToInt(ExitCode::kOk)
             : job.stop.stop_requested() ? ToInt(ExitCode::kInterrupted)
                                         : ToInt(ExitCode::kJobFailed);
  if (!s.ok()) {
    job.report = s.message();  // refused before any chunk ran: no chunk has an outcome
    call.outputs.clear();
  }
}

void Server::OnMessage(ClientMessage& m) {
  if (auto mismatch = ProtocolMismatch(m.header, ClientProtocolSide::kClient))
    return Error(m, *mismatch);
  const std::string op = m.header["op"];
  if (op == "submit") return OnSubmit(m);
  if (op == "call") return OnCall(m);
  if (op == "input") return OnInput(m);
  std::lock_guard lock(mu_);
  if (op == "jobs") {
    Json list = Json::array();
    std::string me = Owner(m);
    for (auto& [id, job] : jobs_) {
      if (job->submitter == me) list.push_back(Describe(*job));
    }
    Send(m.peer, {{"op", "jobs"}, {"jobs", list}});
    return;
  }
  auto job = Find(m);
  if (!job) return;
  job->touched = Now();
  if (op == "status") {
    Send(m.peer, {{"op", "status"}, {"job", Describe(*job)}});
  } else if (op == "cancel") {
    if (job->state == Job::State::kReceiving) {
      Send(m.peer, {{"op", "cancelling"}, {"id", std::to_string(job->id)}, {"state", "receiving"}});
      DropUpload(job->id, "cancelled while its input was being sent");
      return;
    }
    job->forget = job->forget || m.header.value("forget", false);
    bool ended = job->state == Job::State::kDone;  // before this cancel
    if (job->state == Job::State::kQueued) {
      job->state = Job::State::kDone;
      job->exit = ToInt(ExitCode::kInterrupted);
      job->report = "fanout: cancelled before it started\n";
      job->ended = Now();
      Json end = {
          {"exit", job->exit}, {"report", job->report}, {"summary", ""}, {"ended", job->ended}};
      (void)Journal(JobDir(job->id) + "/done.json", end.dump());
      finished_.push_back(job->id);
      Announce();
    } else if (job->state == Job::State::kRunning) {
      job->stop.request_stop();
    }
    Send(m.peer,
         {{"op", "cancelling"}, {"id", std::to_string(job->id)}, {"state", StateName(job->state)}});
    // A finished job whose submitter leaves while fetching its output (Ctrl-C): nobody will
    // fetch it. (Any other job is forgotten once its waiters are told it ended: Finished.)
    if (ended && job->forget && job->waiters.empty()) Forget(job->id);
  } else if (op == "read") {
    OnRead(m, *job);
  } else if (op == "results") {
    OnResults(m, *job);
  } else if (op == "wait" || op == "output") {
    Delivery delivery = DeliveryOf(m.header);
    if (job->state == Job::State::kDone) {
      SendDone(*job, m.peer, delivery);
    } else if (op == "output") {
      Error(m, "job " + std::to_string(job->id) + " is still " + StateName(job->state) +
                   " (fanout wait " + std::to_string(job->id) + " waits for it)");
    } else {
      job->waiters[m.peer] = delivery;  // told when it ends (Finished)
      auto [done, chunks] = job->progress.Read();
      Send(m.peer, {{"op", "waiting"},
                    {"state", StateName(job->state)},
                    {"done", done},
                    {"chunks", chunks},
                    {"streams", !job->call && job->output_path.empty()}});
    }
  } else if (op == "fetched") {
    // The client has the output: the server lets go of it.
    if (job->state == Job::State::kDone) Forget(job->id);
  } else {
    Error(m, "unknown request '" + op + "'");
  }
}

void Server::Finished() {
  uint64_t count;
  while (read(done_fd_, &count, sizeof count) > 0) {
  }
  std::lock_guard lock(mu_);
  for (uint64_t id : finished_) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    Job& job = *it->second;
    AnswerParked(job);  // the rest of the output, before `done` (a done job answers all)
    for (const auto& [peer, delivery] : job.waiters) SendDone(job, peer, delivery);
    job.waiters.clear();
    if (job.forget) Forget(id);
  }
  finished_.clear();
  AnswerStreams();  // a running job's output grew by a part's worth
}

void Server::ExpireFinished() {
  // Once a second at most: the loop wakes for every batch of messages, and the scan
  // covers every job kept.
  auto clock = std::chrono::steady_clock::now();
  if (clock < next_expiry_) return;
  next_expiry_ = clock + std::chrono::seconds(1);
  double keep = std::chrono::duration<double>(options_.keep_finished).count();
  double now = Now();
  std::lock_guard lock(mu_);
  std::vector<uint64_t> expired;
  for (const auto& [id, job] : jobs_) {
    if (job->state == Job::State::kDone && job->waiters.empty() &&
        std::max(job->ended, job->touched) + keep <= now) {
      expired.push_back(id);
    }
  }
  for (uint64_t id : expired) {
    Log().info(
        "job {} deleted: it ended {:.0f} s ago and its output was not fetched "
        "(--keep-finished)",
        id, now - jobs_.at(id)->ended);
    Forget(id);
  }
}

void Server::Handle(ClientMessage& m, RateLimitedWarn& rejects) {
  try {
    OnMessage(m);
  } catch (const Json::exception& e) {
    // A hostile or broken client: a field of the wrong type.
    rejects.Warn("malformed client messages", std::string("refused a client message: ") + e.what());
    Error(m, std::string("malformed request: ") + e.what());
  }
}

void Server::Serve() {
  RateLimitedWarn rejects;
  std::vector<zmq::pollitem_t> items;
  while (!Interrupt::Requested()) {
    items = {{router_->handle(), 0, ZMQ_POLLIN, 0}, {nullptr, done_fd_, ZMQ_POLLIN, 0}};
    if (Interrupt::fd() >= 0) items.push_back({nullptr, Interrupt::fd(), ZMQ_POLLIN, 0});
    size_t direct = items.size();
    direct_.AddPollItems(items);
    PollOnce(items.data(), items.size(),
             streaming_                ? kStreamTick
             : direct_.accept_paused() ? std::chrono::milliseconds(100)
                                       : std::chrono::milliseconds(1000));
    if (items[1].revents & ZMQ_POLLIN) Finished();
    if (streaming_) {
      std::lock_guard lock(mu_);
      AnswerStreams();
    }
    if (!uploads_.empty()) DropIdleUploads();
    if (options_.keep_finished.count() > 0) ExpireFinished();
    while (true) {
      std::string why;
      auto m = ReceiveClientMessage(*router_, /*router=*/true, &why);
      if (!m) {
        if (why.empty()) break;
        rejects.Warn("malformed client messages", "refused a client message: " + why);
        continue;
      }
      Handle(*m, rejects);
    }
    direct_.Serve(
        items, direct, [&](ClientMessage& m) { Handle(m, rejects); },
        [&](const std::string& why) { rejects.Warn("direct clients refused", why); });
    rejects.Tick();
  }
}

int Server::Run() {
  if (Status s = Open(); !s.ok()) {
    std::fprintf(stderr, "fanout: server: %s\n", s.message().c_str());
    return ToInt(ExitCode::kUsage);
  }
  std::fprintf(stderr, "fanout: server listening on %s for clients%s%s (%u local workers)\n",
               ConnectableEndpoint(LastEndpoint(*router_)).c_str(),
               options_.fleet.listen.empty() ? "" : ", workers join ",
               options_.fleet.listen.c_str(), options_.fleet.jobs);
  Serve();
  if (!options_.state_dir.empty()) {
    // Waiting clients keep asking: a server started again on this --state answers them.
    Log().info("server stopping: unfinished jobs resume on the next start with this --state");
    return ToInt(ExitCode::kOk);
  }
  // Without a journal the unfinished jobs end with the server: their clients must not wait
  // for a server that will never know them.
  std::lock_guard lock(mu_);
  for (auto& [id, job] : jobs_) {
    if (job->state == Job::State::kDone) continue;
    for (const auto& [peer, delivery] : job->waiters) {
      Send(peer, {{"op", "error"},
                  {"message", "the server stopped; job " + std::to_string(id) +
                                  " is lost (a server with --state keeps its jobs)"},
                  {"exit", ToInt(ExitCode::kJobFailed)}});
    }
  }
  router_->set(zmq::sockopt::linger, 1000);  // those last words must leave
  direct_.Linger(std::chrono::milliseconds(1000));
  return ToInt(ExitCode::kOk);
}

}  // namespace

int RunServer(const ServerOptions& options) {
  Server server(options);
  return server.Run();
}

}  // namespace fanout
