// fanout_simulate: a deterministic simulator of a `processes` job. It drives the real
// Scheduler (engine/scheduler.h) and the real dispatch policy (Dispatcher,
// engine/dispatch_policy.h) on a virtual clock, with simulated workers: slots run
// attempts in arrival order, messages take half a round trip each way, workers report
// starts (STARTED), obey CANCEL, and may join late, leave (noticed at once, as a closed
// connection or a local worker's exit) or be killed silently (noticed after a liveness
// delay). Chunk durations: constant, lognormal (heavy-tailed) or bimodal.
//
// For each scenario it reports the makespan against a lower bound (the time the workers'
// capacity, integrated over their presence, takes to cover the total work; and the
// longest chunk on the fastest worker), whether every late joiner was given work in the
// dispatch round of its join, and dispatch decisions per second of real CPU time.
//
//   fanout_simulate [--small] [--check] [--scenario NAME] [--table]
//
// --small shrinks every scenario (ctest); --check exits 1 unless every scenario is within
// 1.05x of its bound and every late joiner got work in its first round. Same output every
// run: all randomness comes from fixed seeds.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/dispatch_policy.h"
#include "engine/scheduler.h"

namespace fanout {
namespace {

using std::chrono::microseconds;

enum class Durations { kConstant, kLognormal, kBimodal };

struct Scenario {
  std::string name;
  uint32_t workers = 1;
  uint32_t slots = 1;
  std::vector<double> speeds = {1.0};  // cycled over the workers
  uint64_t chunks = 1000;
  Durations durations = Durations::kConstant;
  int64_t chunk_us = 10000;  // constant; the lognormal's floor and median; bimodal's short one
  double late_fraction = 0;  // of the workers, joining at late_at x the ideal makespan
  double late_at = 0.25;
  double leave_fraction = 0;      // of the workers, leaving at 0.3 x the ideal makespan
  double kill_fraction = 0;       // of the workers, killed at 0.5 x the ideal makespan
  int64_t rtt_us = 200;           // message round trip
  int64_t liveness_us = 1000000;  // a killed worker is noticed after this (heartbeats)
  bool speculate = false;
  bool checked = true;  // held to 1.05x by --check
};

struct Outcome {
  double makespan_s = 0;
  double bound_s = 0;
  uint64_t decisions = 0;
  uint64_t steals = 0;
  double cpu_s = 0;  // spent in the coordinator's handlers (scheduler + dispatcher)
  uint32_t late_joiners = 0;
  uint32_t late_served = 0;  // given an attempt in the dispatch round of their join
  uint64_t lost = 0;
  bool finished = false;
};

class Simulation {
 public:
  explicit Simulation(const Scenario& sc)
      : sc_(sc), sched_(sc.chunks, Options(sc)), disp_(sched_) {}

  Outcome Run();

 private:
  static SchedulerOptions Options(const Scenario& sc) {
    SchedulerOptions o;
    o.speculate = sc.speculate;
    o.retries = 1000;  // losses are the machine's, not the task's
    return o;
  }
  enum class Kind {
    kJoin,
    kTaskArrive,
    kCancelArrive,
    kFinish,
    kStartedArrive,
    kResultArrive,
    kDepart,
    kLost
  };
  struct Event {
    int64_t at;
    uint64_t seq;
    Kind kind;
    WorkerIndex w;
    uint64_t chunk;
    uint32_t attempt;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  struct Worker {
    uint32_t slots = 1;
    double speed = 1;
    int64_t join_us = 0;
    std::optional<int64_t> depart_us;
    bool killed = false;
    bool joined = false, gone = false, lost = false, late = false;
    uint32_t busy = 0;
    std::deque<std::pair<uint64_t, uint32_t>> queue;
    std::set<std::pair<uint64_t, uint32_t>> running;
    uint32_t idle = 0;  // the coordinator's view: max(0, slots - live attempts)
    uint32_t live = 0;  // the coordinator's view: its live attempts
  };

  void Push(int64_t at, Kind kind, WorkerIndex w, uint64_t chunk = 0, uint32_t attempt = 0) {
    events_.push({at, seq_++, kind, w, chunk, attempt});
  }
  TimePoint Tp(int64_t us) const { return TimePoint{} + microseconds(us + 1000000); }
  void Recount(WorkerIndex w);
  // One dispatch round for `w`; returns how many attempts it was given.
  uint32_t Fill(WorkerIndex w, int64_t now);
  void TryStart(WorkerIndex w, int64_t now);
  double LowerBound() const;

  const Scenario& sc_;
  Scheduler sched_;
  Dispatcher disp_;
  std::vector<Worker> workers_;
  std::vector<int64_t> dur_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  uint64_t seq_ = 0;
  uint64_t total_idle_ = 0;     // sum of joined workers' idle
  uint64_t pending_slots_ = 0;  // slots of workers expected at the start, not joined yet
  uint64_t joined_slots_ = 0;   // slots of joined workers not lost
  uint64_t total_live_ = 0;     // sum of joined workers' live attempts
  Outcome out_;
};

void Simulation::Recount(WorkerIndex w) {
  Worker& k = workers_[w];
  total_idle_ -= k.idle;
  total_live_ -= k.live;
  uint32_t live = sched_.live_attempts(w);
  k.idle = (k.joined && !k.lost && live < k.slots) ? k.slots - live : 0;
  k.live = k.joined && !k.lost ? live : 0;
  total_idle_ += k.idle;
  total_live_ += k.live;
}

uint32_t Simulation::Fill(WorkerIndex w, int64_t now) {
  Worker& k = workers_[w];
  if (!k.joined || k.lost || !disp_.Refill(w, k.slots)) return 0;
  uint32_t given = 0;
  auto elsewhere = [&] {
    return Elsewhere{.idle = total_idle_ - k.idle + pending_slots_,
                     .slots = joined_slots_ - k.slots + pending_slots_,
                     .live = total_live_ - k.live};
  };
  while (auto d = disp_.Next(w, k.slots, Tp(now), elsewhere)) {
    ++out_.decisions;
    ++given;
    if (d->stolen_from) {
      ++out_.steals;
      Push(now + sc_.rtt_us / 2, Kind::kCancelArrive, d->stolen_from->worker, d->stolen_from->chunk,
           d->stolen_from->attempt);
      Recount(d->stolen_from->worker);
    }
    Push(now + sc_.rtt_us / 2, Kind::kTaskArrive, w, d->assignment.chunk, d->assignment.attempt);
    Recount(w);
  }
  return given;
}

void Simulation::TryStart(WorkerIndex w, int64_t now) {
  Worker& k = workers_[w];
  while (!k.gone && k.busy < k.slots && !k.queue.empty()) {
    auto [chunk, attempt] = k.queue.front();
    k.queue.pop_front();
    ++k.busy;
    k.running.insert({chunk, attempt});
    auto took = static_cast<int64_t>(static_cast<double>(dur_[chunk]) / k.speed);
    Push(now + took, Kind::kFinish, w, chunk, attempt);
    Push(now + sc_.rtt_us / 2, Kind::kStartedArrive, w, chunk, attempt);
  }
}

double Simulation::LowerBound() const {
  // Capacity (work-us per us) changes at joins and departures.
  std::map<int64_t, double> delta;
  double longest = 0, fastest = 0, work = 0;
  for (const Worker& k : workers_) {
    delta[k.join_us] += k.slots * k.speed;
    if (k.depart_us) delta[*k.depart_us] -= k.slots * k.speed;
    fastest = std::max(fastest, k.speed);
  }
  for (int64_t d : dur_) {
    work += static_cast<double>(d);
    longest = std::max(longest, static_cast<double>(d));
  }
  double cap = 0, done = 0, t = 0, bound = 0;
  for (auto it = delta.begin(); it != delta.end(); ++it) {
    double t1 = static_cast<double>(it->first);
    if (cap > 0 && done + cap * (t1 - t) >= work) break;
    done += cap * (t1 - t);
    t = t1;
    cap += it->second;
  }
  bound = cap > 0 ? t + (work - done) / cap : INFINITY;
  return std::max(bound, longest / fastest) / 1e6;
}

Outcome Simulation::Run() {
  std::mt19937_64 rng(42);
  dur_.resize(sc_.chunks);
  std::lognormal_distribution<double> lognormal(std::log(static_cast<double>(sc_.chunk_us)), 1.0);
  std::bernoulli_distribution long_one(0.1);
  for (auto& d : dur_) {
    switch (sc_.durations) {
      case Durations::kConstant:
        d = sc_.chunk_us;
        break;
      case Durations::kLognormal:
        d = sc_.chunk_us + static_cast<int64_t>(lognormal(rng));
        break;
      case Durations::kBimodal:
        d = long_one(rng) ? 20 * sc_.chunk_us : sc_.chunk_us;
        break;
    }
  }
  double total = 0, capacity = 0;
  for (int64_t d : dur_) total += static_cast<double>(d);
  workers_.resize(sc_.workers);
  for (uint32_t i = 0; i < sc_.workers; ++i) {
    workers_[i].slots = sc_.slots;
    workers_[i].speed = sc_.speeds[i % sc_.speeds.size()];
    capacity += sc_.slots * workers_[i].speed;
  }
  double ideal_us = total / capacity;
  // Which workers join late, leave or get killed: spread evenly over the speeds.
  auto pick = [&](double fraction, uint32_t offset) {
    std::vector<uint32_t> picked;
    auto n = static_cast<uint32_t>(fraction * sc_.workers);
    for (uint32_t j = 0; j < n; ++j) picked.push_back((j * sc_.workers / n + offset) % sc_.workers);
    return picked;
  };
  for (uint32_t i : pick(sc_.late_fraction, 1)) {
    workers_[i].join_us = static_cast<int64_t>(sc_.late_at * ideal_us);
    workers_[i].late = true;
  }
  for (uint32_t i : pick(sc_.leave_fraction, 2)) {
    if (!workers_[i].late) workers_[i].depart_us = static_cast<int64_t>(0.3 * ideal_us);
  }
  for (uint32_t i : pick(sc_.kill_fraction, 3)) {
    if (workers_[i].late || workers_[i].depart_us) continue;
    workers_[i].depart_us = static_cast<int64_t>(0.5 * ideal_us);
    workers_[i].killed = true;
  }
  for (uint32_t i = 0; i < sc_.workers; ++i) {
    Worker& k = workers_[i];
    if (k.join_us == 0) pending_slots_ += k.slots;
    Push(k.join_us, Kind::kJoin, i);
    if (k.depart_us) Push(*k.depart_us, Kind::kDepart, i);
  }
  out_.bound_s = LowerBound();

  double cpu = 0;
  while (!events_.empty() && !sched_.Finished()) {
    Event e = events_.top();
    events_.pop();
    Worker& k = workers_[e.w];
    auto t0 = std::chrono::steady_clock::now();
    bool coordinator = true;
    switch (e.kind) {
      case Kind::kJoin: {
        k.joined = true;
        joined_slots_ += k.slots;
        if (k.join_us == 0) pending_slots_ -= k.slots;
        sched_.AddWorker(e.w, k.slots, k.slots + DispatchOptions{}.max_prefetch, true);
        Recount(e.w);
        bool work_exists = sched_.queued() > 0 || sched_.chunks_done() < sc_.chunks;
        uint32_t given = Fill(e.w, e.at);
        if (k.late && work_exists) {
          ++out_.late_joiners;
          if (given > 0) ++out_.late_served;
        }
        break;
      }
      case Kind::kStartedArrive:
        if (!k.lost) sched_.MarkStarted(e.w, e.chunk, e.attempt, Tp(e.at));
        break;
      case Kind::kResultArrive: {
        if (k.lost) break;
        auto r = sched_.OnResult(e.w, e.chunk, e.attempt, true, "", Tp(e.at));
        if (r.verdict == Verdict::kAccepted) out_.makespan_s = static_cast<double>(e.at) / 1e6;
        for (const CancelOrder& c : r.cancel) {
          Push(e.at + sc_.rtt_us / 2, Kind::kCancelArrive, c.worker, c.chunk, c.attempt);
          Recount(c.worker);
        }
        Recount(e.w);
        Fill(e.w, e.at);
        break;
      }
      case Kind::kLost: {
        k.lost = true;
        if (k.joined) joined_slots_ -= k.slots;
        ++out_.lost;
        sched_.RemoveWorker(e.w, "lost", Tp(e.at));
        Recount(e.w);
        // Its attempts are queued again: every worker gets a round (as the event loop does).
        for (WorkerIndex w = 0; w < workers_.size(); ++w) Fill(w, e.at);
        break;
      }
      default:
        coordinator = false;
        break;
    }
    if (coordinator) {
      cpu += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      continue;
    }
    // The worker's side.
    if (k.gone) continue;
    switch (e.kind) {
      case Kind::kTaskArrive:
        k.queue.emplace_back(e.chunk, e.attempt);
        TryStart(e.w, e.at);
        break;
      case Kind::kCancelArrive: {
        auto q = std::find(k.queue.begin(), k.queue.end(), std::make_pair(e.chunk, e.attempt));
        if (q != k.queue.end()) {
          k.queue.erase(q);
        } else if (k.running.erase({e.chunk, e.attempt})) {
          --k.busy;
          TryStart(e.w, e.at);
        }
        break;
      }
      case Kind::kFinish:
        if (!k.running.erase({e.chunk, e.attempt})) break;  // cancelled
        --k.busy;
        Push(e.at + sc_.rtt_us / 2, Kind::kResultArrive, e.w, e.chunk, e.attempt);
        TryStart(e.w, e.at);
        break;
      case Kind::kDepart:
        k.gone = true;
        k.queue.clear();
        k.running.clear();
        Push(e.at + (k.killed ? sc_.liveness_us : sc_.rtt_us / 2), Kind::kLost, e.w);
        break;
      default:
        break;
    }
  }
  out_.finished = sched_.Finished();
  out_.cpu_s = cpu;
  return out_;
}

std::vector<Scenario> Scenarios(bool small) {
  // Every scenario has chunks of 10 ms or more. `small` divides the workers and the chunks
  // by 10 for ctest (as many chunks per slot).
  uint64_t f = small ? 10 : 1;
  uint32_t w = small ? 10 : 100;
  const std::vector<double> mixed = {0.5, 1.0, 2.0};
  std::vector<Scenario> all;
  Scenario s;
  s.workers = w, s.slots = 4, s.chunks = 40000 / f;
  s.name = "constant 10ms, equal";
  all.push_back(s);
  s.name = "constant 10ms, mixed speeds";
  s.speeds = mixed;
  all.push_back(s);
  s.name = "lognormal 10ms+LN(10ms,1), equal";
  s.speeds = {1.0}, s.durations = Durations::kLognormal, s.chunks = 100000 / f;
  all.push_back(s);
  s.name = "bimodal 90% 10ms/10% 200ms, mixed speeds";
  s.speeds = mixed, s.durations = Durations::kBimodal, s.chunks = 160000 / f;
  all.push_back(s);
  s = Scenario{};
  s.workers = w, s.slots = 4, s.chunks = 40000 / f;
  s.name = "constant 10ms, half join late";
  s.late_fraction = 0.5;
  all.push_back(s);
  s.name = "lognormal, mixed, 20% late, 10% leave, 5% killed";
  s.speeds = mixed, s.durations = Durations::kLognormal, s.chunks = 300000 / f;
  s.late_fraction = 0.2, s.leave_fraction = 0.1, s.kill_fraction = 0.05;
  all.push_back(s);
  s = Scenario{};
  s.workers = 10000 / static_cast<uint32_t>(f), s.slots = 1, s.chunks = 1000000 / f;
  s.name = "constant 10ms, mixed, 10% late, 5% leave, 2% killed";
  s.speeds = mixed, s.late_fraction = 0.1, s.leave_fraction = 0.05, s.kill_fraction = 0.02;
  s.liveness_us = 100000;
  all.push_back(s);
  // Not held to 1.05x: the job lasts only ~6x its longest chunk on the slowest worker, and
  // which chunks are long is unknown until they run, so the last long one started on a
  // slow worker sets the end (the bound assumes it ran on the fastest).
  s = Scenario{};
  s.workers = w, s.slots = 4, s.chunks = 40000 / f;
  s.name = "(limit) bimodal, mixed speeds, short job";
  s.speeds = mixed, s.durations = Durations::kBimodal, s.checked = false;
  all.push_back(s);
  return all;
}

int Main(int argc, char** argv) {
  bool small = false, check = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--small") {
      small = true;
    } else if (a == "--check") {
      check = true;
    } else if (a == "--table") {
      // the only output format
    } else if (a == "--scenario" && i + 1 < argc) {
      only = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: fanout_simulate [--small] [--check] [--scenario NAME] [--table]\n");
      return 2;
    }
  }
  std::printf(
      "| scenario | workers x slots | chunks | lower bound (s) | makespan (s) | ratio | "
      "steals | late joiners served in 1st round | decisions/s |\n"
      "|---|---|---|---|---|---|---|---|---|\n");
  bool ok = true;
  for (const Scenario& sc : Scenarios(small)) {
    if (!only.empty() && sc.name.find(only) == std::string::npos) continue;
    Simulation sim(sc);
    Outcome o = sim.Run();
    double ratio = o.makespan_s / o.bound_s;
    bool pass = o.finished && (ratio <= 1.05 || !sc.checked) && o.late_served == o.late_joiners;
    ok = ok && pass;
    std::printf("| %s | %ux%u | %llu | %.3f | %.3f | %.3f%s | %llu | %u/%u | %.2fM |\n",
                sc.name.c_str(), sc.workers, sc.slots, static_cast<unsigned long long>(sc.chunks),
                o.bound_s, o.makespan_s, ratio, pass ? "" : " FAIL",
                static_cast<unsigned long long>(o.steals), o.late_served, o.late_joiners,
                o.cpu_s > 0 ? static_cast<double>(o.decisions) / o.cpu_s / 1e6 : 0.0);
    std::fflush(stdout);
  }
  return check && !ok ? 1 : 0;
}

}  // namespace
}  // namespace fanout

int main(int argc, char** argv) { return fanout::Main(argc, argv); }
