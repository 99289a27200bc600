// WarmProcesses (engine/warm_processes.h) against a worker played by the test over a real
// DEALER socket: the jobs of a warm loop share workers, and what a worker says about an
// earlier job's attempt is never taken for a later job's.
#include "engine/warm_processes.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/protocol.h"
#include "common/transport.h"

namespace fanout {
namespace {

using std::chrono::milliseconds;

class Collect : public ChunkObserver {
 public:
  Status OnAccepted(uint64_t chunk, Blob output) override {
    outputs[chunk] = std::string(output.view());
    return Status::Ok();
  }
  Status OnFailed(uint64_t chunk) override {
    failed.push_back(chunk);
    return Status::Ok();
  }
  std::map<uint64_t, std::string> outputs;
  std::vector<uint64_t> failed;
};

// One job of line chunks, run on `fleet` on a thread of its own.
struct Job {
  Job(const JobConfig& config, const TaskDef& task, const std::vector<std::string>& chunks)
      : job{config, task, JobInput::FromBuffer(Join(chunks)), Plan(chunks), {}},
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
  std::future<ModeResult> RunOn(WarmProcesses& fleet) {
    return std::async(std::launch::async, [&] { return fleet.Run(job, scheduler, sink, stats); });
  }
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

}  // namespace
}  // namespace fanout
