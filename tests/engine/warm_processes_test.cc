// WarmProcesses (engine/warm_processes.h) against a worker played by the test over a real
// DEALER socket: the jobs of a warm loop share workers, and what a worker says about an
// earlier job's attempt is never taken for a later job's. Then against real fanout-worker
// processes: jobs submitted from several threads run at once, share the slots fairly, and
// end on their own (a cancel, a killed worker).
#include "engine/warm_processes.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/protocol.h"
#include "common/transport.h"
#include "tests/support/test_support.h"

namespace fanout {
namespace {

using std::chrono::milliseconds;

class Collect : public ChunkObserver {
 public:
  Status OnAccepted(uint64_t chunk, Blob output) override {
    outputs[chunk] = std::string(output.view());
    ++accepted;
    return Status::Ok();
  }
  Status OnFailed(uint64_t chunk) override {
    failed.push_back(chunk);
    return Status::Ok();
  }
  std::map<uint64_t, std::string> outputs;
  std::vector<uint64_t> failed;
  uint64_t accepted = 0;  // outputs taken, duplicates included
};

// Counts the attempts a job sent out, so a test can wait until a job holds workers.
class Dispatched : public TelemetryListener {
 public:
  void OnAttemptStart(uint64_t, uint32_t, WorkerIndex, double) override {
    std::lock_guard lock(mu_);
    ++count_;
    cv_.notify_all();
  }
  // Whether `n` attempts went out within 20 s.
  bool WaitFor(uint64_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] { return count_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t count_ = 0;
};

// One job of line chunks, run on `fleet` on a thread of its own.
struct Job {
  Job(const JobConfig& c, const TaskDef& task, const std::vector<std::string>& chunks)
      : config(c),
        job{config, task, JobInput::FromBuffer(Join(chunks)), Plan(chunks), {}},
        scheduler(chunks.size(), config.scheduler),
        sink(job, scheduler, collect, stats) {}
  static std::string Join(const std::vector<std::string>& chunks) {
    std::string all;
    for (const auto& c : chunks) all += c;
    return all;
  }
  static std::vector<ChunkSpec> Plan(const std::vector<std::string>& chunks) {
    std::vector<ChunkSpec> specs;
    uint64_t at = 0;
    for (const auto& c : chunks) {
      ChunkSpec s;
      s.id = specs.size();
      s.begin = at;
      s.end = at += c.size();
      s.records = 1;
      s.first_record = s.id;
      specs.push_back(s);
    }
    return specs;
  }
  std::future<ModeResult> RunOn(WarmProcesses& fleet, std::stop_token stop = {}) {
    return std::async(std::launch::async,
                      [&, stop] { return fleet.Run(job, scheduler, sink, stats, stop); });
  }
  JobConfig config;  // the plan's (PlannedJob holds a reference)
  PlannedJob job;
  Scheduler scheduler;
  RunStats stats;
  Collect collect;
  ResultSink sink;
};

// A worker played by the test: HELLO, then whatever the test sends and expects.
class TestWorker {
 public:
  explicit TestWorker(const std::string& endpoint) {
    auto dealer = MakeDealer(context_, endpoint, "");
    EXPECT_TRUE(dealer.ok()) << dealer.status().message();
    socket_.emplace(std::move(dealer).value());
    Hello hello{"test-worker", "testhost", "0", getpid(), /*slots=*/2, {"identity"}};
    SendMessage(*socket_, hello);
  }
  // The next message other than a heartbeat, within 10 s.
  Message Next() {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
      zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, milliseconds(100));
      Received got = ReceiveMessage(*socket_, /*router=*/false);
      if (auto* env = std::get_if<Envelope>(&got)) {
        if (!std::holds_alternative<Heartbeat>(env->message)) return env->message;
      }
    }
    ADD_FAILURE() << "no message within 10 s";
    return Heartbeat{};
  }
  template <typename T>
  T Expect() {
    Message m = Next();
    EXPECT_TRUE(std::holds_alternative<T>(m)) << "got " << KindName(KindOf(m));
    return std::holds_alternative<T>(m) ? std::get<T>(m) : T{};
  }
  void Answer(uint64_t chunk, uint32_t attempt, bool ok, const std::string& output) {
    zmq::message_t payload(output.data(), output.size());
    ResultMsg r{chunk, attempt, ok, ok ? "" : "failed on purpose"};
    SendMessage(*socket_, r, output.empty() ? nullptr : &payload);
  }

 private:
  zmq::context_t context_{1};
  std::optional<zmq::socket_t> socket_;
};

TEST(WarmProcessesTest, ALateResultOfAnEarlierJobIsNeverTakenForALaterJobs) {
  auto dir = std::filesystem::temp_directory_path() / ("fanout-warm-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  JobConfig config;
  config.mode = Mode::kProcesses;
  config.task = "identity";
  config.listen = "ipc://" + (dir / "warm.sock").string();
  TaskDef task{"identity", "identity", "", nullptr, nullptr, nullptr, nullptr};
  WarmProcesses fleet(config, /*workers=*/0);

  // Job 1: chunk 1 fails, which ends the job (no keep_going) while chunk 0 still runs.
  Job first(config, task, {"a\n", "b\n"});
  auto first_done = first.RunOn(fleet);
  TestWorker worker(config.listen);
  worker.Expect<Welcome>();
  TaskMsg t0 = worker.Expect<TaskMsg>();
  TaskMsg t1 = worker.Expect<TaskMsg>();
  EXPECT_EQ(t0.chunk, 0u);
  EXPECT_EQ(t1.chunk, 1u);
  worker.Answer(t1.chunk, t1.attempt, /*ok=*/false, "");
  ASSERT_EQ(first_done.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(first_done.get().kind, ModeResult::Kind::kCompleted);
  EXPECT_TRUE(first.scheduler.Aborted());
  // The attempt still out is cancelled: the worker stays for the next job.
  Cancel cancel = worker.Expect<Cancel>();
  EXPECT_EQ(cancel.chunk, t0.chunk);

  // Job 2 on the same worker: its chunk 0 goes out under a wire id of its own.
  Job second(config, task, {"x\n"});
  auto second_done = second.RunOn(fleet);
  TaskMsg t2 = worker.Expect<TaskMsg>();
  EXPECT_EQ(t2.chunk, 2u) << "job 2's chunk 0 must not reuse job 1's wire ids";
  EXPECT_EQ(t2.attempt, 1u);
  // Job 1's chunk 0 finishes late (the CANCEL crossed it), then job 2's chunk.
  worker.Answer(t0.chunk, t0.attempt, /*ok=*/true, "STALE\n");
  worker.Answer(t2.chunk, t2.attempt, /*ok=*/true, "x\n");
  ASSERT_EQ(second_done.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(second_done.get().kind, ModeResult::Kind::kCompleted);
  EXPECT_EQ(second.collect.outputs, (std::map<uint64_t, std::string>{{0, "x\n"}}));
  EXPECT_EQ(second.stats.rejected_messages, 0u);
  std::filesystem::remove_all(dir);
}

// A fleet of two real local workers with one slot each, and jobs of one-line chunks.
class RealFleetTest : public ::testing::Test {
 protected:
  RealFleetTest() {
    config.mode = Mode::kProcesses;
    config.worker_bin = testing::WorkerBin();
    config.local_slots = 1;
  }
  // `n` distinct lines, each its own chunk: "<tag><i>\n".
  static std::vector<std::string> Lines(const std::string& tag, int n) {
    std::vector<std::string> lines;
    for (int i = 0; i < n; ++i) lines.push_back(tag + std::to_string(i) + "\n");
    return lines;
  }
  // `sleep MS` (per record) on each chunk, whose output is its input.
  std::unique_ptr<Job> Sleeping(const std::vector<std::string>& lines, int ms) {
    JobConfig c = config;
    c.task = "sleep";
    c.args = {std::to_string(ms)};
    return std::make_unique<Job>(c, sleep_task, lines);
  }
  static std::map<uint64_t, std::string> Expected(const std::vector<std::string>& lines) {
    std::map<uint64_t, std::string> out;
    for (size_t i = 0; i < lines.size(); ++i) out[i] = lines[i];
    return out;
  }
  // Waits for two jobs that must both complete, with every chunk's output once.
  static void ExpectBothComplete(std::future<ModeResult>& a_done, std::future<ModeResult>& b_done,
                                 const Job& a, const std::vector<std::string>& a_lines,
                                 const Job& b, const std::vector<std::string>& b_lines) {
    ASSERT_EQ(a_done.wait_for(std::chrono::seconds(60)), std::future_status::ready);
    ASSERT_EQ(b_done.wait_for(std::chrono::seconds(60)), std::future_status::ready);
    ModeResult ra = a_done.get(), rb = b_done.get();
    EXPECT_EQ(ra.kind, ModeResult::Kind::kCompleted) << ra.message;
    EXPECT_EQ(rb.kind, ModeResult::Kind::kCompleted) << rb.message;
    ExpectAllOnce(a, a_lines);
    ExpectAllOnce(b, b_lines);
  }
  static void ExpectAllOnce(const Job& job, const std::vector<std::string>& lines) {
    EXPECT_EQ(job.collect.outputs, Expected(lines));
    EXPECT_EQ(job.collect.accepted, lines.size()) << "a chunk's output was taken twice";
    EXPECT_TRUE(job.collect.failed.empty());
  }
  // The fanout-worker processes this test started.
  static std::vector<pid_t> OurWorkers() {
    std::vector<pid_t> ours;
    for (pid_t pid : testing::ProcessesMatching("fanout-worker")) {
      if (testing::ParentOf(pid) == getpid()) ours.push_back(pid);
    }
    return ours;
  }

  JobConfig config;
  TaskDef sleep_task{"sleep", "sleep", "", nullptr, nullptr, nullptr, nullptr};
};

TEST_F(RealFleetTest, TwoJobsFromTwoThreadsBothCompleteExactlyOnce) {
  WarmProcesses fleet(config, /*workers=*/2);
  auto a_lines = Lines("a", 30), b_lines = Lines("b", 30);
  auto a = Sleeping(a_lines, 20);
  auto b = Sleeping(b_lines, 20);
  auto a_done = a->RunOn(fleet);
  auto b_done = b->RunOn(fleet);
  ExpectBothComplete(a_done, b_done, *a, a_lines, *b, b_lines);
  EXPECT_EQ(a->stats.rejected_messages + b->stats.rejected_messages, 0u);
}

TEST_F(RealFleetTest, AShortJobGetsASlotWhileALongJobHoldsThemAll) {
  WarmProcesses fleet(config, /*workers=*/2);
  // 12 chunks of 1 s on two one-slot workers: about 6 s, holding every slot throughout.
  auto long_job = Sleeping(Lines("long", 12), 1000);
  Dispatched long_out;
  long_job->stats.telemetry.SetListener(&long_out);
  std::stop_source cancel_long;
  auto long_done = long_job->RunOn(fleet, cancel_long.get_token());
  // Until something is measured a worker takes one attempt per slot beyond its slots: four
  // out means both workers are full.
  ASSERT_TRUE(long_out.WaitFor(4)) << "the long job never held both workers";
  auto short_lines = Lines("short", 2);
  auto short_job = Sleeping(short_lines, 0);
  auto began = std::chrono::steady_clock::now();
  auto short_done = short_job->RunOn(fleet);
  // Its chunks take the next slots to free (each waits behind at most one long chunk),
  // not the end of the long job's queue.
  ASSERT_EQ(short_done.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "the short job waited behind the long one";
  EXPECT_EQ(long_done.wait_for(milliseconds(0)), std::future_status::timeout)
      << "the long job ended before the short one";
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(5));
  ModeResult rs = short_done.get();
  EXPECT_EQ(rs.kind, ModeResult::Kind::kCompleted) << rs.message;
  ExpectAllOnce(*short_job, short_lines);
  // The long job ran its chunks all along (TwoJobsFromTwoThreads checks a whole run).
  cancel_long.request_stop();
  ASSERT_EQ(long_done.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(long_done.get().kind, ModeResult::Kind::kInterrupted);
  EXPECT_GE(long_job->collect.accepted, 1u);
  EXPECT_TRUE(long_job->collect.failed.empty());
}

TEST_F(RealFleetTest, CancellingOneOfTwoJobsEndsOnlyThatOne) {
  WarmProcesses fleet(config, /*workers=*/2);
  auto doomed = Sleeping(Lines("x", 20), 1000);
  auto kept_lines = Lines("k", 20);
  auto kept = Sleeping(kept_lines, 50);
  Dispatched doomed_out, kept_out;
  doomed->stats.telemetry.SetListener(&doomed_out);
  kept->stats.telemetry.SetListener(&kept_out);
  std::stop_source cancel;
  auto doomed_done = doomed->RunOn(fleet, cancel.get_token());
  auto kept_done = kept->RunOn(fleet);
  ASSERT_TRUE(doomed_out.WaitFor(1));
  ASSERT_TRUE(kept_out.WaitFor(1));
  cancel.request_stop();
  ASSERT_EQ(doomed_done.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(doomed_done.get().kind, ModeResult::Kind::kInterrupted);
  ASSERT_EQ(kept_done.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  ModeResult rk = kept_done.get();
  EXPECT_EQ(rk.kind, ModeResult::Kind::kCompleted) << rk.message;
  ExpectAllOnce(*kept, kept_lines);
  // The fleet serves the next job as before.
  auto after_lines = Lines("n", 4);
  auto after = Sleeping(after_lines, 0);
  auto after_done = after->RunOn(fleet);
  ASSERT_EQ(after_done.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(after_done.get().kind, ModeResult::Kind::kCompleted);
  ExpectAllOnce(*after, after_lines);
}

TEST_F(RealFleetTest, AWorkerKilledUnderTwoJobsLosesNeithersChunks) {
  WarmProcesses fleet(config, /*workers=*/2);
  auto a_lines = Lines("a", 12), b_lines = Lines("b", 12);
  auto a = Sleeping(a_lines, 200);
  auto b = Sleeping(b_lines, 200);
  Dispatched a_out, b_out;
  a->stats.telemetry.SetListener(&a_out);
  b->stats.telemetry.SetListener(&b_out);
  auto a_done = a->RunOn(fleet);
  auto b_done = b->RunOn(fleet);
  // Both jobs have attempts out on both workers (a free slot goes to the job with fewer).
  ASSERT_TRUE(a_out.WaitFor(2));
  ASSERT_TRUE(b_out.WaitFor(2));
  std::vector<pid_t> workers = OurWorkers();
  ASSERT_EQ(workers.size(), 2u);
  ASSERT_EQ(kill(workers[0], SIGKILL), 0);
  ExpectBothComplete(a_done, b_done, *a, a_lines, *b, b_lines);
  // Each job lost the worker (its Scheduler counts it) and the fleet replaced it.
  EXPECT_EQ(a->scheduler.counters().workers_lost, 1u);
  EXPECT_EQ(b->scheduler.counters().workers_lost, 1u);
  EXPECT_GE(a->stats.respawns + b->stats.respawns, 1u);
}

}  // namespace
}  // namespace fanout
