// Transport over real ZeroMQ sockets: DEALER <-> ROUTER over ipc:// in a per-test temp dir
// (or tcp://127.0.0.1 on a kernel-chosen port), frames in and out, and every malformed
// multipart shape refused whole without disturbing the next message. Waits are polls
// with a deadline, never sleeps.
#include "common/transport.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <variant>

#include "common/codec.h"
#include "tests/support/test_support.h"

namespace fanout {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kWait{5000};  // generous: only reached when a test fails

// Polls `socket` until a whole message (or a refusal) arrives, or the deadline passes
// (then monostate).
Received ReceiveWithin(zmq::socket_t& socket, bool router, milliseconds timeout = kWait) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    Received r = ReceiveMessage(socket, router);
    if (!std::holds_alternative<std::monostate>(r)) return r;
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::monostate{};
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    PollOnce(&item, 1, left);
  }
}

// Receives raw frames (for checking what the other side put on the wire).
std::vector<std::string> RawFramesWithin(zmq::socket_t& socket, milliseconds timeout = kWait) {
  std::vector<std::string> frames;
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  if (PollOnce(&item, 1, timeout) == 0) return frames;
  zmq::message_t frame;
  do {
    if (!socket.recv(frame, zmq::recv_flags::none)) break;
    frames.push_back(frame.to_string());
  } while (frame.more());
  return frames;
}

void SendRaw(zmq::socket_t& socket, const std::vector<std::string>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    ASSERT_TRUE(socket.send(zmq::buffer(frames[i]), flags));
  }
}

class TransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    endpoint_ = "ipc://" + dir_.File("coordinator.sock");
    auto router = MakeRouter(context_, endpoint_);
    ASSERT_TRUE(router.ok()) << router.status().message();
    router_.emplace(std::move(router).value());
  }

  // A DEALER connected to the router whose routing id (as the router sees it) is known,
  // found by a HELLO it sends.
  std::string Connect(zmq::socket_t& dealer, const std::string& name = "w") {
    EXPECT_TRUE(SendMessage(dealer, Hello{name, "host", "0.1", 1, 1, {}}));
    Received r = ReceiveWithin(*router_, true);
    auto* env = std::get_if<Envelope>(&r);
    EXPECT_TRUE(env) << "no HELLO arrived";
    return env ? env->peer : "";
  }

  testing::TempDir dir_;
  zmq::context_t context_;
  std::string endpoint_;
  std::optional<zmq::socket_t> router_;
};

TEST_F(TransportTest, HelloFromADealerArrivesWithItsPeerId) {
  auto dealer = MakeDealer(context_, endpoint_, "").value();
  ASSERT_TRUE(SendMessage(dealer, Hello{"worker-7", "box", "0.1.0", 99, 4, {"identity"}}));
  Received r = ReceiveWithin(*router_, true);
  auto* env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env);
  EXPECT_FALSE(env->peer.empty());
  EXPECT_FALSE(env->payload);
  const auto& hello = std::get<Hello>(env->message);
  EXPECT_EQ(hello.worker_id, "worker-7");
  EXPECT_EQ(hello.host, "box");
  EXPECT_EQ(hello.pid, 99);
  EXPECT_EQ(hello.slots, 4u);
  EXPECT_EQ(hello.tasks, std::vector<std::string>{"identity"});
}

// Workers are often started beside their coordinator, before it listens: their DEALER
// tries again after 10 ms, doubling to 1 s (libzmq's default, 100 ms plus up to 100 ms of
// jitter each time, kept them out of the job's first fifth of a second).
TEST_F(TransportTest, ADealerStartedBeforeItsRouterTriesAgainSoonThenLessOften) {
  std::string later = "ipc://" + dir_.File("later.sock");
  auto dealer = MakeDealer(context_, later, "").value();
  EXPECT_EQ(dealer.get(zmq::sockopt::reconnect_ivl), kReconnectFirstMs);
  EXPECT_EQ(dealer.get(zmq::sockopt::reconnect_ivl_max), kReconnectMaxMs);
  ASSERT_TRUE(SendMessage(dealer, Hello{"early", "box", "0.1.0", 1, 1, {"identity"}}));
  auto router = MakeRouter(context_, later);
  ASSERT_TRUE(router.ok()) << router.status().message();
  Received r = ReceiveWithin(*router, true);
  auto* env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env) << "the HELLO queued before the bind never arrived";
  EXPECT_EQ(std::get<Hello>(env->message).worker_id, "early");
}

TEST_F(TransportTest, RouterAssignsDistinctPeerIdsOrUsesAGivenOne) {
  auto a = MakeDealer(context_, endpoint_, "").value();
  auto b = MakeDealer(context_, endpoint_, "").value();
  auto named = MakeDealer(context_, endpoint_, "fixed-id").value();
  std::string pa = Connect(a), pb = Connect(b), pn = Connect(named);
  EXPECT_FALSE(pa.empty());
  EXPECT_NE(pa, pb);
  EXPECT_EQ(pn, "fixed-id");
}

TEST_F(TransportTest, PayloadFrameArrivesIntact) {
  auto dealer = MakeDealer(context_, endpoint_, "").value();
  std::string bytes(1 << 20, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + (i >> 11));
  zmq::message_t payload(bytes.data(), bytes.size());
  ASSERT_TRUE(SendMessage(dealer, ResultMsg{3, 1, true, "", 0.5, 0.5}, &payload));
  EXPECT_EQ(payload.size(), 0u) << "the payload is moved into the frame, not copied";
  Received r = ReceiveWithin(*router_, true);
  auto* env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env);
  EXPECT_EQ(std::get<ResultMsg>(env->message).chunk, 3u);
  ASSERT_TRUE(env->payload);
  EXPECT_EQ(env->payload->to_string(), bytes);
}

TEST_F(TransportTest, ZeroLengthPayloadIsPresentButEmpty) {
  auto dealer = MakeDealer(context_, endpoint_, "").value();
  zmq::message_t empty;
  ASSERT_TRUE(SendMessage(dealer, ResultMsg{0, 1, true, "", 0, 0}, &empty));
  ASSERT_TRUE(SendMessage(dealer, Heartbeat{}));
  Received r = ReceiveWithin(*router_, true);
  auto* env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env);
  ASSERT_TRUE(env->payload) << "an empty payload frame is not the same as none";
  EXPECT_EQ(env->payload->size(), 0u);
  // The next message is not mistaken for a continuation.
  r = ReceiveWithin(*router_, true);
  env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env);
  EXPECT_TRUE(std::holds_alternative<Heartbeat>(env->message));
  EXPECT_FALSE(env->payload);
}

TEST_F(TransportTest, RouterSendsToAPeerWithPayload) {
  auto dealer = MakeDealer(context_, endpoint_, "").value();
  std::string peer = Connect(dealer);
  zmq::message_t payload(std::string_view("line 1\nline 2\n"));
  TaskMsg task{"job", 5, 2, "identity", {"-x"}, std::nullopt, 2};
  ASSERT_TRUE(SendTo(*router_, peer, task, &payload));
  ASSERT_TRUE(SendTo(*router_, peer, Cancel{5, 2}));
  Received r = ReceiveWithin(dealer, false);
  auto* env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env);
  EXPECT_EQ(env->peer, "");
  const auto& got = std::get<TaskMsg>(env->message);
  EXPECT_EQ(got.chunk, 5u);
  EXPECT_EQ(got.attempt, 2u);
  EXPECT_EQ(got.args, task.args);
  ASSERT_TRUE(env->payload);
  EXPECT_EQ(env->payload->to_string(), "line 1\nline 2\n");
  r = ReceiveWithin(dealer, false);
  env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env);
  EXPECT_EQ(std::get<Cancel>(env->message).chunk, 5u);
  EXPECT_FALSE(env->payload);
}

TEST_F(TransportTest, SendToRoutesToTheNamedPeerOnly) {
  auto a = MakeDealer(context_, endpoint_, "").value();
  auto b = MakeDealer(context_, endpoint_, "").value();
  std::string pa = Connect(a, "a");
  std::string pb = Connect(b, "b");
  ASSERT_TRUE(SendTo(*router_, pb, Shutdown{"for b"}));
  ASSERT_TRUE(SendTo(*router_, pa, Shutdown{"for a"}));
  Received ra = ReceiveWithin(a, false);
  Received rb = ReceiveWithin(b, false);
  ASSERT_TRUE(std::holds_alternative<Envelope>(ra));
  ASSERT_TRUE(std::holds_alternative<Envelope>(rb));
  EXPECT_EQ(std::get<Shutdown>(std::get<Envelope>(ra).message).reason, "for a");
  EXPECT_EQ(std::get<Shutdown>(std::get<Envelope>(rb).message).reason, "for b");
}

TEST_F(TransportTest, SendToAnUnknownPeerReturnsFalseAndLeavesTheSocketUsable) {
  auto dealer = MakeDealer(context_, endpoint_, "").value();
  std::string peer = Connect(dealer);
  EXPECT_FALSE(SendTo(*router_, "nobody", Heartbeat{}));
  zmq::message_t payload(std::string_view("data"));
  EXPECT_FALSE(SendTo(*router_, "", Shutdown{"x"}, &payload));
  // Nothing half-sent is left in the router: the next message arrives whole.
  ASSERT_TRUE(SendTo(*router_, peer, Welcome{"job", 500, 4}));
  Received r = ReceiveWithin(dealer, false);
  auto* env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env);
  EXPECT_EQ(std::get<Welcome>(env->message).job_id, "job");
}

TEST_F(TransportTest, SendToAPeerThatLeftReturnsFalse) {
  std::string peer;
  {
    auto dealer = MakeDealer(context_, endpoint_, "").value();
    peer = Connect(dealer);
  }  // closed with linger 0: the router drops the peer once it notices
  auto deadline = Clock::now() + kWait;
  bool refused = false;
  while (!refused && Clock::now() < deadline) {
    refused = !SendTo(*router_, peer, Heartbeat{});
    if (!refused) {  // the disconnect is not processed yet: wait on the socket, briefly
      zmq::pollitem_t item{router_->handle(), 0, ZMQ_POLLIN, 0};
      PollOnce(&item, 1, milliseconds(10));
    }
  }
  EXPECT_TRUE(refused);
}

TEST_F(TransportTest, NothingWaitingIsMonostateWithoutBlocking) {
  auto before = Clock::now();
  EXPECT_TRUE(std::holds_alternative<std::monostate>(ReceiveMessage(*router_, true)));
  auto dealer = MakeDealer(context_, endpoint_, "").value();
  EXPECT_TRUE(std::holds_alternative<std::monostate>(ReceiveMessage(dealer, false)));
  EXPECT_LT(Clock::now() - before, milliseconds(1000));
}

TEST_F(TransportTest, GarbageSingleFrameIsRejectedAndTheNextMessageDecodes) {
  auto dealer = MakeDealer(context_, endpoint_, "").value();
  std::string peer = Connect(dealer);
  SendRaw(dealer, {"not msgpack at all \xc1"});
  ASSERT_TRUE(SendMessage(dealer, Cancel{1, 1}));
  Received r = ReceiveWithin(*router_, true);
  auto* rejected = std::get_if<Rejected>(&r);
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->peer, peer);
  EXPECT_FALSE(rejected->reason.empty());
  r = ReceiveWithin(*router_, true);
  auto* env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env);
  EXPECT_EQ(env->peer, peer);
  EXPECT_EQ(std::get<Cancel>(env->message).chunk, 1u);
}

TEST_F(TransportTest, EmptyHeaderFrameIsRejected) {
  auto dealer = MakeDealer(context_, endpoint_, "").value();
  SendRaw(dealer, {""});
  ASSERT_TRUE(SendMessage(dealer, Heartbeat{}));
  Received r = ReceiveWithin(*router_, true);
  auto* rejected = std::get_if<Rejected>(&r);
  ASSERT_TRUE(rejected);
  EXPECT_NE(rejected->reason.find("empty"), std::string::npos) << rejected->reason;
  r = ReceiveWithin(*router_, true);
  ASSERT_TRUE(std::holds_alternative<Envelope>(r));
}

TEST_F(TransportTest, MessagesWithMoreThanOnePayloadFrameAreRejectedWhole) {
  auto dealer = MakeDealer(context_, endpoint_, "").value();
  std::string peer = Connect(dealer);
  std::string header = EncodeHeader(ResultMsg{1, 1, true, "", 0, 0});
  SendRaw(dealer, {header, "payload one", "payload two"});
  SendRaw(dealer, {header, "a", "b", "c", "d"});
  ASSERT_TRUE(SendMessage(dealer, Cancel{8, 1}));
  for (int i = 0; i < 2; ++i) {
    Received r = ReceiveWithin(*router_, true);
    auto* rejected = std::get_if<Rejected>(&r);
    ASSERT_TRUE(rejected) << "message " << i;
    EXPECT_EQ(rejected->peer, peer);
    EXPECT_NE(rejected->reason.find("more than one payload"), std::string::npos)
        << rejected->reason;
  }
  // Every frame of the refused messages was consumed: no stray frame decodes as a header.
  Received r = ReceiveWithin(*router_, true);
  auto* env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env);
  EXPECT_EQ(std::get<Cancel>(env->message).chunk, 8u);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(ReceiveMessage(*router_, true)));
}

TEST_F(TransportTest, BadHeaderWithAPayloadConsumesThePayloadToo) {
  auto dealer = MakeDealer(context_, endpoint_, "").value();
  Connect(dealer);
  SendRaw(dealer, {"\x90", EncodeHeader(Heartbeat{})});  // payload that looks like a header
  ASSERT_TRUE(SendMessage(dealer, Cancel{2, 3}));
  Received r = ReceiveWithin(*router_, true);
  auto* rejected = std::get_if<Rejected>(&r);
  ASSERT_TRUE(rejected);
  EXPECT_NE(rejected->reason.find("not a map"), std::string::npos) << rejected->reason;
  r = ReceiveWithin(*router_, true);
  auto* env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env);
  EXPECT_EQ(std::get<Cancel>(env->message).attempt, 3u);
}

TEST_F(TransportTest, WrongVersionIsRejectedOnTheDealerSide) {
  auto dealer = MakeDealer(context_, endpoint_, "").value();
  std::string peer = Connect(dealer);
  // A CANCEL header claiming protocol version 2, built by hand.
  std::string header = EncodeHeader(Cancel{1, 1});
  ASSERT_EQ(header.substr(1, 2), std::string("\xa1v"));
  ASSERT_EQ(header[3], '\x01');
  header[3] = '\x02';
  SendRaw(*router_, {peer, header});
  SendRaw(*router_, {peer, "junk", "payload"});
  ASSERT_TRUE(SendTo(*router_, peer, Heartbeat{}));
  Received r = ReceiveWithin(dealer, false);
  auto* rejected = std::get_if<Rejected>(&r);
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->peer, "");
  EXPECT_NE(rejected->reason.find("protocol version 2"), std::string::npos) << rejected->reason;
  r = ReceiveWithin(dealer, false);
  ASSERT_TRUE(std::holds_alternative<Rejected>(r));
  r = ReceiveWithin(dealer, false);
  auto* env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env);
  EXPECT_TRUE(std::holds_alternative<Heartbeat>(env->message));
}

TEST_F(TransportTest, WhatSendMessageWritesIsHeaderThenPayload) {
  auto dealer = MakeDealer(context_, endpoint_, "fixed").value();
  zmq::message_t payload(std::string_view("out"));
  ASSERT_TRUE(SendMessage(dealer, ResultMsg{4, 1, true, "", 0, 0}, &payload));
  auto frames = RawFramesWithin(*router_);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0], "fixed");
  EXPECT_EQ(frames[1], EncodeHeader(ResultMsg{4, 1, true, "", 0, 0}));
  EXPECT_EQ(frames[2], "out");
}

TEST_F(TransportTest, ManyMessagesArriveInOrder) {
  auto dealer = MakeDealer(context_, endpoint_, "").value();
  std::string peer = Connect(dealer);
  for (uint64_t i = 0; i < 500; ++i) {
    zmq::message_t payload(std::to_string(i));
    ASSERT_TRUE(SendTo(*router_, peer, TaskMsg{"j", i, 1, "t", {}, std::nullopt, 1}, &payload));
  }
  for (uint64_t i = 0; i < 500; ++i) {
    Received r = ReceiveWithin(dealer, false);
    auto* env = std::get_if<Envelope>(&r);
    ASSERT_TRUE(env) << i;
    EXPECT_EQ(std::get<TaskMsg>(env->message).chunk, i);
    EXPECT_EQ(env->payload->to_string(), std::to_string(i));
  }
}

TEST(TransportTcpTest, ConnectableEndpointNamesThisHostForAWildcardBind) {
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  std::string expected = "tcp://" + std::string(host) + ":5555";
  EXPECT_EQ(ConnectableEndpoint("tcp://0.0.0.0:5555"), expected);
  EXPECT_EQ(ConnectableEndpoint("tcp://[::]:5555"), expected);
  EXPECT_EQ(ConnectableEndpoint("tcp://127.0.0.1:5555"), "tcp://127.0.0.1:5555");
  EXPECT_EQ(ConnectableEndpoint("ipc:///tmp/x.sock"), "ipc:///tmp/x.sock");
}

TEST(TransportTcpTest, WildcardPortIsReadBackWithLastEndpoint) {
  zmq::context_t context;
  auto router = MakeRouter(context, "tcp://127.0.0.1:*");
  ASSERT_TRUE(router.ok()) << router.status().message();
  std::string endpoint = LastEndpoint(*router);
  ASSERT_EQ(endpoint.rfind("tcp://127.0.0.1:", 0), 0u) << endpoint;
  EXPECT_NE(endpoint, "tcp://127.0.0.1:0");
  EXPECT_GT(std::stoi(endpoint.substr(endpoint.rfind(':') + 1)), 0);
  auto dealer = MakeDealer(context, endpoint, "").value();
  ASSERT_TRUE(SendMessage(dealer, Heartbeat{}));
  Received r = ReceiveWithin(*router, true);
  auto* env = std::get_if<Envelope>(&r);
  ASSERT_TRUE(env);
  EXPECT_TRUE(std::holds_alternative<Heartbeat>(env->message));
  ASSERT_TRUE(SendTo(*router, env->peer, Shutdown{"bye"}));
  r = ReceiveWithin(dealer, false);
  ASSERT_TRUE(std::holds_alternative<Envelope>(r));
  EXPECT_EQ(std::get<Shutdown>(std::get<Envelope>(r).message).reason, "bye");
}

TEST(TransportTcpTest, MakeRouterOnABadEndpointIsAnErrorStatus) {
  zmq::context_t context;
  testing::TempDir dir;
  const std::vector<std::string> bad = {
      "bogus://nowhere",
      "tcp://",
      "tcp://127.0.0.1:notaport",
      "tcp://256.256.256.256:5555",
      "ipc://" + dir.File("no/such/dir/sock"),
      "not an endpoint",
      "",
  };
  for (const auto& endpoint : bad) {
    Result<zmq::socket_t> r = Status::Error("unset");
    EXPECT_NO_THROW(r = MakeRouter(context, endpoint)) << endpoint;
    ASSERT_FALSE(r.ok()) << endpoint;
    EXPECT_NE(r.status().message().find("cannot listen on " + endpoint), std::string::npos)
        << r.status().message();
  }
}

// The worker connects with MakeDealer: a malformed --connect is its usage error (exit 2),
// found without a throwaway socket of its own.
TEST(TransportTcpTest, MakeDealerOnABadEndpointIsAnErrorStatus) {
  zmq::context_t context;
  for (std::string endpoint :
       {"bogus://nowhere", "tcp://", "tcp://nohost", "tcp://127.0.0.1", "not an endpoint", ""}) {
    Result<zmq::socket_t> r = Status::Error("unset");
    EXPECT_NO_THROW(r = MakeDealer(context, endpoint, "")) << endpoint;
    ASSERT_FALSE(r.ok()) << endpoint;
    EXPECT_NE(r.status().message().find("cannot connect to '" + endpoint + "'"), std::string::npos)
        << r.status().message();
  }
  // Names need not resolve yet: ZeroMQ connects in the background.
  EXPECT_TRUE(MakeDealer(context, "tcp://no-such-host.invalid:5555", "").ok());
}

TEST(TransportTcpTest, AnEndpointInUseIsAnErrorStatus) {
  zmq::context_t context;
  auto first = MakeRouter(context, "tcp://127.0.0.1:*");
  ASSERT_TRUE(first.ok());
  std::string endpoint = LastEndpoint(*first);
  auto second = MakeRouter(context, endpoint);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(endpoint), std::string::npos);
}

TEST(TransportTcpTest, PollOnceTimesOutWithNothingReady) {
  zmq::context_t context;
  auto router = MakeRouter(context, "tcp://127.0.0.1:*");
  ASSERT_TRUE(router.ok());
  zmq::pollitem_t item{router->handle(), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(PollOnce(&item, 1, milliseconds(0)), 0);
  EXPECT_EQ(item.revents, 0);
}

}  // namespace
}  // namespace fanout
