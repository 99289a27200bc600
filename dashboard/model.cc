#include "dashboard/model.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "dashboard/metrics_writer.h"

namespace fanout {
namespace {

using Json = nlohmann::ordered_json;

// Attempt duration histogram bounds, seconds.
const std::vector<double> kDurationBounds = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5,
                                             1,     2.5,   5,    10,   30,  60,   300};
constexpr size_t kMaxError = 200;
constexpr size_t kMaxRunningListed = 500;

}  // namespace

DashboardModel::DashboardModel(Options options)
    : options_(std::move(options)), duration_counts_(kDurationBounds.size() + 1, 0) {}

double DashboardModel::NowLocked() const {
  if (!have_base_) return 0;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - base_).count();
}

void DashboardModel::NoteTimeLocked(double at) {
  // The first event fixes the job clock's origin against ours; Now() then runs on.
  if (have_base_) return;
  base_ = std::chrono::steady_clock::now() -
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
              std::chrono::duration<double>(at));
  have_base_ = true;
}

DashboardModel::Worker& DashboardModel::WorkerLocked(WorkerIndex worker) {
  if (workers_.size() <= worker) workers_.resize(worker + 1);
  return workers_[worker];
}

void DashboardModel::SampleLocked(bool force) {
  double now = NowLocked();
  if (!force && !samples_.empty() && now - samples_.back().at < 1.0) return;
  samples_.push_back({now, chunks_done_, bytes_in_, bytes_out_});
  while (samples_.size() > options_.max_samples) samples_.pop_front();
}

void DashboardModel::OnRunStart(const Telemetry& telemetry, uint64_t chunks, Unit unit) {
  std::lock_guard lock(mu_);
  NoteTimeLocked(telemetry.Now());
  started_ = true;
  run_chunks_ = chunks;
  unit_records_ = unit == Unit::kRecords;
  run_start_ = NowLocked();
  SampleLocked(true);
}

void DashboardModel::OnRunEnd() {
  std::lock_guard lock(mu_);
  run_ended_ = true;
  end_at_ = NowLocked();
  SampleLocked(true);
}

void DashboardModel::OnJobEnd(const JobEnd& end) {
  std::lock_guard lock(mu_);
  const JobTotals& t = end.totals;
  ended_ = true;
  if (!run_ended_) end_at_ = NowLocked();
  run_ended_ = true;
  exit_code_ = t.exit_code;
  mode_ran_ = end.auto_mode ? "auto:" + t.mode : t.mode;
  job_chunks_ = t.chunks;
  // What only the end knows: chunks --resume found finished, the scheduler's retries and
  // failed chunks. Counters only grow, so they agree with --stats-json from here on.
  uint64_t resumed = started_ && t.chunks > run_chunks_ ? t.chunks - run_chunks_ : 0;
  if (!started_ && t.exit_code == 0) resumed = t.chunks;
  chunks_done_ += resumed;
  chunks_failed_ = std::max<uint64_t>(chunks_failed_, t.failed_chunks.size());
  retries_ = std::max(retries_, t.counters.retries);
  bytes_in_ = std::max(bytes_in_, t.bytes_in);
  bytes_out_ = std::max(bytes_out_, t.bytes_out);
  running_.clear();
  for (Worker& w : workers_) w.running = 0;
  SampleLocked(true);
}

bool DashboardModel::ended() {
  std::lock_guard lock(mu_);
  return ended_;
}

void DashboardModel::OnWorker(WorkerIndex worker, const WorkerInfo& info) {
  std::lock_guard lock(mu_);
  Worker& w = WorkerLocked(worker);
  w.info = info;
  w.known = true;
  if (info.left || info.lost) {
    std::erase_if(running_, [&](const auto& r) { return r.second.worker == worker; });
    w.running = 0;
  }
}

void DashboardModel::OnAttemptStart(uint64_t chunk, uint32_t attempt, WorkerIndex worker,
                                    double at) {
  std::lock_guard lock(mu_);
  NoteTimeLocked(at);
  ++dispatched_;
  auto [it, inserted] = running_.try_emplace({chunk, attempt}, Running{worker, at});
  if (!inserted && it->second.worker != worker) {
    // Taken back from another worker (work stealing): it runs here now.
    Worker& from = WorkerLocked(it->second.worker);
    if (from.running > 0) --from.running;
    it->second = {worker, at};
    inserted = true;
  }
  Worker& w = WorkerLocked(worker);
  if (inserted) ++w.running;
  w.last_seen = at;
}

void DashboardModel::OnAttemptEnd(const AttemptSpan& span) {
  std::lock_guard lock(mu_);
  NoteTimeLocked(span.end);
  if (auto it = running_.find({span.chunk, span.attempt}); it != running_.end()) {
    Worker& owner = WorkerLocked(it->second.worker);
    if (owner.running > 0) --owner.running;
    running_.erase(it);
  }
  Worker& w = WorkerLocked(span.worker);
  w.last_seen = std::max(w.last_seen, span.end);
  double duration = std::max(0.0, span.end - span.start);
  size_t bucket = static_cast<size_t>(
      std::lower_bound(kDurationBounds.begin(), kDurationBounds.end(), duration) -
      kDurationBounds.begin());
  ++duration_counts_[bucket];
  duration_sum_ += duration;
  if (span.ok) {
    ++attempts_ok_;
    ++w.chunks;
    bytes_in_ += span.bytes_in;
    bytes_out_ += span.bytes_out;
    records_ += span.records;
    if (chunk_done_.size() <= span.chunk) chunk_done_.resize(span.chunk + 1);
    if (!chunk_done_[span.chunk]) {
      chunk_done_[span.chunk] = true;
      ++chunks_done_;
    }
  } else {
    ++attempts_failed_;
    ++w.failures;
  }
  // The slot (lane) of the worker that frees up first, as the trace draws it.
  if (w.lane_free.empty()) w.lane_free.assign(std::max<uint32_t>(w.info.slots, 1), 0.0);
  size_t lane = static_cast<size_t>(std::min_element(w.lane_free.begin(), w.lane_free.end()) -
                                    w.lane_free.begin());
  w.lane_free[lane] = span.end;
  TaskEvent& e = events_.emplace_back();
  e.seq = next_seq_++;
  e.chunk = span.chunk;
  e.attempt = span.attempt;
  e.worker = span.worker;
  e.slot = static_cast<uint32_t>(lane);
  e.start = span.start;
  e.end = span.end;
  e.ok = span.ok;
  if (!span.ok) e.error = span.error.substr(0, kMaxError);
  while (events_.size() > options_.max_events) events_.pop_front();
  SampleLocked(false);
}

void DashboardModel::OnWorkerSeen(WorkerIndex worker, double at) {
  std::lock_guard lock(mu_);
  NoteTimeLocked(at);
  Worker& w = WorkerLocked(worker);
  w.last_seen = std::max(w.last_seen, at);
}

std::string DashboardModel::StateLocked() const {
  if (!ended_) {
    if (run_ended_) return "finishing";
    return started_ ? "running" : "starting";
  }
  switch (exit_code_) {
    case 0:
      return "succeeded";
    case 3:
      return "partial";
    case 130:
      return "interrupted";
    default:
      return "failed";
  }
}

std::string DashboardModel::JobJson() {
  std::lock_guard lock(mu_);
  SampleLocked(false);
  double now = ended_ || run_ended_ ? end_at_ : NowLocked();
  double elapsed = started_ ? std::max(0.0, now - run_start_) : 0;
  uint64_t total = ended_ ? job_chunks_ : run_chunks_;
  uint64_t done = chunks_done_;
  Json j;
  j["task"] = options_.task;
  j["mode"] = mode_ran_.empty() ? options_.mode : mode_ran_;
  j["state"] = StateLocked();
  j["exit_code"] = ended_ ? Json(exit_code_) : Json(nullptr);
  j["chunks_total"] = total;
  j["chunks_done"] = done;
  j["chunks_failed"] = chunks_failed_;
  j["chunks_running"] = running_.size();
  j["attempts_ok"] = attempts_ok_;
  j["attempts_failed"] = attempts_failed_;
  j["retries"] = retries_;
  j["bytes_in"] = bytes_in_;
  j["bytes_out"] = bytes_out_;
  j["records"] = records_;
  j["unit"] = unit_records_ ? "records" : "bytes";
  j["elapsed_seconds"] = elapsed;
  j["progress"] = total > 0 ? std::min(1.0, static_cast<double>(done) / total) : 0.0;
  // ETA from this run's rate so far (chunks it finished / time).
  uint64_t run_done = done;
  if (started_ && !ended_ && run_done > 0 && elapsed > 0 && total > run_done) {
    j["eta_seconds"] = (total - run_done) * elapsed / run_done;
  } else {
    j["eta_seconds"] = ended_ ? Json(0) : Json(nullptr);
  }
  Json history = Json::array();
  for (const Sample& s : samples_) {
    history.push_back({s.at, s.chunks, s.bytes_in, s.bytes_out});
  }
  j["history"] = std::move(history);  // [job seconds, chunks done, bytes in, bytes out]
  j["now"] = NowLocked();
  return j.dump();
}

std::string DashboardModel::WorkersJson() {
  std::lock_guard lock(mu_);
  double now = NowLocked();
  Json list = Json::array();
  for (size_t i = 0; i < workers_.size(); ++i) {
    const Worker& w = workers_[i];
    if (!w.known) continue;
    std::string state = w.info.lost     ? "lost"
                        : w.info.left   ? "left"
                        : w.running > 0 ? "busy"
                                        : "idle";
    if (ended_ && state != "lost" && state != "left") state = "done";
    Json row;
    row["index"] = i;
    row["name"] = w.info.name;
    row["host"] = w.info.host;
    row["state"] = state;
    row["slots"] = w.info.slots;
    row["slots_busy"] = std::min(w.running, w.info.slots);
    row["chunks"] = w.chunks;
    row["failures"] = w.failures;
    row["last_seen_seconds_ago"] =
        w.last_seen < 0 ? Json(nullptr) : Json(std::max(0.0, now - w.last_seen));
    list.push_back(std::move(row));
  }
  return Json{{"now", now}, {"workers", std::move(list)}}.dump();
}

std::string DashboardModel::TasksJson(uint64_t since) {
  std::lock_guard lock(mu_);
  Json events = Json::array();
  auto first = std::lower_bound(events_.begin(), events_.end(), since + 1,
                                [](const TaskEvent& e, uint64_t seq) { return e.seq < seq; });
  for (auto it = first; it != events_.end(); ++it) {
    Json e = {{"seq", it->seq},       {"chunk", it->chunk}, {"attempt", it->attempt},
              {"worker", it->worker}, {"slot", it->slot},   {"start", it->start},
              {"end", it->end},       {"ok", it->ok}};
    if (!it->ok) e["error"] = it->error;
    events.push_back(std::move(e));
  }
  Json running = Json::array();
  for (const auto& [key, r] : running_) {
    if (running.size() >= kMaxRunningListed) break;
    running.push_back(
        {{"chunk", key.first}, {"attempt", key.second}, {"worker", r.worker}, {"since", r.since}});
  }
  return Json{{"now", NowLocked()},
              {"last_seq", next_seq_ - 1},
              {"events", std::move(events)},
              {"running", std::move(running)}}
      .dump();
}

std::string DashboardModel::MetricsText() {
  std::lock_guard lock(mu_);
  MetricsWriter m;
  std::string state = StateLocked();
  m.Family("fanout_jobs", "gauge", "Jobs by state (this process runs one).");
  for (const char* s :
       {"starting", "running", "finishing", "succeeded", "partial", "failed", "interrupted"}) {
    m.Sample("fanout_jobs", state == s ? 1 : 0, {{"state", s}});
  }
  m.Gauge("fanout_job_chunks", "Chunks of the job (this run's until the end, then the job's).",
          static_cast<double>(ended_ ? job_chunks_ : run_chunks_));
  m.Counter("fanout_chunks_done_total",
            "Chunks finished (with --resume: the stored ones at the end).",
            static_cast<double>(chunks_done_));
  m.Counter("fanout_chunks_failed_total", "Chunks given up for good (known at the end).",
            static_cast<double>(chunks_failed_));
  m.Counter("fanout_chunk_retries_total",
            "Chunks re-queued after a failed or lost attempt (known at the end).",
            static_cast<double>(retries_));
  m.Counter("fanout_attempts_dispatched_total", "Attempts sent to (or started on) workers.",
            static_cast<double>(dispatched_));
  m.Family("fanout_attempts_ended_total", "counter", "Attempts that ended, by outcome.");
  m.Sample("fanout_attempts_ended_total", static_cast<double>(attempts_ok_), {{"outcome", "ok"}});
  m.Sample("fanout_attempts_ended_total", static_cast<double>(attempts_failed_),
           {{"outcome", "failed"}});
  m.Counter("fanout_input_bytes_total", "Input bytes of the attempts that succeeded.",
            static_cast<double>(bytes_in_));
  m.Counter("fanout_output_bytes_total", "Output bytes of the attempts that succeeded.",
            static_cast<double>(bytes_out_));
  m.Counter("fanout_records_total", "Records of the attempts that succeeded.",
            static_cast<double>(records_));
  uint64_t by_state[4] = {0, 0, 0, 0};  // idle, busy, left, lost
  uint64_t slots = 0, busy = 0;
  for (const Worker& w : workers_) {
    if (!w.known) continue;
    if (w.info.lost) {
      ++by_state[3];
    } else if (w.info.left) {
      ++by_state[2];
    } else {
      ++by_state[w.running > 0 ? 1 : 0];
      slots += w.info.slots;
      busy += std::min(w.running, w.info.slots);
    }
  }
  m.Family("fanout_workers", "gauge", "Workers by state.");
  const char* names[4] = {"idle", "busy", "left", "lost"};
  for (int i = 0; i < 4; ++i) {
    m.Sample("fanout_workers", static_cast<double>(by_state[i]), {{"state", names[i]}});
  }
  m.Gauge("fanout_slots", "Attempt slots of the workers present.", static_cast<double>(slots));
  m.Gauge("fanout_slots_busy", "Slots running an attempt.", static_cast<double>(busy));
  m.Histogram("fanout_attempt_duration_seconds", "Attempt wall time, seconds.", kDurationBounds,
              duration_counts_, duration_sum_);
  return m.text();
}

}  // namespace fanout
