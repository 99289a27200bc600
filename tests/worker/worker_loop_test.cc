// fanout-worker against a coordinator played by the test (a real ROUTER): the worker
// side of common/PROTOCOL.md, with the real binary and real signals.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <thread>
#include <zmq.hpp>

#include "common/exit_code.h"
#include "common/transport.h"
#include "tests/support/fake_coordinator.h"
#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

class WorkerLoopTest : public ::testing::Test {
 public:
  std::optional<Envelope> NextMessage() { return Next(milliseconds(10000)); }

 protected:
  void SetUp() override {
    router_.emplace("ipc://" + dir_.File("c.sock"));
    ASSERT_TRUE(router_->status().ok()) << router_->status().message();
    endpoint_ = router_->endpoint();
  }
  void TearDown() override { worker_.reset(); }

  void StartWorker(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {WorkerBin(), "--connect", endpoint_, "--name", "w1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    worker_ = std::make_unique<Child>(argv, "", dir_.File("err"));
  }
  // The next message (heartbeats skipped unless asked for) within `timeout`.
  std::optional<Envelope> Next(milliseconds timeout = milliseconds(5000), bool heartbeats = false) {
    return router_->Next(timeout, heartbeats);
  }
  // Waits for HELLO and answers WELCOME; returns the worker's routing id.
  std::string Welcome(uint32_t heartbeat_ms = 500, uint32_t liveness = 4) {
    auto hello = router_->WelcomeNext(fanout::Welcome{"job", heartbeat_ms, liveness});
    return hello ? hello->peer : "";
  }
  void Task(const std::string& peer, uint64_t chunk, const std::string& task,
            std::vector<std::string> args, const std::string& data) {
    zmq::message_t payload(data.data(), data.size());
    ASSERT_TRUE(
        router_->Send(peer, TaskMsg{"job", chunk, 1, task, args, std::nullopt, 1}, &payload));
  }
  ResultMsg NextResult(std::optional<zmq::message_t>* payload = nullptr) {
    auto env = Next(milliseconds(10000));
    EXPECT_TRUE(env && std::holds_alternative<ResultMsg>(env->message));
    if (!env || !std::holds_alternative<ResultMsg>(env->message)) return {};
    if (payload) *payload = std::move(env->payload);
    return std::get<ResultMsg>(env->message);
  }

  TempDir dir_;
  std::string endpoint_;
  std::optional<FakeCoordinator> router_;
  std::unique_ptr<Child> worker_;
};

TEST_F(WorkerLoopTest, HelloDescribesTheWorker) {
  StartWorker({"--slots", "3"});
  auto hello = Next();
  ASSERT_TRUE(hello && std::holds_alternative<Hello>(hello->message));
  const Hello& h = std::get<Hello>(hello->message);
  EXPECT_EQ(h.worker_id, "w1");
  EXPECT_EQ(h.slots, 3u);
  EXPECT_EQ(h.pid, worker_->pid());
  EXPECT_EQ(h.protocol, kProtocolVersion);
  for (const char* t : {"identity", "sleep", "product", "exec"}) {
    EXPECT_NE(std::find(h.tasks.begin(), h.tasks.end(), t), h.tasks.end()) << t;
  }
}

TEST_F(WorkerLoopTest, RunsTasksAndReturnsPayloads) {
  StartWorker();
  std::string peer = Welcome();
  std::string big(1 << 20, 'q');
  Task(peer, 4, "identity", {}, big);
  std::optional<zmq::message_t> payload;
  ResultMsg r = NextResult(&payload);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.chunk, 4u);
  ASSERT_TRUE(payload);
  EXPECT_TRUE(payload->to_string() == big);
  ASSERT_TRUE(router_->Send(peer, TaskMsg{"job", 5, 1, "product", {}, IntRange{1, 21}, 20}));
  r = NextResult(&payload);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(payload->to_string(), "2432902008176640000\n");
}

// An attempt the runner thread takes after waiting for work is measured from its own
// start: the runner reads its clocks once an attempt while attempts queue back to back,
// and afresh after a wait.
TEST_F(WorkerLoopTest, AnAttemptAfterAnIdleSpellIsNotChargedTheWait) {
  StartWorker();
  std::string peer = Welcome();
  Task(peer, 1, "identity", {}, "first\n");
  ResultMsg first = NextResult();
  ASSERT_TRUE(first.ok) << first.error;
  // The spell itself: nothing to wait for, the worker is to be idle for it.
  std::this_thread::sleep_for(milliseconds(300));
  Task(peer, 2, "identity", {}, "second\n");
  ResultMsg second = NextResult();
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_LT(second.wall_seconds, 0.2);
  EXPECT_LT(second.cpu_seconds, 0.2);
  EXPECT_GE(second.cpu_seconds, 0.0);
}

// Collects results (RESULT or RESULTS) until `count` attempts are answered: chunk ->
// (ok, output or error).
std::map<uint64_t, std::pair<bool, std::string>> CollectResults(WorkerLoopTest& t, size_t count,
                                                                bool* batched);

TEST_F(WorkerLoopTest, TasksBatchIsAnsweredAttemptByAttempt) {
  StartWorker();
  auto hello = Next();
  ASSERT_TRUE(hello && std::holds_alternative<Hello>(hello->message));
  EXPECT_GT(std::get<Hello>(hello->message).batch, 1u) << "workers take TASKS";
  std::string peer = hello->peer;
  ASSERT_TRUE(router_->Send(peer, fanout::Welcome{"job", 500, 4}));
  std::string data = "a\nbb\nccc\n";
  zmq::message_t payload(data.data(), data.size());
  TaskBatch batch{"job", "identity", {}, {7, 8, 9}, {1, 1, 2}, {1, 1, 1}, {2, 3, 4}};
  ASSERT_TRUE(router_->Send(peer, batch, &payload));
  bool batched = false;
  auto got = CollectResults(*this, 3, &batched);
  EXPECT_EQ(got[7], std::make_pair(true, std::string("a\n")));
  EXPECT_EQ(got[8], std::make_pair(true, std::string("bb\n")));
  EXPECT_EQ(got[9], std::make_pair(true, std::string("ccc\n")));
  // A batch whose sizes do not match its payload: every attempt is answered as failed.
  zmq::message_t short_payload(data.data(), 5);
  TaskBatch bad{"job", "identity", {}, {10, 11}, {1, 1}, {1, 1}, {2, 4}};
  ASSERT_TRUE(router_->Send(peer, bad, &short_payload));
  got = CollectResults(*this, 2, &batched);
  for (uint64_t c : {10u, 11u}) {
    EXPECT_FALSE(got[c].first);
    EXPECT_NE(got[c].second.find("malformed TASKS"), std::string::npos) << got[c].second;
  }
  EXPECT_TRUE(batched) << "after a TASKS, answers may come as RESULTS";
}

TEST_F(WorkerLoopTest, RangeChunksComeInOneTasksWithoutAPayload) {
  StartWorker();
  auto hello = Next();
  ASSERT_TRUE(hello && std::holds_alternative<Hello>(hello->message));
  EXPECT_TRUE(std::get<Hello>(hello->message).ranges) << "it takes range chunks in TASKS";
  std::string peer = hello->peer;
  ASSERT_TRUE(router_->Send(peer, fanout::Welcome{"job", 500, 4}));
  TaskBatch batch{"job", "product", {}, {1, 2, 3}, {1, 1, 1}, {3, 2, 0}, {0, 0, 0}};
  batch.lo = {1, 4, 6};
  batch.hi = {4, 6, 6};
  ASSERT_TRUE(router_->Send(peer, batch));
  bool batched = false;
  auto got = CollectResults(*this, 3, &batched);
  EXPECT_EQ(got[1], std::make_pair(true, std::string("6\n")));   // 1*2*3
  EXPECT_EQ(got[2], std::make_pair(true, std::string("20\n")));  // 4*5
  EXPECT_EQ(got[3], std::make_pair(true, std::string("1\n")));   // empty range
}

TEST_F(WorkerLoopTest, TaskErrorsComeBackAsFailedResults) {
  StartWorker();
  std::string peer = Welcome();
  Task(peer, 1, "frobnicate", {}, "x");
  ResultMsg unknown = NextResult();
  EXPECT_FALSE(unknown.ok);
  EXPECT_NE(unknown.error.find("unknown task 'frobnicate'"), std::string::npos);
  Task(peer, 2, "exec", {"sh", "-c", "echo nope >&2; exit 4"}, "x\n");
  ResultMsg failed = NextResult();
  EXPECT_FALSE(failed.ok);
  EXPECT_NE(failed.error.find("exited with status 4: nope"), std::string::npos) << failed.error;
}

TEST_F(WorkerLoopTest, SlotsRunAttemptsConcurrently) {
  StartWorker({"--slots", "2"});
  std::string peer = Welcome();
  Task(peer, 1, "sleep", {"400"}, "a\n");
  Task(peer, 2, "sleep", {"400"}, "b\n");
  NextResult();
  auto first = Clock::now();
  NextResult();
  // Run one after the other, the second result would come 400 ms after the first.
  EXPECT_LT(Clock::now() - first, milliseconds(250));
}

TEST_F(WorkerLoopTest, AttemptsBeyondTheSlotsWaitForAFreeSlot) {
  StartWorker({"--slots", "1"});
  std::string peer = Welcome();
  Task(peer, 1, "sleep", {"300"}, "a\n");  // async attempts still hold a slot each
  Task(peer, 2, "sleep", {"0"}, "b\n");
  EXPECT_EQ(NextResult().chunk, 1u);
  EXPECT_EQ(NextResult().chunk, 2u);
}

TEST_F(WorkerLoopTest, CancelKillsAnAsyncCommandWhileHeartbeatsFlow) {
  StartWorker({"--slots", "100"});
  std::string peer = Welcome(/*heartbeat_ms=*/50);
  // The sleep's argument is computed, so only the child itself matches the needle.
  Task(peer, 1, "exec", {"sh", "-c", "exec sleep $((40+0)).23"}, "");
  auto deadline = Clock::now() + milliseconds(10000);
  while (ProcessesMatching("sleep 40.23").empty() && Clock::now() < deadline) {
    ASSERT_TRUE(Next(milliseconds(1000), /*heartbeats=*/true));  // the loop is not blocked
  }
  ASSERT_FALSE(ProcessesMatching("sleep 40.23").empty());
  ASSERT_TRUE(router_->Send(peer, Cancel{1, 1}));
  deadline = Clock::now() + milliseconds(2000);
  while (!ProcessesMatching("sleep 40.23").empty() && Clock::now() < deadline) {
    auto hb = Next(milliseconds(1000), /*heartbeats=*/true);
    ASSERT_TRUE(hb && std::holds_alternative<Heartbeat>(hb->message));  // no RESULT for it
  }
  EXPECT_TRUE(ProcessesMatching("sleep 40.23").empty());
  Task(peer, 2, "identity", {}, "next\n");
  EXPECT_EQ(NextResult().chunk, 2u);
}

TEST_F(WorkerLoopTest, ShutdownKillsAsyncCommandsInFlight) {
  StartWorker({"--once", "--slots", "8"});
  std::string peer = Welcome(/*heartbeat_ms=*/50);
  for (uint64_t chunk = 1; chunk <= 3; ++chunk) {
    Task(peer, chunk, "exec", {"sh", "-c", "exec sleep $((41+0)).37"}, "");
  }
  auto deadline = Clock::now() + milliseconds(10000);
  while (ProcessesMatching("sleep 41.37").size() < 3 && Clock::now() < deadline) {
    ASSERT_TRUE(Next(milliseconds(1000), /*heartbeats=*/true));
  }
  ASSERT_EQ(ProcessesMatching("sleep 41.37").size(), 3u);
  ASSERT_TRUE(router_->Send(peer, Shutdown{"done"}));
  EXPECT_EQ(worker_->Wait(milliseconds(5000)), 0);
  EXPECT_TRUE(ProcessesMatching("sleep 41.37").empty());
}

TEST_F(WorkerLoopTest, CommandsBeyondTheOpenFileLimitWaitForFdsInsteadOfFailing) {
  // A hard limit of 64 fds leaves room for about a dozen commands (four fds each).
  worker_ = std::make_unique<Child>(
      std::vector<std::string>{"/bin/sh", "-c", "ulimit -n 64 && exec \"$0\" \"$@\"", WorkerBin(),
                               "--connect", endpoint_, "--name", "w1", "--slots", "40"},
      "", dir_.File("err"));
  std::string peer = Welcome();
  for (uint64_t chunk = 0; chunk < 40; ++chunk) {
    Task(peer, chunk, "exec", {"sh", "-c", "sleep 0.2; cat"}, std::to_string(chunk) + "\n");
  }
  for (int i = 0; i < 40; ++i) {
    std::optional<zmq::message_t> payload;
    ResultMsg r = NextResult(&payload);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(payload->to_string(), std::to_string(r.chunk) + "\n");
  }
}

TEST_F(WorkerLoopTest, CancelledAttemptSendsNoResultAndTheNextIsServed) {
  StartWorker();
  std::string peer = Welcome();
  Task(peer, 1, "sleep", {"60000"}, "x\n");
  // Wait until the attempt is surely running: a heartbeat proves the worker looped after
  // receiving the task.
  ASSERT_TRUE(Next(milliseconds(3000), /*heartbeats=*/true));
  ASSERT_TRUE(router_->Send(peer, Cancel{1, 1}));
  Task(peer, 2, "identity", {}, "next\n");
  std::optional<zmq::message_t> payload;
  ResultMsg r = NextResult(&payload);
  EXPECT_EQ(r.chunk, 2u);
  EXPECT_EQ(payload->to_string(), "next\n");
}

TEST_F(WorkerLoopTest, HeartbeatsFlowAndShutdownEndsAOnceWorker) {
  StartWorker({"--once"});
  std::string peer = Welcome(/*heartbeat_ms=*/50);
  auto hb = Next(milliseconds(2000), /*heartbeats=*/true);
  ASSERT_TRUE(hb && std::holds_alternative<Heartbeat>(hb->message));
  ASSERT_TRUE(router_->Send(peer, Shutdown{"done"}));
  EXPECT_EQ(worker_->Wait(milliseconds(5000)), 0);
}

TEST_F(WorkerLoopTest, AfterShutdownAWorkerServesTheNextJob) {
  StartWorker();
  std::string first = Welcome();
  ASSERT_TRUE(router_->Send(first, Shutdown{"done"}));
  auto again = Next(milliseconds(5000));  // HELLO for the next job
  ASSERT_TRUE(again && std::holds_alternative<Hello>(again->message));
  ASSERT_TRUE(router_->Send(again->peer, fanout::Welcome{"job2", 500, 4}));
  Task(again->peer, 0, "identity", {}, "second job\n");
  std::optional<zmq::message_t> payload;
  EXPECT_TRUE(NextResult(&payload).ok);
  EXPECT_EQ(payload->to_string(), "second job\n");
}

TEST_F(WorkerLoopTest, RejectOfAnotherVersionEndsTheWorkerWithStatusOne) {
  StartWorker();
  auto hello = Next();
  ASSERT_TRUE(hello);
  ASSERT_TRUE(router_->Send(hello->peer, Reject{"too new", kProtocolVersion + 1}));
  EXPECT_EQ(worker_->Wait(milliseconds(5000)), ToInt(ExitCode::kProtocolRefused));
  EXPECT_NE(ReadFile(dir_.File("err")).find("too new"), std::string::npos);
}

TEST_F(WorkerLoopTest, SilentCoordinatorMakesTheWorkerReconnectAsANewPeer) {
  StartWorker();
  std::string first = Welcome(/*heartbeat_ms=*/50, /*liveness=*/3);
  // Say nothing more: after 150 ms of silence and a 1 s back-off, a new HELLO arrives.
  auto again = Next(milliseconds(5000));
  ASSERT_TRUE(again && std::holds_alternative<Hello>(again->message));
  EXPECT_NE(again->peer, first);
}

TEST_F(WorkerLoopTest, SigtermExitsPromptlyWith143) {
  StartWorker();
  Welcome();
  worker_->Signal(SIGTERM);
  EXPECT_EQ(worker_->Wait(milliseconds(3000)), 143);
}

// The worker's exit codes are the ExitCode values README.md documents: 128 + the signal
// (SIGINT is the coordinator's kInterrupted), 0 after SHUTDOWN with --once.
TEST_F(WorkerLoopTest, ExitCodesAreTheDocumentedExitCodeValues) {
  EXPECT_EQ(ToInt(ExitCode::kInterrupted), SignalExit(SIGINT));
  for (int sig : {SIGINT, SIGHUP, SIGTERM}) {
    StartWorker();
    Welcome();
    worker_->Signal(sig);
    EXPECT_EQ(worker_->Wait(milliseconds(5000)), SignalExit(sig)) << strsignal(sig);
  }
  StartWorker({"--once"});
  ASSERT_TRUE(router_->Send(Welcome(), Shutdown{"done"}));
  EXPECT_EQ(worker_->Wait(milliseconds(5000)), ToInt(ExitCode::kOk));
}

TEST_F(WorkerLoopTest, UsageErrorsExitTwoWithOneLine) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{WorkerBin()},
        std::vector<std::string>{WorkerBin(), "--connect", endpoint_, "--slots", "0"},
        std::vector<std::string>{WorkerBin(), "--connect", endpoint_, "--heartbeat", "x"}}) {
    RunResult r = fanout::testing::Run(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  }
}

std::map<uint64_t, std::pair<bool, std::string>> CollectResults(WorkerLoopTest& t, size_t count,
                                                                bool* batched) {
  std::map<uint64_t, std::pair<bool, std::string>> got;
  while (got.size() < count) {
    auto env = t.NextMessage();
    if (!env) {
      ADD_FAILURE() << "no result within the time limit";
      break;
    }
    std::string payload = env->payload ? env->payload->to_string() : "";
    if (auto* r = std::get_if<ResultMsg>(&env->message)) {
      got[r->chunk] = {r->ok, r->ok ? payload : r->error};
    } else if (auto* rs = std::get_if<ResultBatch>(&env->message)) {
      *batched = true;
      size_t offset = 0;
      for (size_t i = 0; i < rs->results.size(); ++i) {
        const ResultMsg& r = rs->results[i];
        got[r.chunk] = {r.ok, r.ok ? payload.substr(offset, rs->bytes[i]) : r.error};
        offset += rs->bytes[i];
      }
    }
  }
  return got;
}

}  // namespace
}  // namespace fanout::testing

namespace fanout::testing {
namespace {

// PROTOCOL.md, Starts: a worker offers STARTED in HELLO, sends it only when WELCOME asks,
// and lists exactly the attempts that entered a slot (here: 2 slots, 3 sleeps).
TEST_F(WorkerLoopTest, StartedListsTheAttemptsInSlotsOnlyWhenAsked) {
  StartWorker({"--slots", "2"});
  auto hello = Next();
  ASSERT_TRUE(hello && std::holds_alternative<Hello>(hello->message));
  EXPECT_TRUE(std::get<Hello>(hello->message).starts);
  fanout::Welcome welcome{"job", 500, 4};
  welcome.starts = true;
  ASSERT_TRUE(router_->Send(hello->peer, welcome));
  for (uint64_t c = 0; c < 3; ++c) Task(hello->peer, c, "sleep", {"300"}, "x\n");
  std::vector<uint64_t> started;
  auto deadline = Clock::now() + milliseconds(10000);
  while (started.size() < 2 && Clock::now() < deadline) {
    auto env = Next(milliseconds(1000));
    if (!env) continue;
    ASSERT_TRUE(std::holds_alternative<Started>(env->message)) << KindName(KindOf(env->message));
    for (uint64_t c : std::get<Started>(env->message).chunks) started.push_back(c);
  }
  EXPECT_EQ(started, (std::vector<uint64_t>{0, 1})) << "chunk 2 waits for a slot";
  // Chunk 0's RESULT frees a slot: chunk 2 starts, and says so.
  std::vector<uint64_t> seen;
  while (seen.size() < 4 && Clock::now() < deadline) {
    auto env = Next(milliseconds(1000));
    if (!env) continue;
    if (auto* s = std::get_if<Started>(&env->message)) {
      for (uint64_t c : s->chunks) seen.push_back(100 + c);
    } else if (auto* r = std::get_if<ResultMsg>(&env->message)) {
      seen.push_back(r->chunk);
    }
  }
  EXPECT_NE(std::find(seen.begin(), seen.end(), 102u), seen.end()) << "STARTED for chunk 2";
}

TEST_F(WorkerLoopTest, NoStartedWithoutWelcomeAskingForIt) {
  StartWorker();
  std::string peer = Welcome();
  Task(peer, 0, "sleep", {"50"}, "x\n");
  auto env = Next(milliseconds(10000));
  ASSERT_TRUE(env);
  EXPECT_TRUE(std::holds_alternative<ResultMsg>(env->message)) << KindName(KindOf(env->message));
}

// WELCOME's "max" lowers the worker's output limit to the coordinator's: an exec command
// is stopped there and the attempt fails naming the limit.
TEST_F(WorkerLoopTest, WelcomesMaxMessageLimitsOutputs) {
  StartWorker();
  auto hello = Next();
  ASSERT_TRUE(hello);
  fanout::Welcome welcome{"job", 500, 4};
  welcome.max_message = 64 << 10;
  ASSERT_TRUE(router_->Send(hello->peer, welcome));
  Task(hello->peer, 0, "exec", {"sh", "-c", "head -c 1000000 /dev/zero"}, "x\n");
  ResultMsg r = NextResult();
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("output exceeds --max-message 64 KiB"), std::string::npos) << r.error;
  Task(hello->peer, 1, "exec", {"head", "-c", "65536", "/dev/zero"}, "x\n");
  r = NextResult();
  EXPECT_TRUE(r.ok) << r.error;
}

}  // namespace
}  // namespace fanout::testing
