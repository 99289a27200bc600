// PooledFrame (issue #16): a chunk's frame is mapped once and used again for the next chunk
// of about its size, so a job's bytes land on pages already faulted in; small frames stay
// ZeroMQ's own; what is kept unused is bounded. The pool is one per process, so each test
// reads its counters before and after.
#include "common/frame_pool.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/transport.h"

namespace fanout {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(FramePoolTest, AFrameDroppedIsUsedAgainForTheNextOfItsSize) {
  const void* first = nullptr;
  {
    zmq::message_t frame = PooledFrame(4 * kMiB);
    ASSERT_EQ(frame.size(), 4 * kMiB);
    std::memset(frame.data(), 'a', frame.size());
    first = frame.data();
  }
  FramePoolCounts before = FramePoolNow();
  EXPECT_GE(before.kept, 1u);
  // A chunk a record longer (array_split's larger first) still fits the kept mapping.
  zmq::message_t next = PooledFrame(4 * kMiB + 101);
  EXPECT_EQ(next.size(), 4 * kMiB + 101);
  EXPECT_EQ(next.data(), first);
  EXPECT_EQ(FramePoolNow().mapped, before.mapped);
  EXPECT_EQ(FramePoolNow().kept, before.kept - 1);
}

TEST(FramePoolTest, AFarLargerKeptFrameIsLeftForItsKind) {
  { zmq::message_t big = PooledFrame(64 * kMiB); }
  FramePoolCounts before = FramePoolNow();
  zmq::message_t small = PooledFrame(2 * kMiB);  // a 64 MiB mapping would waste 62
  EXPECT_EQ(FramePoolNow().mapped, before.mapped + 1);
  EXPECT_EQ(FramePoolNow().kept, before.kept);
}

TEST(FramePoolTest, SmallFramesAreZeroMqsOwn) {
  FramePoolCounts before = FramePoolNow();
  { zmq::message_t frame = PooledFrame(kPooledFrameMin - 1); }
  EXPECT_EQ(FramePoolNow().mapped, before.mapped);
  EXPECT_EQ(FramePoolNow().kept, before.kept);
}

TEST(FramePoolTest, WhatIsKeptUnusedIsBounded) {
  {
    std::vector<zmq::message_t> window;
    for (int i = 0; i < 24; ++i) window.push_back(PooledFrame(24 * kMiB));
  }
  FramePoolCounts now = FramePoolNow();
  EXPECT_LE(now.kept, kPooledFramesKept);
  EXPECT_LE(now.kept_bytes, kPooledBytesKept);
  EXPECT_GT(now.kept, 0u);
}

TEST(FramePoolTest, AFrameSentIsDeliveredWholeAndComesBackFromZeroMqsThread) {
  zmq::context_t context(1);
  auto router = MakeRouter(context, "tcp://127.0.0.1:*");
  ASSERT_TRUE(router.ok()) << router.status().message();
  auto dealer = MakeDealer(context, LastEndpoint(*router), "peer");
  ASSERT_TRUE(dealer.ok()) << dealer.status().message();
  std::string expected(3 * kMiB + 7, '\0');
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<char>(i * 131 % 251);
  FramePoolCounts before = FramePoolNow();
  {
    zmq::message_t frame = PooledFrame(expected.size());
    std::memcpy(frame.data(), expected.data(), expected.size());
    ASSERT_TRUE(dealer->send(frame, zmq::send_flags::none));
  }
  zmq::message_t id, got;
  ASSERT_TRUE(router->recv(id));
  ASSERT_TRUE(router->recv(got));
  EXPECT_EQ(got.to_string(), expected);
  // Once sent, the frame is handed back by ZeroMQ's I/O thread; closing the sockets and
  // the context waits for that thread to finish with it.
  dealer->close();
  router->close();
  context.close();
  EXPECT_EQ(FramePoolNow().returned, before.returned + 1);
}

}  // namespace
}  // namespace fanout
