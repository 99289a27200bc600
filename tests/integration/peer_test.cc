// The coordinator against a worker played by the test over a real DEALER socket: late
// duplicates are dropped, results for chunks never sent and malformed or wrong-version
// messages are refused, and the job still completes with the right output.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <zmq.hpp>

#include "common/transport.h"
#include "tests/support/test_support.h"

namespace fanout::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

class PeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    endpoint_ = "ipc://" + dir_.File("c.sock");
    WriteFile(dir_.File("in"), "hello\n");
  }
  // Starts `fanout run --listen` with no local workers on a one-chunk identity job.
  std::unique_ptr<Child> StartCoordinator(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {
        FanoutBin(), "run", "--listen",      endpoint_, "--chunks",
        "1",         "-i",  dir_.File("in"), "-o",      dir_.File("out")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("identity");
    return std::make_unique<Child>(argv, "", dir_.File("err"));
  }
  std::optional<Envelope> Next(zmq::socket_t& s) {
    return ReceiveWithin(s, /*router=*/false, milliseconds(10000));
  }
  void Hello(zmq::socket_t& s, uint32_t protocol = kProtocolVersion) {
    fanout::Hello h{"test-peer", "localhost", "test", 1, 1, {"identity"}};
    h.protocol = protocol;
    ASSERT_TRUE(SendMessage(s, h));
  }
  // Writes 3000 one-line records to "in" and returns them.
  std::string ShortChunkInput() {
    std::string input;
    for (int i = 0; i < 3000; ++i) input += std::to_string(i) + "\n";
    WriteFile(dir_.File("in"), input);
    return input;
  }
  // An identity job of one-record (microsecond) chunks waiting for workers on endpoint_.
  std::vector<std::string> ShortChunkJob() {
    return {FanoutBin(), "run",           "--listen", endpoint_,        "--chunk-size", "1",
            "-i",        dir_.File("in"), "-o",       dir_.File("out"), "identity"};
  }
  // Says HELLO as a worker that takes TASKS of up to 64 attempts.
  void HelloTakingBatches(zmq::socket_t& s, const std::string& name) {
    fanout::Hello h{name, "localhost", "test", 1, 1, {"identity"}};
    h.batch = 64;
    ASSERT_TRUE(SendMessage(s, h));
  }
  void SendResult(zmq::socket_t& s, uint64_t chunk, uint32_t attempt, const std::string& data) {
    zmq::message_t payload(data.data(), data.size());
    ASSERT_TRUE(SendMessage(s, ResultMsg{chunk, attempt, true, "", 0.01, 0.01}, &payload));
  }

  TempDir dir_;
  std::string endpoint_;
  zmq::context_t context_{1};
};

TEST_F(PeerTest, LateDuplicateIsDroppedAndUnknownResultRejected) {
  auto coordinator = StartCoordinator({"--timeout", "300ms", "--retries", "3"});
  zmq::socket_t s = MakeDealer(context_, endpoint_, "").value();
  Hello(s);
  auto welcome = Next(s);
  ASSERT_TRUE(welcome && std::holds_alternative<Welcome>(welcome->message));
  auto first = Next(s);
  ASSERT_TRUE(first && std::holds_alternative<TaskMsg>(first->message));
  EXPECT_EQ(std::get<TaskMsg>(first->message).attempt, 1u);
  ASSERT_TRUE(first->payload);
  EXPECT_EQ(first->payload->to_string(), "hello\n");
  // Sit on attempt 1 until it times out: a CANCEL, then attempt 2 comes (to us again).
  auto cancel = Next(s);
  ASSERT_TRUE(cancel && std::holds_alternative<Cancel>(cancel->message));
  auto second = Next(s);
  ASSERT_TRUE(second && std::holds_alternative<TaskMsg>(second->message));
  EXPECT_EQ(std::get<TaskMsg>(second->message).attempt, 2u);

  SendResult(s, 0, 1, "LATE AND WRONG\n");  // superseded attempt: must be dropped
  SendResult(s, 99, 1, "NEVER SENT\n");     // no such chunk: must be rejected
  zmq::message_t garbage("\xc1\xc1", 2);
  s.send(garbage, zmq::send_flags::none);  // not msgpack at all
  SendResult(s, 0, 2, "hello\n");
  auto shutdown = Next(s);
  ASSERT_TRUE(shutdown && std::holds_alternative<Shutdown>(shutdown->message));
  ASSERT_EQ(coordinator->Wait(milliseconds(10000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), "hello\n");
  std::string err = ReadFile(dir_.File("err"));
  EXPECT_NE(err.find("late_dropped=1"), std::string::npos) << err;
  EXPECT_NE(err.find("timeouts=1"), std::string::npos) << err;
  EXPECT_NE(err.find("unknown chunk 99"), std::string::npos) << err;
  EXPECT_NE(err.find("malformed"), std::string::npos) << err;
}

TEST_F(PeerTest, WrongVersionIsRefusedAndTheJobGoesOn) {
  auto coordinator = StartCoordinator();
  zmq::socket_t old = MakeDealer(context_, endpoint_, "").value();
  Hello(old, 99);
  auto reject = Next(old);
  ASSERT_TRUE(reject && std::holds_alternative<Reject>(reject->message));
  EXPECT_NE(std::get<Reject>(reject->message).reason.find("version 99"), std::string::npos);
  EXPECT_EQ(std::get<Reject>(reject->message).protocol, kProtocolVersion);

  zmq::socket_t good = MakeDealer(context_, endpoint_, "").value();
  Hello(good);
  ASSERT_TRUE(Next(good));  // WELCOME
  auto task = Next(good);
  ASSERT_TRUE(task && std::holds_alternative<TaskMsg>(task->message));
  SendResult(good, 0, 1, task->payload->to_string());
  ASSERT_EQ(coordinator->Wait(milliseconds(10000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), "hello\n");
}

TEST_F(PeerTest, AnEchoIsTheInputOnlyFromAWorkerThatOfferedIt) {
  // A worker that did not offer "echo" and answers one anyway is lost (its attempt goes
  // back); one that offered it is told so in WELCOME, and its echo (no payload) becomes the
  // chunk's output: the input bytes, which never travel back.
  auto coordinator = StartCoordinator();
  zmq::socket_t rogue = MakeDealer(context_, endpoint_, "").value();
  Hello(rogue);
  auto welcome = Next(rogue);
  ASSERT_TRUE(welcome && std::holds_alternative<Welcome>(welcome->message));
  EXPECT_FALSE(std::get<Welcome>(welcome->message).echo);
  auto task = Next(rogue);
  ASSERT_TRUE(task && std::holds_alternative<TaskMsg>(task->message));
  ResultMsg echo{0, 1, true, "", 0.01, 0.01};
  echo.echo = true;
  ASSERT_TRUE(SendMessage(rogue, echo));

  zmq::socket_t good = MakeDealer(context_, endpoint_, "").value();
  fanout::Hello h{"echoing-peer", "localhost", "test", 1, 1, {"identity"}};
  h.echo = true;
  ASSERT_TRUE(SendMessage(good, h));
  welcome = Next(good);
  ASSERT_TRUE(welcome && std::holds_alternative<Welcome>(welcome->message));
  EXPECT_TRUE(std::get<Welcome>(welcome->message).echo);
  task = Next(good);
  ASSERT_TRUE(task && std::holds_alternative<TaskMsg>(task->message));
  const TaskMsg& t = std::get<TaskMsg>(task->message);
  EXPECT_EQ(t.attempt, 2u);  // attempt 1 went with the rogue
  echo.attempt = t.attempt;
  ASSERT_TRUE(SendMessage(good, echo));
  ASSERT_EQ(coordinator->Wait(milliseconds(10000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), "hello\n");
  std::string err = ReadFile(dir_.File("err"));
  EXPECT_NE(err.find("sent an echo it did not offer"), std::string::npos) << err;
}

TEST_F(PeerTest, AnEchoOfAChunkNeverIssuedIsRejectedNotRead) {
  // An echo names a chunk whose input the coordinator reads for its output: one that was
  // never issued (a broken or hostile worker that offered echoes, alone and in a RESULTS
  // batch) is rejected as an unknown chunk, and the job goes on.
  auto coordinator = StartCoordinator();
  zmq::socket_t s = MakeDealer(context_, endpoint_, "").value();
  fanout::Hello h{"echoing-peer", "localhost", "test", 1, 1, {"identity"}};
  h.echo = true;
  ASSERT_TRUE(SendMessage(s, h));
  auto welcome = Next(s);
  ASSERT_TRUE(welcome && std::holds_alternative<Welcome>(welcome->message));
  auto task = Next(s);
  ASSERT_TRUE(task && std::holds_alternative<TaskMsg>(task->message));
  const TaskMsg& t = std::get<TaskMsg>(task->message);
  for (uint64_t never : {uint64_t{99}, uint64_t{1} << 40}) {
    ResultMsg echo{t.chunk + never, 1, true, "", 0.01, 0.01};
    echo.echo = true;
    ASSERT_TRUE(SendMessage(s, echo));
  }
  ResultBatch batch;
  ResultMsg stray{t.chunk + 7, 1, true, "", 0.01, 0.01};
  batch.results.push_back(stray);
  batch.bytes.push_back(0);
  batch.echo.push_back(0);
  ASSERT_TRUE(SendMessage(s, batch));
  ResultMsg echo{t.chunk, t.attempt, true, "", 0.01, 0.01};
  echo.echo = true;
  ASSERT_TRUE(SendMessage(s, echo));
  ASSERT_EQ(coordinator->Wait(milliseconds(10000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), "hello\n");
  EXPECT_NE(ReadFile(dir_.File("err")).find("unknown chunk"), std::string::npos)
      << ReadFile(dir_.File("err"));
}

TEST_F(PeerTest, MessagesFromUnknownPeersAreAnsweredWithReject) {
  auto coordinator = StartCoordinator();
  zmq::socket_t stranger = MakeDealer(context_, endpoint_, "").value();
  SendResult(stranger, 0, 1, "forged\n");  // no HELLO first
  auto reject = Next(stranger);
  ASSERT_TRUE(reject && std::holds_alternative<Reject>(reject->message));
  zmq::socket_t good = MakeDealer(context_, endpoint_, "").value();
  Hello(good);
  ASSERT_TRUE(Next(good));  // WELCOME
  auto task = Next(good);
  ASSERT_TRUE(task && std::holds_alternative<TaskMsg>(task->message));
  SendResult(good, 0, 1, "hello\n");
  ASSERT_EQ(coordinator->Wait(milliseconds(10000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), "hello\n");
}

// Answers one message as a well-behaved worker would (identity); true once SHUTDOWN came.
// Counts the TASKS messages it was sent.
bool AnswerLikeAWorker(zmq::socket_t& s, Envelope& env, int& batches) {
  std::string payload = env.payload ? env.payload->to_string() : "";
  if (auto* task = std::get_if<TaskMsg>(&env.message)) {
    zmq::message_t out(payload.data(), payload.size());
    EXPECT_TRUE(SendMessage(s, ResultMsg{task->chunk, task->attempt, true, "", 0.0, 0.0}, &out));
  } else if (auto* batch = std::get_if<TaskBatch>(&env.message)) {
    ++batches;
    ResultBatch results;
    for (size_t i = 0; i < batch->chunks.size(); ++i) {
      results.results.push_back({batch->chunks[i], batch->attempts[i], true, "", 0.0, 0.0});
    }
    results.bytes = batch->bytes;
    zmq::message_t out(payload.data(), payload.size());
    EXPECT_TRUE(SendMessage(s, results, &out));
  }
  return std::holds_alternative<Shutdown>(env.message);
}

TEST_F(PeerTest, ShortChunksTravelInBatchesBothWays) {
  std::string input = ShortChunkInput();
  Child coordinator(ShortChunkJob(), "", dir_.File("err"));
  zmq::socket_t s = MakeDealer(context_, endpoint_, "").value();
  HelloTakingBatches(s, "batcher");
  int batches = 0;
  for (;;) {
    auto env = Next(s);
    ASSERT_TRUE(env) << ReadFile(dir_.File("err"));
    if (AnswerLikeAWorker(s, *env, batches)) break;
  }
  ASSERT_EQ(coordinator.Wait(milliseconds(10000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), input);
  EXPECT_GT(batches, 0) << "3000 microsecond chunks and not one TASKS";
}

TEST_F(PeerTest, ResultsWithSizesNotMatchingThePayloadDropTheWorkerNotTheJob) {
  std::string input = ShortChunkInput();
  Child coordinator(ShortChunkJob(), "", dir_.File("err"));
  // The broken worker answers like a good one until its first TASKS, which it answers
  // with sizes that add up to more than its payload.
  zmq::socket_t bad = MakeDealer(context_, endpoint_, "").value();
  HelloTakingBatches(bad, "broken");
  int batches = 0;
  for (;;) {
    auto env = Next(bad);
    ASSERT_TRUE(env) << ReadFile(dir_.File("err"));
    if (auto* batch = std::get_if<TaskBatch>(&env->message)) {
      ResultBatch results;
      for (size_t i = 0; i < batch->chunks.size(); ++i) {
        results.results.push_back({batch->chunks[i], batch->attempts[i], true, "", 0.0, 0.0});
        results.bytes.push_back(batch->bytes[i] + 1);
      }
      zmq::message_t out(env->payload->data(), env->payload->size());
      ASSERT_TRUE(SendMessage(bad, results, &out));
      break;
    }
    ASSERT_FALSE(AnswerLikeAWorker(bad, *env, batches)) << "the job ended before any TASKS";
  }
  // It is dropped: its next message is answered with REJECT.
  for (;;) {
    ASSERT_TRUE(SendMessage(bad, Heartbeat{}));
    auto env = Next(bad);
    ASSERT_TRUE(env);
    if (std::holds_alternative<Reject>(env->message)) break;
  }
  // A good worker finishes the job; every chunk is there exactly once.
  zmq::socket_t good = MakeDealer(context_, endpoint_, "").value();
  Hello(good);
  for (;;) {
    auto env = Next(good);
    ASSERT_TRUE(env) << ReadFile(dir_.File("err"));
    if (AnswerLikeAWorker(good, *env, batches)) break;
  }
  ASSERT_EQ(coordinator.Wait(milliseconds(10000)), 0) << ReadFile(dir_.File("err"));
  EXPECT_EQ(ReadFile(dir_.File("out")), input);
  EXPECT_NE(ReadFile(dir_.File("err")).find("sent a RESULTS whose sizes"), std::string::npos)
      << ReadFile(dir_.File("err"));
}

}  // namespace
}  // namespace fanout::testing
